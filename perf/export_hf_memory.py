"""Peak memory of ``build-dataset --export hf`` against the benchmark's size: the export streams, so it stays flat.

    python perf/export_hf_memory.py                     # 500 and 2,000 items, lassbench and the reference
    python perf/export_hf_memory.py --sizes 100,400     # a quicker look

The reference saves the same rows through ``datasets`` itself: ``Dataset.from_generator`` (16 rows per write, the
WAV bytes read as each row is written) then ``DatasetDict.save_to_disk``.

A real build of 20 items (synth corpus at 16 kHz, 4 s clips, float32 WAVs: 256 kB per file) is replicated to N
items (hard links: the disk holds one copy of the audio, the export still reads every file). Each export runs in its
own process; its wall time and peak RSS (``wait4``) are measured as in ``perf/scale.py``, and its peak
anonymous RSS (``RssAnon`` sampled from /proc every 0.1 s): the memory the export allocates. Total RSS also counts
the pages of memory-mapped files that were read (file-backed: reclaimed by the kernel under memory pressure), which
grow with the size when an export reads what it wrote back through a memory map, as ``Dataset.save_to_disk`` does
with ``datasets``' cache file. Prints a markdown table and, per exporter, the ratios of the largest size to the
smallest.
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


def export_via_datasets(built: Path, out: Path) -> None:
    """The reference: the rows written to a ``datasets`` cache by ``from_generator``, then ``save_to_disk``."""
    import datasets

    from lassbench.export_hf import hf_features, text_fields
    from lassbench.manifests import read_item_manifest

    wav = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
    plain = datasets.Features({**hf_features(), "mixture": wav, "target": wav})
    frame = read_item_manifest(built / "manifest.csv")
    with tempfile.TemporaryDirectory(prefix=".export-hf-", dir=out.parent) as cache:
        splits = {}
        for split, part in frame.groupby("split", sort=False):
            rows = datasets.Dataset.from_generator(_rows, features=plain, cache_dir=cache, writer_batch_size=16,
                                                   gen_kwargs={"built": str(built), "items": text_fields(part)})
            for kind in ("mixture", "target"):  # declares the column Audio without rewriting it
                rows = rows.cast_column(kind, datasets.Audio(decode=False))
            splits[str(split)] = rows
        datasets.DatasetDict(splits).save_to_disk(str(out))


def _rows(built: str, items: list[dict]):
    for item in items:
        yield {**item, **{kind: {"bytes": (Path(built) / kind / f"{item['id']}.wav").read_bytes(),
                                 "path": f"{item['id']}.wav"} for kind in ("mixture", "target")}}


EXPORTERS = ("lassbench", "datasets")  # lassbench.export_hf.export_hf; the reference above


def export_sampled(exporter: str, built: Path, out: Path, report: Path) -> None:
    """Run the export here, sampling this process's ``RssAnon`` every 0.1 s; its peak (MB) goes to ``report``."""
    if exporter == "lassbench":
        from lassbench.export_hf import export_hf
    else:
        export_hf = export_via_datasets

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
    parser.add_argument("--exporters", default="lassbench,datasets", help=f"comma-separated: {', '.join(EXPORTERS)}")
    parser.add_argument("--child", nargs=4, metavar=("EXPORTER", "BUILT", "OUT", "REPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        exporter, *paths = args.child
        return export_sampled(exporter, *(Path(p) for p in paths))
    sizes = [int(s) for s in args.sizes.split(",")]
    exporters = [e for e in args.exporters.split(",") if e]
    if unknown := set(exporters) - set(EXPORTERS):
        parser.error(f"--exporters: unknown {', '.join(sorted(unknown))}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lassbench-export-"))
    try:
        base = base_build(work)
        rows = []
        for count in sizes:
            built = replicate(base, work / f"built-{count}", count)
            audio_mb = sum(p.stat().st_size for p in built.rglob("*.wav")) / 2**20
            for exporter in exporters:  # one after the other, so both see the same machine
                out, report = work / f"hf-{exporter}-{count}", work / f"anon-{exporter}-{count}.txt"
                phase = scale.measure([sys.executable, __file__, "--child", exporter, str(built), str(out),
                                       str(report)], work, work / "export.log")
                rows.append((exporter, count, audio_mb, phase, float(report.read_text())))
                shutil.rmtree(out)
            shutil.rmtree(built)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print_table(rows, exporters)


def print_table(rows: list[tuple], exporters: list[str]) -> None:
    print("| export | items | audio exported (MB) | wall time (s) | peak anonymous RSS (MB) | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for exporter in exporters:
        for _, count, audio_mb, phase, anon in (r for r in rows if r[0] == exporter):
            print(f"| {exporter} | {count:,} | {audio_mb:,.0f} | {phase.wall:.1f} | {anon:,.0f} | "
                  f"{phase.rss_process:,.0f} |")
    print()
    for exporter in exporters:
        mine = [r for r in rows if r[0] == exporter]
        (_, first, _, phase_first, anon_first), (_, last, _, phase_last, anon_last) = mine[0], mine[-1]
        print(f"{exporter}: {last:,} / {first:,} items: peak anonymous RSS {anon_last / anon_first:.2f}x, "
              f"peak RSS {phase_last.rss_process / phase_first.rss_process:.2f}x")


if __name__ == "__main__":
    main()
