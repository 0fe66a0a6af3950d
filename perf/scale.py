"""AudioCaps-scale simulation: peak memory and wall time of each phase against the number of clips / items.

    python perf/scale.py                    # N = 500 and 2,000 (about an hour on 2 busy cores)
    python perf/scale.py --quick            # N = 40 and 80, a smoke test (a few minutes)
    python perf/scale.py --sizes 400,1600 --workdir /tmp/scale --keep

For each N: N training clips and N/4 test clips (10 s, 32 kHz, synth generator, PCM_16 WAV named like YouTube ids)
with AudioCaps-style metadata (one caption per train clip, five per test clip), then, each phase a separate process
of the real CLI:

1. ``download``: ``lassbench download audiocaps --source dir:RAW`` for the train and the test split;
2. ``build``: ``lassbench build-dataset`` of N test items (``--subtype PCM_16`` to spare disk); it also measures the
   N training clips' loudness into ``sources.csv``;
3. ``run``: ``lassbench run mixture`` on the N items;
4. ``train``: ``lassbench train lassnet`` for ``--steps`` steps (batch 8 x 2 s, ``--workers 0``: one process) —
   remixed from the N training clips.

Each phase's wall time and peak RSS are measured from outside: the largest single process (``wait4``'s
``ru_maxrss``) and the whole process tree (sum of the tree's RSS sampled every 0.2 s from /proc; DataLoader and
build workers included). Then the training loader's examples/s with 0 and 2 workers (lazy remixing only) next to
the tiny model's step time on the same batches, and a linear extrapolation (a + b N through the two largest sizes)
to AudioCaps train (46k clips) and AudioSep's eval lists (4,820 and 15k items). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SAMPLE_RATE = 32000
SECONDS = 10.0
TRAIN_TARGET = 46_000  # AudioCaps train clips (about 46k of 49,838 still downloadable, docs/data.md)
EVAL_TARGETS = (4_820, 15_000)  # AudioSep's AudioCaps and VGGSound evaluation lists


@dataclass
class Phase:
    wall: float  # seconds
    rss_process: float  # MB, the largest single process
    rss_tree: float  # MB, the peak of the sum over the process tree (sampled)


# --------------------------------------------------------------------------------------------- measuring


class TreeSampler(threading.Thread):
    """Peak of the summed RSS of a process and its descendants, from /proc."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self._done = pid, every, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self._tree_rss())
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def _tree_rss(self) -> int:
        parents: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat") as fh:
                        parents[int(entry.name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, frontier = {self.pid}, [self.pid]
        while frontier:
            parent = frontier.pop()
            children = [p for p, pp in parents.items() if pp == parent and p not in tree]
            tree.update(children)
            frontier.extend(children)
        total = 0
        for pid in tree:
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1]) * self._page
            except (OSError, IndexError, ValueError):
                continue
        return total


def measure(cmd: list[str], cwd: Path, log: Path) -> Phase:
    """Run ``cmd`` to completion; its wall time and peak RSS (largest process, and process tree)."""
    start = time.perf_counter()
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        sampler.stop()
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} exited with {proc.returncode}; see {log}")
    return Phase(wall, usage.ru_maxrss / 1024, max(sampler.peak / 2**20, usage.ru_maxrss / 1024))


# ------------------------------------------------------------------------------------------------- data


def _youtube_id(split: str, index: int) -> str:
    return f"{split[:2]}{index:09d}"  # 11 characters of [A-Za-z0-9_-], like a YouTube id


@dataclass(frozen=True)
class _Clip:
    raw: str

    def __call__(self, job: tuple[str, int]) -> list[dict]:
        from lassbench.audio import write_audio
        from lassbench.corpora.synth import generate_clip

        split, index = job
        yid = _youtube_id(split, index)
        path = Path(self.raw) / f"{yid}.wav"
        clip = generate_clip("train" if split == "train" else "test", index, sample_rate=SAMPLE_RATE,
                             duration=SECONDS, seed=11)
        if not path.is_file():
            write_audio(path, clip.audio, SAMPLE_RATE, subtype="PCM_16")
        captions = clip.captions[:1] if split == "train" else clip.captions[:5]
        return [{"youtube_id": yid, "start_time": 0, "caption": c} for c in captions]


