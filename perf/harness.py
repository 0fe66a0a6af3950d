"""What `lassbench run` costs beside the model: the whole command against the model's own separation of the same items.

    python perf/harness.py [--model lassnet] [--data DIR] [--split test] [--limit N]

Default: the embedded synth benchmark's test split (300 items of 4 s at 16 kHz) with the shipped tiny LASS-Net, cache
warm (the script builds the benchmark first if needed and does not time that). Three measurements, one after the other
in this process and its children:

1. **reference**: the model's own separation time: ``load_separator(MODEL)`` then ``separator.separate(audio, rate,
   query)`` on every item one by one, the mixtures already in memory (only the separating is timed); and, below it,
   the bare forward pass ``model(mixture[None], query)`` per item, which is what `run` itself calls;
2. **run**: ``lassbench run MODEL`` as a user runs it (start-up, loading, reading, separating, scoring, bootstrap,
   writing), wall time and peak RSS of the largest of its processes; the ratio run / reference is the figure to read;
3. **breakdown**: the same run in this process with ``--workers 0``, with timers around each stage;
4. **batch size on this device**: the bare model on a batch of B ten-second items, seconds per item and peak RSS,
   each B in a fresh process (``--batch-sizes``; what `run`'s default batch size is chosen from).

A loaded machine inflates every time alike; read the ratios, measured side by side, and the load printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _items(data: Path, split: str, limit: int | None):
    from lassbench.run import _select_items

    return _select_items(data, split, limit)


def reference_seconds(model: str, data: Path, items) -> tuple[float, float]:
    """(separator.separate() over every item, bare model forward over every item), each with a fresh model."""
    from lassbench.audio import read_audio
    from lassbench.models.lassnet import QueryBatch
    from lassbench.separator import load_separator

    audio = [read_audio(data / "mixture" / f"{i}.wav") for i in items["id"]]
    queries = list(items["query"])
    separator = load_separator(model)
    start = time.perf_counter()
    for (mixture, rate), query in zip(audio, queries, strict=True):
        separator.separate(mixture, rate, query)
    separate_loop = time.perf_counter() - start
    net = load_separator(model).model  # a fresh text-embedding cache, as `run` starts with
    start = time.perf_counter()
    with torch.no_grad():
        for (mixture, _), query in zip(audio, queries, strict=True):
            net(torch.from_numpy(mixture)[None], QueryBatch([query], labels=[[]]))
    return separate_loop, time.perf_counter() - start


def run_command(model: str, data: Path | None, split: str, limit: int | None, out: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB of the largest process, page faults) of `lassbench run` in a child process."""
    command = [sys.executable, "-m", "lassbench", "run", model, "--split", split, "--out", str(out)]
    command += ["--data", str(data)] if data else []
    command += ["--limit", str(limit)] if limit else []
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"error: {' '.join(command)} failed (status {status})")
    return wall, usage.ru_maxrss / 1024, usage.ru_minflt


@contextmanager
def _timed(module, name: str, totals: dict):
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, real)


STAGES = [  # (module[:class], function, what it is)
    ("lassbench.run", "_load_system", "load the model"),
    ("lassbench.run", "item_shapes", "read the items' headers"),
    ("lassbench.run_stream:BatchReader", "__getitem__", "read audio"),
    ("lassbench.run_stream", "_separate", "separate (the model)"),
    ("lassbench.run_stream", "score_batch", "score"),
    ("lassbench.run_stream", "_open_partial", "partial file"),
    ("lassbench.run", "summarize", "summarize + bootstrap CIs"),
    ("lassbench.run", "write_results", "write results"),
]


def breakdown(model: str, data: Path, split: str, limit: int | None, out: Path) -> tuple[dict, float]:
    import importlib

    from lassbench.run import RunConfig, run_model

    totals: dict = defaultdict(float)
    with ExitStack() as stack:
        for module_name, name, _ in STAGES:
            path, _, attribute = module_name.partition(":")
            owner = importlib.import_module(path)
            owner = getattr(owner, attribute) if attribute else owner
            if hasattr(owner, name):  # older versions lack some stages
                stack.enter_context(_timed(owner, name, totals))
        start = time.perf_counter()
        run_model(RunConfig(model=model, data=str(data), split=split, limit=limit, out=str(out), workers=0),
                  log=lambda line: None)
        total = time.perf_counter() - start
    return totals, total


