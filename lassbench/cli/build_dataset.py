"""``lassbench build-dataset``: a thin wrapper over :func:`lassbench.ready.build_benchmark` (``build_dataset``, with
the default synth folder kept current) and, with ``--export hf``, :func:`lassbench.export_hf.export_hf`."""

from __future__ import annotations

from pathlib import Path

import click

from lassbench.errors import LassbenchError
from lassbench.protocols import protocol_names

_LASSBENCH_OPTIONS = ("target_lufs", "lufs_jitter", "min_interferers", "max_interferers", "snr_min", "snr_max",
                      "contrast_fraction", "duration", "scenes")


def _parse_shard(value: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in value.split("/"))
    except ValueError:
        raise LassbenchError(f"--shard {value!r}: expected i/N, e.g. 0/4") from None
    return index, count


def _parse_num_items(value: str | None) -> int | dict[str, int] | None:
    if value is None:
        return None
    try:
        if "=" not in value:
            return int(value)
        return {k.strip(): int(v) for k, v in (part.split("=") for part in value.split(","))}
    except ValueError:
        raise LassbenchError(f"--num-items {value!r}: expected N or split=N,split=N") from None


@click.command("build-dataset", context_settings={"max_content_width": 110})
@click.option("--sources", default="synth", show_default=True,
              help="'synth' (the embedded corpus), a folder from `lassbench download audiocaps`, a source-manifest "
                   "CSV, or any folder of audio files (ids = file stems).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder. Default: $LASSBENCH_CACHE/benchmarks/<sources>[-<protocol>].")
@click.option("--protocol", default="lassbench", show_default=True,
              help=f"How items are chosen and mixed: {', '.join(protocol_names())} (docs/protocols.md).")
@click.option("--index", "index", default=None, metavar="PATH_OR_URL",
              help="Published index file (lassnet: evaluation_indexes.csv; audiosep: <set>_eval.csv, with --sources "
                   "AudioSep's evaluation/data/<set> to read its rendered files as they are; dcase2024: "
                   "source,noise,snr,caption list; clapsep: audiocaps_eval.csv, esc_eval.csv, fsd_eval.csv, "
                   "music_eval.csv or audioset_eval.csv). Required by those protocols.")
@click.option("--splits", default=None, metavar="LIST",
              help="Comma-separated splits to build, e.g. train,val,test. Default: val,test (those present).")
@click.option("--num-items", default=None, metavar="N|SPLIT=N,...",
              help="Items per split (lassbench protocol). Default: synth 2000/200/300 for train/val/test, "
                   "otherwise one item per source clip of the split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Build seed: same seed, same items.")
@click.option("--sample-rate", type=int, default=None,
              help="Output rate in Hz (sources are resampled). Default: lassbench = the sources' rate, "
                   "lassnet/audiosep/clapsep 32000, dcase2024 16000.")
@click.option("--duration", type=float, default=None,
              help="lassbench: crop / zero-pad every clip to this many seconds before measuring loudness.")
@click.option("--target-lufs", type=float, default=None, help="lassbench: target loudness, LUFS [default: -23].")
@click.option("--lufs-jitter", type=float, default=None,
              help="lassbench: target loudness drawn from U[target-j, target+j] [default: 0].")
@click.option("--min-interferers", type=int, default=None, help="lassbench: fewest interferers [default: 1].")
@click.option("--max-interferers", type=int, default=None, help="lassbench: most interferers [default: 2].")
@click.option("--snr-min", type=float, default=None, help="lassbench: lowest target-to-interferer LU [default: -5].")
@click.option("--snr-max", type=float, default=None, help="lassbench: highest target-to-interferer LU [default: 5].")
@click.option("--contrast-fraction", type=float, default=None,
              help="lassbench: share of items whose first interferer is the same class with another attribute "
                   "[default: 0.3 when the sources have attributes (synth), else 0].")
@click.option("--scenes", is_flag=True, default=None,
              help="lassbench: soundscapes: the target and interferers at drawn, overlapping onsets over a looped "
                   "real background (an ambience of the same split, 3-12 LU below the target); each item's event "
                   "spec is its `scene` column (docs/real-corpus.md).")
