"""Scale simulation of training sources: WebDataset shards (``lassbench shard``) beside a folder of files, as the
corpus grows from 10k to 1M clips.

    python perf/shards_scale.py --workdir /work/scratch/shards-bench                  # 10k, 100k, 1M (files to 100k)
    python perf/shards_scale.py --sizes 2000,8000 --folder-max 8000 --workdir /tmp/s  # a smoke test
    python perf/shards_scale.py ... --keep                                            # keep the generated corpora
    python perf/shards_scale.py --draw-pools 1000,100000          # the protocol's draw alone, against the pool size

The corpus: ``--pool`` (256) distinct synth clips of 0.5 s at 16 kHz (the shortest a BS.1770 loudness is defined
for), measured by a real ``build-dataset`` (which also builds the small val split every corpus shares), then
repeated under distinct ids up to N clips: the bytes of clip ``i`` are those of pool clip ``i % pool``, written as
its own tar member (FLAC, PCM_16, 1,000 clips a shard) or its own WAV file (PCM_16). Nothing is cached between
reads, so each example reads and decodes its clips as it would in a corpus of N distinct clips; only the page cache
sees repeated bytes, as it sees a corpus that fits in RAM. On disk: ~11 KB a clip in shards (FLAC, two 512-byte tar
headers and padding, the .json), ~16 KB a file plus its inode: 1M shards ~11 GB, 100k files ~1.7 GB.

Each measurement is a separate process of the real data path (:func:`lassbench.train_data.open_training_data`,
then ``batches(...)`` over a DataLoader with ``--workers`` processes, batch 16 x 0.25 s, remix):

- start-up: from the start of ``open_training_data`` to the first batch (index or sources.csv read, pools built,
  workers started);
- resume: the same at step 1,000,000 (the start-up of a run resumed that far);
- examples/s per worker: the next ``--steps`` batches' examples over their wall time, divided by the workers;
- peak RSS of the training process (``ru_maxrss``) and of each worker (``VmHWM`` from /proc, read before the
  loader shuts down), in MB.

The generated corpora are deleted at the end unless ``--keep``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

SAMPLE_RATE = 16000
CLIP_SECONDS = 0.5
SEGMENT = 4000  # 0.25 s crops
BATCH = 16
CLIPS_PER_SHARD = 1000


def build_base(work: Path, pool: int) -> Path:
    """The val benchmark every corpus shares, and the pool's clips measured into its sources.csv."""
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus

    base = work / "base"
    if not (base / "dataset.json").is_file():
        synth_corpus(work / "corpus", duration=CLIP_SECONDS, clips={"train": pool, "val": 14, "test": 14})
        build_dataset(BuildConfig(sources=str(work / "corpus"), out=str(base), splits=("val",),
                                  num_items={"val": 4}, subtype="PCM_16", progress=False))
    return base


