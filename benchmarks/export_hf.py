"""Peak memory of ``build-dataset --export hf`` against the benchmark's size: the export streams, so it stays flat.

    python benchmarks/export_hf.py                     # 500 and 2,000 items
    python benchmarks/export_hf.py --sizes 100,400     # a quicker look

A real build of 20 items (synth corpus at 16 kHz, 4 s clips, float32 WAVs: 256 kB per file) is replicated to N
items (hard links: the disk holds one copy of the audio, the export still reads every file). Each export runs in its
own process; its wall time and peak RSS (``wait4``) are measured as in ``benchmarks/scale.py``, and its peak
anonymous RSS (``RssAnon`` sampled from /proc every 0.1 s): the memory the export allocates. Total RSS also counts
the pages of memory-mapped files that were read — ``datasets`` writes the rows to an Arrow cache file, and
``save_to_disk`` reads it back through a memory map, so each page read stays resident (file-backed, reclaimed by
the kernel under memory pressure) until the map is closed. Prints a markdown table and the ratios of the largest
size to the smallest (the reference).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import scale

from lassbench.build import BuildConfig, build_dataset
from lassbench.corpora.synth import synth_corpus
from lassbench.manifests import read_manifest, write_manifest_csv

BASE_ITEMS = 20


def base_build(work: Path) -> Path:
    sources = synth_corpus(work / "corpus", clips={"test": 40})
    return build_dataset(BuildConfig(out=work / "base", sources=str(sources), splits=("test",),
                                     num_items=BASE_ITEMS, progress=False)).out


def replicate(base: Path, folder: Path, count: int) -> Path:
    """A built benchmark of ``count`` items whose audio are hard links to the base build's."""
    rows = read_manifest(base / "manifest.csv", ["id"])
    copies = []
    for index in range(count):
        row = rows.iloc[index % len(rows)].copy()
        new_id = f"test-{index:06d}"
        for kind in ("mixture", "target"):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            os.link(base / kind / f"{row['id']}.wav", folder / kind / f"{new_id}.wav")
        row["id"] = new_id
        copies.append(row)
    write_manifest_csv(type(rows)(copies), folder / "manifest.csv")
    return folder


def export_sampled(built: Path, out: Path, report: Path) -> None:
    """Run the export here, sampling this process's ``RssAnon`` every 0.1 s; its peak (MB) goes to ``report``."""
    from lassbench.export_hf import export_hf

    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            with open("/proc/self/status") as fh:
                peak[0] = max(peak[0], next(int(x.split()[1]) for x in fh if x.startswith("RssAnon:")))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    export_hf(built, out)
    done.set()
    sampler.join()
    report.write_text(f"{peak[0] / 1024:.1f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500,2000", help="comma-separated item counts")
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: a temporary folder, removed)")
    parser.add_argument("--child", nargs=3, type=Path, metavar=("BUILT", "OUT", "REPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return export_sampled(*args.child)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lassbench-export-"))
    try:
        base = base_build(work)
        rows = []
        for count in sizes:
            built = replicate(base, work / f"built-{count}", count)
            out = work / f"hf-{count}"
            report = work / f"anon-{count}.txt"
            phase = scale.measure([sys.executable, __file__, "--child", str(built), str(out), str(report)], work,
                                  work / "export.log")
            anon = float(report.read_text())
            audio_mb = sum(p.stat().st_size for p in built.rglob("*.wav")) / 2**20
            rows.append((count, audio_mb, phase, anon))
            shutil.rmtree(out)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print("| items | audio exported (MB) | wall time (s) | peak anonymous RSS (MB) | peak RSS (MB) |")
    print("|---:|---:|---:|---:|---:|")
    for count, audio_mb, phase, anon in rows:
        print(f"| {count:,} | {audio_mb:,.0f} | {phase.wall:.1f} | {anon:,.0f} | {phase.rss_process:,.0f} |")
    (first, *_, anon_first), (last, *_, anon_last) = rows[0][2:], rows[-1][2:]
    print(f"\n{rows[-1][0]:,} / {rows[0][0]:,} items: peak anonymous RSS {anon_last / anon_first:.2f}x, "
          f"peak RSS {last.rss_process / first.rss_process:.2f}x")


if __name__ == "__main__":
    main()