@click.option("--subtype", default="FLOAT", show_default=True,
              help="WAV sample format: FLOAT (keeps the references exact), PCM_16 or PCM_24.")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes rendering items.")
@click.option("--shard", default="0/1", show_default=True, metavar="i/N",
              help="Build only items whose position % N == i (0-based). Shards may share one --out; the manifest "
                   "is written when all items exist. Rerunning resumes.")
@click.option("--exclude-ids", type=click.Path(path_type=Path), default=None, metavar="FILE|MANIFEST",
              help="Never use these clips: a text list of ids or a manifest (source_id/youtube_id/target_id...).")
@click.option("--train-manifest", type=click.Path(path_type=Path), default=None, metavar="FILE|MANIFEST",
              help="Report (leakage.csv) every target/interferer whose id appears in this training list.")
@click.option("--strict", is_flag=True, help="With --train-manifest: refuse to build when anything leaks.")
@click.option("--allow-missing", is_flag=True,
              help="Index rows naming clips absent from the sources are skipped (listed in skipped.csv) "
                   "instead of failing.")
@click.option("--export", "export", nargs=2, type=(str, click.Path(path_type=Path)), default=None,
              metavar="hf OUTDIR", help="Also save a datasets.DatasetDict (one dataset per split) in OUTDIR.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(sources, out, protocol, index, splits, num_items, seed, sample_rate, shard, workers, subtype,
            exclude_ids, train_manifest, strict, allow_missing, export, quiet, **lassbench_options) -> None:
    """Build a LASS benchmark: mixtures, targets, queries, manifest.

    With no arguments: the embedded synth benchmark (val + test). Outputs: OUT/mixture/<id>.wav,
    OUT/target/<id>.wav, OUT/interferers/<id>_<k>.wav, OUT/manifest.csv (+ .parquet), OUT/dataset.json,
    OUT/skipped.csv.
    """
    from lassbench.build import BuildConfig
    from lassbench.protocols import get_protocol
    from lassbench.ready import build_benchmark

    get_protocol(protocol)  # an unknown name is a one-line error before anything is read
    if export and export[0] != "hf":
        raise LassbenchError(f"--export {export[0]!r}: the only format is hf")
    options = {k: v for k, v in lassbench_options.items() if v is not None}
    if options and protocol != "lassbench":
        flags = ", ".join("--" + k.replace("_", "-") for k in options)
        raise LassbenchError(f"{flags}: only for --protocol lassbench")
    if protocol != "lassbench" and num_items is not None:
        raise LassbenchError("--num-items: only for --protocol lassbench (the index file fixes the items)")
    config = BuildConfig(
        out=out, sources=sources, protocol=protocol, index=index,
        splits=tuple(s.strip() for s in splits.split(",") if s.strip()) if splits else None,
        num_items=_parse_num_items(num_items), seed=seed, sample_rate=sample_rate, subtype=subtype,
        workers=workers, shard=_parse_shard(shard), exclude_ids=exclude_ids, train_manifest=train_manifest,
        strict=strict, allow_missing=allow_missing, export_hf=export[1] if export else None, options=options,
        progress=not quiet,
    )
    if protocol == "lassbench" and sources is not None:  # only this protocol queries clips without captions
        from lassbench.corpora.folder import uncaptioned_note

        if note := uncaptioned_note(sources):
            click.echo(note, err=True)
    result = build_benchmark(config)
    if result.total == 0:
        raise LassbenchError(f"nothing to build: no item could be planned (skipped sources and index rows, with "
                             f"reasons: {result.out / 'skipped.csv'})")
    done = f"{result.built} item(s) built, {result.reused} reused"
    if result.manifest is None:
        click.echo(f"{done}; shard {shard} finished in {result.out}. The manifest is written when every shard's "
                   "items exist: rerun any shard once all have finished.")
    else:
        click.echo(f"{done}; {result.total} items in {result.manifest} ({result.skipped} skipped: see skipped.csv)")