def generate(raw: Path, split: str, count: int, workers: int) -> pd.DataFrame:
    """``count`` clips of ``split`` in ``raw`` (reused across sizes) and their AudioCaps-style metadata."""
    raw.mkdir(parents=True, exist_ok=True)
    jobs = [(split, i) for i in range(count)]
    with ProcessPoolExecutor(workers) as pool:
        rows = [row for rows in pool.map(_Clip(str(raw)), jobs, chunksize=16) for row in rows]
    frame = pd.DataFrame(rows)
    frame.insert(0, "audiocap_id", range(1, len(frame) + 1))
    return frame


# ------------------------------------------------------------------------------------------------ phases


def run_size(n: int, raw: Path, work: Path, args) -> dict[str, Phase]:
    from lassbench.manifests import read_source_manifest, write_manifest_csv

    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    lb = [sys.executable, "-m", "lassbench"]
    phases: dict[str, Phase] = {}
    test_clips = max(8, n // 4)
    metadata = {"train": generate(raw, "train", n, args.workers), "test": generate(raw, "test", test_clips,
                                                                                    args.workers)}
    downloads = []
    for split, frame in metadata.items():
        frame.to_csv(work / f"{split}.csv", index=False)
        downloads.append(measure([*lb, "download", "audiocaps", "--split", split, "--metadata", f"{split}.csv",
                                  "--source", f"dir:{raw}", "--out", f"corpus/{split}", "--workers",
                                  str(args.workers)], work, log))
    phases["download"] = Phase(sum(p.wall for p in downloads), max(p.rss_process for p in downloads),
                               max(p.rss_tree for p in downloads))
    combined = pd.concat([read_source_manifest(work / "corpus" / s / "manifest.csv") for s in metadata])
    write_manifest_csv(combined, work / "corpus" / "all.csv")
    phases["build"] = measure([*lb, "build-dataset", "--sources", "corpus/all.csv", "--out", "bench", "--splits",
                               "test", "--num-items", f"test={n}", "--subtype", "PCM_16", "--workers",
                               str(args.workers)], work, log)
    phases["run mixture"] = measure([*lb, "run", "mixture", "--data", "bench", "--out", "results"], work, log)
    phases["train"] = measure([*lb, "train", "lassnet", "--data", "bench", "--out", "train-run", "--steps",
                               str(args.steps), "--batch-size", "8", "--segment-seconds", "2", "--val-every",
                               str(args.steps), "--checkpoint-every", str(args.steps), "--workers", "0",
                               "--threads", "2"], work, log)
    return phases


LOADER_PROBE = r"""
import json, sys, time, torch
from lassbench.models.lassnet import sized_config
from lassbench.models.registry import build_model
from lassbench.train_step import train_step
from lassbench.train_data import open_training_data
start = time.perf_counter()
data = open_training_data(sys.argv[1], seed=0)
steps, batch, segment = int(sys.argv[2]), 8, 2 * data.sample_rate
next(data.batches(0, 1, batch, segment))
result = {"startup_s": time.perf_counter() - start}  # sources table read + the first batch, in this process
for workers in (0, 2):
    batches = data.batches(0, steps + 1, batch, segment, workers=workers)
    first = next(batches)  # worker start-up excluded
    start = time.perf_counter()
    kept = [b for b in batches]
    result[f"examples_per_s_workers{workers}"] = steps * batch / (time.perf_counter() - start)
torch.manual_seed(0)
torch.set_num_threads(2)
model = build_model("lassnet", sized_config("tiny"))
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
train_step(model, optimizer, first, "cpu")  # warm-up (text embeddings cached)
start = time.perf_counter()
for b in kept:
    train_step(model, optimizer, b, "cpu")
result["step_s"] = (time.perf_counter() - start) / len(kept)
print(json.dumps(result))
"""


def loader_speed(bench: Path, steps: int) -> dict[str, float]:
    import json

    done = subprocess.run([sys.executable, "-c", LOADER_PROBE, str(bench), str(steps)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


STARTUP_PROBE = r"""
import json, resource, sys, time
import torch  # imported before the clock starts: the same for every size
from lassbench.train_data import open_training_data
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
data = open_training_data(sys.argv[1], seed=0)
batch = next(data.batches(0, 1, 8, 2 * data.sample_rate))
print(json.dumps({"startup_s": time.perf_counter() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
"""


def startup_at(bench: Path, counts: list[int], root: Path) -> str:
    """Training start-up at AudioCaps size without generating 46k clips: ``bench``'s usable train rows of
    sources.csv repeated under new ids to each count (the paths repeat; an example reads only its crop)."""
    import json

    table = pd.read_csv(bench / "sources.csv", dtype=str, keep_default_na=False)
    train = table[(table["split"] == "train") & (table["loudness"] != "")]
    if train.empty:
        sys.exit(f"error: {bench}/sources.csv has no usable train rows")
    lines = ["| training clips in sources.csv | start-up (s) | peak RSS (MB) | RSS added by start-up (MB) |",
             "|---|---|---|---|"]
    for count in counts:
        fake = root / f"startup-{count}"
        fake.mkdir(parents=True, exist_ok=True)
        for name in ("manifest.csv", "dataset.json"):
            shutil.copy(bench / name, fake / name)
        rows = train.iloc[[i % len(train) for i in range(count)]].copy()
        rows["source_id"] = [f"clip{i:06d}" for i in range(count)]
        rows.to_csv(fake / "sources.csv", index=False)
        done = subprocess.run([sys.executable, "-c", STARTUP_PROBE, str(fake)], check=True, capture_output=True,
                              text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        lines.append(f"| {count:,} | {r['startup_s']:.2f} | {r['rss_mb']:.0f} | {r['growth_mb']:.0f} |")
        shutil.rmtree(fake, ignore_errors=True)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- report


def _fit(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """a + b x through the last two points (the largest sizes)."""
    (x0, y0), (x1, y1) = (xs[-2], ys[-2]), (xs[-1], ys[-1])
    slope = (y1 - y0) / (x1 - x0)
    return y0 - slope * x0, slope


def _extrapolated(fit: tuple[float, float], target: int, unit: float, name: str) -> str:
    intercept, slope = fit
    if slope <= 0:  # the larger size was not slower / bigger: no growth to extrapolate (load noise)
        return f"no growth measured (slope {slope * 1000 / unit:+.3f} {name} per 1,000)"
    return f"{(intercept + slope * target) / unit:.{1 if name == 'min' else 2}f} {name}"


def report(sizes: list[int], results: dict[int, dict[str, Phase]], speeds: dict[int, dict]) -> str:
    lines = ["| phase | N | wall time (s) | peak RSS, largest process (MB) | peak RSS, process tree (MB) |",
             "|---|---|---|---|---|"]
    phases = list(results[sizes[0]])
    for phase in phases:
        for n in sizes:
            p = results[n][phase]
            lines.append(f"| {phase} | {n:,} | {p.wall:.1f} | {p.rss_process:.0f} | {p.rss_tree:.0f} |")
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        lines += ["", f"Growth from N = {small:,} to {large:,} ({large / small:g}x the clips / items):", "",
                  "| phase | wall time | peak RSS, largest process | peak RSS, process tree |", "|---|---|---|---|"]
        for phase in phases:
            a, b = results[small][phase], results[large][phase]
            lines.append(f"| {phase} | {b.wall / a.wall:.2f}x | {b.rss_process / a.rss_process:.2f}x | "
                         f"{b.rss_tree / a.rss_tree:.2f}x |")
        lines += ["", "Linear extrapolation (a + b N through the two largest sizes):", "",
                  "| phase | at N | wall time | peak RSS, process tree |", "|---|---|---|---|"]
        targets = {"download": [TRAIN_TARGET], "build": list(EVAL_TARGETS), "run mixture": list(EVAL_TARGETS),
                   "train": [TRAIN_TARGET]}
        for phase in phases:
            for target in targets.get(phase, []):
                wall = _fit(sizes, [results[n][phase].wall for n in sizes])
                rss = _fit(sizes, [results[n][phase].rss_tree for n in sizes])
                lines.append(f"| {phase} | {target:,} | {_extrapolated(wall, target, 60, 'min')} | "
                             f"{_extrapolated(rss, target, 1024, 'GB')} |")
    lines += ["", "Training loader (remix, batch 8 x 2 s at 32 kHz) and the tiny model's step on those batches "
              "(start-up: reading sources.csv and rendering the first batch, in one process):", "",
              "| N training clips | start-up (s) | examples/s, 0 workers | examples/s, 2 workers | model step (s) | "
              "examples/s the model takes |", "|---|---|---|---|---|---|"]
    for n in sizes:
        s = speeds[n]
        lines.append(f"| {n:,} | {s['startup_s']:.2f} | {s['examples_per_s_workers0']:.1f} | "
                     f"{s['examples_per_s_workers2']:.1f} | {s['step_s']:.2f} | {8 / s['step_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="500,2000", help="comma-separated N (at least two for the growth)")
    parser.add_argument("--quick", action="store_true", help="N = 40,80 and 2 training steps (a smoke test)")
    parser.add_argument("--steps", type=int, default=5, help="training steps of the train phase")
    parser.add_argument("--loader-steps", type=int, default=6, help="batches timed per loader setting")
    parser.add_argument("--workers", type=int, default=2, help="processes of download and build")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed at the end")
    parser.add_argument("--keep", action="store_true", help="keep each size's files (default: removed after use)")
    parser.add_argument("--startup", metavar="BENCH", default=None,
                        help="only the training start-up: BENCH's train sources repeated to --startup-clips rows")
    parser.add_argument("--startup-clips", default="500,2000,46000")
    args = parser.parse_args(argv)
    if args.startup:
        counts = sorted(int(s) for s in args.startup_clips.split(","))
        with tempfile.TemporaryDirectory(prefix="lassbench-startup-") as tmp:
            print(f"`python perf/scale.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
                  f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load average "
                  f"{os.getloadavg()[0]:.1f})\n")
            print(startup_at(Path(args.startup), counts, Path(tmp)))
        return
    if args.quick:
        args.sizes, args.steps, args.loader_steps = "40,80", 2, 2
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    except ValueError:
        sys.exit(f"error: --sizes {args.sizes!r}: expected comma-separated integers")
    if not sizes or min(sizes) < 8 or args.steps < 1 or args.loader_steps < 1 or args.workers < 1:
        sys.exit("error: sizes must be >= 8, --steps, --loader-steps and --workers >= 1")
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="lassbench-scale-"))
    env_note = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, " \
               f"load average at start {os.getloadavg()[0]:.1f}"
    results, speeds = {}, {}
    try:
        for n in sizes:
            work = root / f"n{n}"
            results[n] = run_size(n, root / "raw", work, args)
            speeds[n] = loader_speed(work / "bench", args.loader_steps)
            print(f"N = {n}: " + ", ".join(f"{k} {p.wall:.0f} s / {p.rss_tree:.0f} MB" for k, p in results[n].items()),
                  file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    print(f"`python perf/scale.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ({env_note}, "
          f"load average at end {os.getloadavg()[0]:.1f})\n")
    print(report(sizes, results, speeds))


if __name__ == "__main__":
    main()
