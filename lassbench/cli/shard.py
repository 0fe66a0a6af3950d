"""``lassbench shard``: a thin wrapper over :func:`lassbench.sharding.shard_sources`."""

from __future__ import annotations

from pathlib import Path

import click

from lassbench.errors import LassbenchError


def _parse_part(value: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in value.split("/"))
    except ValueError:
        raise LassbenchError(f"--part {value!r}: expected i/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise LassbenchError(f"--part {value!r}: need 0 <= i < N")
    return index, count


@click.command("shard", context_settings={"max_content_width": 110})
@click.argument("benchmark", type=click.Path(path_type=Path))
@click.option("--clips-per-shard", default=1000, show_default=True,
              help="Most clips in a tar shard (spread evenly over the shards); a shard is also the pool each training "
                   "example's target and interferers are drawn from.")
@click.option("--seed", default=0, show_default=True, help="Order of the clips across shards.")
@click.option("--subtype", default="PCM_16", show_default=True, type=click.Choice(["PCM_16", "PCM_24"]),
              help="FLAC sample format.")
@click.option("--part", default="0/1", show_default=True, metavar="i/N",
              help="Write only shards i, i+N, ... (one Slurm array task each). index.json is written by the part "
                   "that finds every shard done: rerun any part once all have finished.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(benchmark: Path, clips_per_shard: int, seed: int, subtype: str, part: str, quiet: bool) -> None:
    """Write BENCHMARK's training sources as WebDataset tar shards in BENCHMARK/shards.

    Reads the train clips of BENCHMARK/sources.csv (written by build-dataset, with each clip's length and
    loudness), writes shard-NNNNNN.tar (<key>.flac + <key>.json) with an index shard-NNNNNN.csv each, then
    index.json. `lassbench train --data BENCHMARK --mixing remix` then streams the shards instead of the files.
    """
    from lassbench.manifests import built_benchmark_dir
    from lassbench.sharding import shard_sources
    from lassbench.shards import INDEX_FILE

    folder = shard_sources(built_benchmark_dir(benchmark), clips_per_shard=clips_per_shard, seed=seed,
                           part=_parse_part(part), subtype=subtype, progress=not quiet)
    if (folder / INDEX_FILE).is_file():
        click.echo(f"shards and index in {folder}")
    else:
        click.echo(f"part {part} finished in {folder}; index.json is written once every part has: rerun any part")
