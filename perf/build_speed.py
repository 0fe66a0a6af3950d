"""Build speed: mixtures per second of ``build-dataset`` next to the I/O floor (a plain read + write copy).

    python perf/build_speed.py                       # 500 items, 32 kHz, 10 s clips, 1 and 2 workers
    python perf/build_speed.py --items 100 --workers 1

Sources: ``--clips`` synth clips rendered at 32 kHz / 10 s and stored as PCM_16 WAV (as downloads are), each item
one target + 2 interferers (3 reads, 4 writes). The floor reads the same 3 sources per item and writes them back
as 4 float32 WAVs with nothing in between, with the same number of processes. The build row includes measuring every
source's loudness once (a cold build). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lassbench.audio import read_audio, sha1_file, write_audio
from lassbench.build import BuildConfig, build_dataset
from lassbench.corpora.synth import generate_clip, synth_classes
from lassbench.manifests import read_item_manifest, write_manifest_csv

SAMPLE_RATE = 32000
SECONDS = 10.0


def make_sources(folder: Path, count: int) -> Path:
    rows = []
    classes = synth_classes()
    for index in range(count):
        clip = generate_clip("test", index, sample_rate=SAMPLE_RATE, duration=SECONDS, seed=7)
        path = folder / f"{clip.source_id}.wav"
        write_audio(path, clip.audio, SAMPLE_RATE, subtype="PCM_16")
        rows.append({"source_id": clip.source_id, "path": path.name, "captions": clip.captions,
                     "labels": [classes[clip.class_id]], "split": "test", "sample_rate": SAMPLE_RATE,
                     "num_samples": clip.audio.shape[0], "duration": SECONDS, "sha1": sha1_file(path)})
    return write_manifest_csv(pd.DataFrame(rows), folder / "manifest.csv")


@dataclass(frozen=True)
class CopyItem:
    """The I/O floor of one item: read its sources, write 4 float32 files, nothing else."""

    sources: str
    out: str

    def __call__(self, job: tuple[str, str, list[str]]) -> None:
        item_id, target_id, interferer_ids = job
        target, sr = read_audio(Path(self.sources) / f"{target_id}.wav")
        noises = [read_audio(Path(self.sources) / f"{i}.wav")[0] for i in interferer_ids]
        out = Path(self.out)
        write_audio(out / "mixture" / f"{item_id}.wav", target, sr)
        write_audio(out / "target" / f"{item_id}.wav", target, sr)
        for k, noise in enumerate(noises):
            write_audio(out / "interferers" / f"{item_id}_{k}.wav", noise, sr)


def copy_floor(sources: Path, manifest: pd.DataFrame, out: Path, workers: int) -> float:
    jobs = list(zip(manifest["id"], manifest["target_id"], manifest["interferer_ids"], strict=True))
    copy = CopyItem(str(sources), str(out))
    start = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(copy, jobs, chunksize=max(1, min(32, len(jobs) // (4 * workers)))))
    else:
        for job in jobs:
            copy(job)
    return time.perf_counter() - start


def time_build(manifest: Path, out: Path, items: int, workers: int) -> float:
    config = BuildConfig(out=out, sources=str(manifest), num_items=items, workers=workers, progress=False,
                         options={"min_interferers": 2, "max_interferers": 2})
    start = time.perf_counter()
    build_dataset(config)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--clips", type=int, default=200, help="distinct source clips")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed after")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lassbench-bench-"))
    try:
        sources = make_sources(workdir / "sources", args.clips)
        print(f"{args.items} items, 1 target + 2 interferers, {SAMPLE_RATE} Hz, {SECONDS:g} s, {args.clips} source "
              f"clips, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
        print("| workers | build (items/s) | read+write copy floor (items/s) | build / floor |")
        print("|---|---|---|---|")
        for workers in args.workers:
            built = workdir / f"built-{workers}"
            build_s = time_build(sources, built, args.items, workers)
            items = read_item_manifest(built / "manifest.csv")
            floor_s = copy_floor(sources.parent, items, workdir / f"floor-{workers}", workers)
            build_rate, floor_rate = len(items) / build_s, len(items) / floor_s
            print(f"| {workers} | {build_rate:.1f} | {floor_rate:.1f} | {build_rate / floor_rate:.2f} |")
            shutil.rmtree(built)
            shutil.rmtree(workdir / f"floor-{workers}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