def batch_probe(model: str, batch: int, seconds: float = 10.0) -> None:
    """Child mode: separate one batch of ``batch`` ten-second items (after a warm-up item); print s/item, peak MB."""
    from lassbench.models.lassnet import QueryBatch
    from lassbench.separator import load_separator

    net = load_separator(model).model
    rate = int(net.input_rate)
    queries = [f"a dog barks {k}" for k in range(batch)]
    mixture = 0.1 * torch.randn(batch, int(seconds * rate), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        net(mixture[:1], QueryBatch(["warm up"], labels=[[]]))
        start = time.perf_counter()
        net(mixture, QueryBatch(queries, labels=[[]] * batch))
    per_item = (time.perf_counter() - start) / batch
    print(f"{per_item} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}")


def batch_costs(model: str, sizes: list[int]) -> list[tuple[int, float, float]]:
    rows = []
    for size in sizes:
        result = subprocess.run([sys.executable, __file__, "--model", model, "--probe-batch", str(size)],
                                capture_output=True, text=True, check=True)
        per_item, peak = map(float, result.stdout.split())
        rows.append((size, per_item, peak))
    return rows


def import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import lassbench.run, lassbench.cli"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lassnet")
    parser.add_argument("--data", default=None, help="built benchmark; default: the embedded synth benchmark")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-sizes", default="1,8", help="batch sizes for table 4 (comma-separated; '' skips)")
    parser.add_argument("--probe-batch", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_batch:
        return batch_probe(args.model, args.probe_batch)
    from lassbench.ready import default_benchmark

    data = Path(args.data) if args.data else Path(default_benchmark(progress=False))
    items = _items(data, args.split, args.limit)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, {os.cpu_count()} CPU(s), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; load {_load()} before")
    print(f"# {args.model} on {data.name}/{args.split}: {len(items)} items")
    with tempfile.TemporaryDirectory() as tmp:
        separate_loop, forward_loop = reference_seconds(args.model, data, items)
        wall, peak, faults = run_command(args.model, Path(args.data) if args.data else None, args.split, args.limit,
                                 Path(tmp) / "cli")
        start_up = import_seconds()
        totals, in_process = breakdown(args.model, data, args.split, args.limit, Path(tmp) / "breakdown")
    print()
    print("| measurement | seconds | run / this |")
    print("|---|---|---|")
    print(f"| `lassbench run {args.model}` (whole command, default options) | {wall:.1f} | 1.00 |")
    print(f"| reference: `separator.separate()` per item | {separate_loop:.1f} | {wall / separate_loop:.2f} |")
    print(f"| bare model forward per item | {forward_loop:.1f} | {wall / forward_loop:.2f} |")
    print(f"\n`lassbench run`: peak RSS {peak:.0f} MB (its largest process), {faults / 1e6:.2f}M page faults")
    print(f"\nBreakdown (the run in this process, --workers 0: {in_process:.1f} s; start-up measured apart):\n")
    print("| stage | seconds | share of run |")
    print("|---|---|---|")
    rows = [("start-up (import lassbench in a fresh interpreter)", start_up)]
    rows += [(label, totals[name]) for _, name, label in STAGES if name in totals]
    rows.append(("other (plans, fingerprint, merge, progress bar)", in_process - sum(totals.values())))
    whole = in_process + start_up
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} | {100 * seconds / whole:.0f}% |")
    sizes = [int(x) for x in args.batch_sizes.split(",") if x]
    if sizes:
        print("\nBatch size on this device (bare model, ten-second items, one batch per fresh process):\n")
        print("| batch | s per item | peak RSS (MB) |")
        print("|---|---|---|")
        for size, per_item, peak in batch_costs(args.model, sizes):
            print(f"| {size} | {per_item:.3f} | {peak:.0f} |")
    print(f"\n# load {_load()} after")


if __name__ == "__main__":
    main()