def pool_clips(base: Path) -> list[dict]:
    """The pool's usable train clips with their FLAC and WAV bytes."""
    import pandas as pd
    import soundfile

    from lassbench.audio import encode_flac, read_audio
    from lassbench.manifests import decode_list

    table = pd.read_csv(base / "sources.csv")
    table = table[(table["split"] == "train") & table["loudness"].notna()]
    clips = []
    for row in table.to_dict("records"):
        audio = read_audio(row["path"], sample_rate=SAMPLE_RATE)[0][:int(row["frames"])]
        wav = io.BytesIO()
        soundfile.write(wav, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        clips.append({"flac": encode_flac(audio, SAMPLE_RATE), "wav": wav.getvalue(), "frames": int(row["frames"]),
                      "loudness": float(row["loudness"]), "labels": decode_list(row["labels"]),
                      "captions": decode_list(row["captions"]),
                      "attributes": json.loads(row["attributes"]) if isinstance(row["attributes"], str) else {}})
    return clips


def _copy_base(base: Path, out: Path) -> None:
    shutil.copytree(base, out, ignore=shutil.ignore_patterns("sources.csv", "shards"))


def make_shards(base: Path, pool: list[dict], size: int, out: Path) -> None:
    from lassbench.shards import SHARDS_DIR, Clip, shard_name, write_index, write_shard

    _copy_base(base, out)
    folder = out / SHARDS_DIR
    folder.mkdir()
    for number in range(-(-size // CLIPS_PER_SHARD)):
        first = number * CLIPS_PER_SHARD
        clips = (Clip(source_id=f"clip{i:07d}", audio=pool[i % len(pool)]["flac"], frames=pool[i % len(pool)]["frames"],
                      loudness=pool[i % len(pool)]["loudness"], labels=pool[i % len(pool)]["labels"],
                      captions=pool[i % len(pool)]["captions"], attributes=pool[i % len(pool)]["attributes"])
                 for i in range(first, min(size, first + CLIPS_PER_SHARD)))
        write_shard(folder / f"{shard_name(number)}.tar", clips, first, SAMPLE_RATE)
    write_index(folder, SAMPLE_RATE, seed=0, clips_per_shard=CLIPS_PER_SHARD, origin="generated")


def make_files(base: Path, pool: list[dict], size: int, out: Path) -> None:
    import pandas as pd

    from lassbench.manifests import write_manifest_csv

    _copy_base(base, out)
    clips = out / "clips"
    clips.mkdir()
    rows = []
    for i in range(size):
        clip = pool[i % len(pool)]
        path = clips / f"clip{i:07d}.wav"
        path.write_bytes(clip["wav"])
        rows.append({"source_id": path.stem, "path": str(path), "split": "train", "labels": clip["labels"],
                     "captions": clip["captions"], "attributes": json.dumps(clip["attributes"]),
                     "sample_rate": SAMPLE_RATE, "frames": clip["frames"], "loudness": clip["loudness"]})
    write_manifest_csv(pd.DataFrame(rows), out / "sources.csv")


def measure(data_dir: Path, workers: int, steps: int) -> dict:
    """One run of the data path in this process (see the module docstring)."""
    from lassbench.train_data import open_training_data

    started = time.perf_counter()
    data = open_training_data(data_dir, seed=0)
    batches = data.batches(0, steps + 1, BATCH, SEGMENT, workers=workers)
    next(batches)
    startup = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        next(batches)
    rate = steps * BATCH / (time.perf_counter() - started) / max(workers, 1)
    worker_rss = [_hwm(w.pid) for w in getattr(batches, "_workers", [])]
    del batches
    started = time.perf_counter()
    next(data.batches(1_000_000, 1_000_001, BATCH, SEGMENT, workers=workers))
    resume = time.perf_counter() - started
    return {"startup": startup, "resume": resume, "rate": rate,
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_rss": max(worker_rss) if worker_rss else float("nan")}


def time_draws(sizes: list[int], classes: int = 14, draws: int = 50) -> None:
    """Milliseconds per ``draw_spec`` over a pool of each size (``classes`` labels in turn, no attributes)."""
    import pandas as pd

    from lassbench.protocols.lassbench import LassbenchParams, SourcePool, draw_spec

    params = LassbenchParams(contrast_fraction=0.3)
    for size in sizes:
        pool = SourcePool.from_frame(pd.DataFrame({"source_id": [f"s{i}" for i in range(size)],
                                                   "labels": [[f"c{i % classes}"] for i in range(size)]}))
        started = time.perf_counter()
        for index in range(draws):
            draw_spec(index, pool, params, 0, split="train")
        print(f"pool of {size:,} clips: {(time.perf_counter() - started) / draws * 1000:.1f} ms a draw")


def _hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _du(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--folder-max", type=int, default=100_000, help="largest folder-of-files corpus made")
    parser.add_argument("--pool", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--draw-pools", default=None, metavar="N,N",
                        help="only time the protocol's draw over pools of these sizes")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.draw_pools:
        time_draws([int(s) for s in args.draw_pools.split(",")])
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers, args.steps)))
        return
    if args.workdir is None:
        parser.error("--workdir is required")
    args.workdir.mkdir(parents=True, exist_ok=True)
    base = build_base(args.workdir, args.pool)
    pool = pool_clips(base)
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            for kind, make in (("shards", make_shards), ("files", make_files)):
                if kind == "files" and size > args.folder_max:
                    continue
                out = args.workdir / f"{kind}-{size}"
                started = time.perf_counter()
                if not out.is_dir():
                    make(base, pool, size, out)
                made = time.perf_counter() - started
                result = subprocess.run([sys.executable, __file__, "--measure", str(out), "--workers",
                                         str(args.workers), "--steps", str(args.steps), "--workdir", "."],
                                        check=True, capture_output=True, text=True, env=os.environ)
                figures = json.loads(result.stdout.strip().splitlines()[-1])
                rows.append({"clips": size, "sources": kind, "disk_gb": _du(out), "made_s": made, **figures})
                print(_row(rows[-1]), file=sys.stderr, flush=True)
                if not args.keep:
                    shutil.rmtree(out)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    print(f"\n{args.workers} workers, batch {BATCH} x {SEGMENT / SAMPLE_RATE} s, {args.steps} timed steps, "
          f"{os.cpu_count()} CPUs\n")
    print("| clips | sources | on disk (GB) | written (s) | start-up (s) | resume at step 1M (s) | examples/s per "
          "worker | peak RSS, process (MB) | peak RSS, worker (MB) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(_row(row))


def _row(row: dict) -> str:
    return (f"| {row['clips']:,} | {row['sources']} | {row['disk_gb']:.2f} | {row['made_s']:.0f} | "
            f"{row['startup']:.2f} | {row['resume']:.2f} | {row['rate']:.0f} | {row['rss']:.0f} | "
            f"{row['worker_rss']:.0f} |")


if __name__ == "__main__":
    main()
