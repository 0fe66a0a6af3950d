"""``lassbench shard``: a built benchmark's training clips written as shards (the format of :mod:`lassbench.shards`).

The clips are the benchmark's training sources (:func:`lassbench.train_examples.training_sources`: the ``train``
clips of the build's ``sources.csv``), each cut to the length its loudness was measured on;
:mod:`lassbench.shard_training` draws training examples from the shards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench.audio import read_audio
from lassbench.errors import LassbenchError
from lassbench.manifests import read_dataset_json
from lassbench.shards import SHARDS_DIR, Clip, shard_name, write_index, write_shard
from lassbench.train_examples import training_sources


def shard_sources(data_dir: Path, *, clips_per_shard: int = 1000, seed: int = 0, part: tuple[int, int] = (0, 1),
                  subtype: str = "PCM_16", out: Path | None = None, progress: bool = True) -> Path:
    """Write the ``train`` clips of a built benchmark's ``sources.csv`` (path, frames, loudness measured by
    build-dataset) as shards in ``out`` (default ``data_dir/shards``), in an order shuffled by ``seed`` so that each
    shard holds a sample of every class, in ``ceil(clips / clips_per_shard)`` shards of equal size (to one clip).
    ``part`` i/N writes shards ``i, i+N, ...`` only (one Slurm array task each);
    finished shards are kept on a rerun; ``index.json`` is written once every shard exists."""
    if clips_per_shard < 1:
        raise LassbenchError(f"--clips-per-shard {clips_per_shard}: must be at least 1")
    dataset = read_dataset_json(data_dir)
    sample_rate = int(dataset.get("sample_rate") or 0)
    if not sample_rate:
        raise LassbenchError(f"{data_dir}/dataset.json: no sample_rate")
    table = training_sources(data_dir, dataset, sample_rate)
    table = table.sort_values("source_id").reset_index(drop=True)
    table = table.iloc[np.random.default_rng([seed, 71]).permutation(len(table))].reset_index(drop=True)
    folder = out or data_dir / SHARDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    count = -(-len(table) // clips_per_shard)
    todo = [n for n in range(count) if n % part[1] == part[0] and not (folder / f"{shard_name(n)}.csv").is_file()]
    for number in _progress(todo, progress):
        first, end = number * len(table) // count, (number + 1) * len(table) // count  # sizes differ by <= 1
        write_shard(folder / f"{shard_name(number)}.tar", _clips(table.iloc[first:end], sample_rate), first,
                    sample_rate, subtype=subtype)
    if all((folder / f"{shard_name(n)}.csv").is_file() for n in range(count)):
        stale = [p for p in folder.glob("shard-*.csv") if int(p.stem.split("-")[1]) >= count]
        if stale:
            raise LassbenchError(f"{folder}: holds shards of another layout ({stale[0].name}): write to an empty "
                                 "folder")
        write_index(folder, sample_rate, seed=seed, clips_per_shard=clips_per_shard, origin=str(data_dir))
    return folder


def _clips(rows: pd.DataFrame, sample_rate: int) -> Iterator[Clip]:
    for row in rows.to_dict("records"):
        audio = read_audio(row["path"], sample_rate=sample_rate)[0]
        frames = int(row["frames"])  # the length loudness was measured on (build-dataset's --duration crop)
        audio = np.pad(audio[:frames], (0, max(0, frames - len(audio))))
        attributes = row.get("attributes")
        yield Clip(source_id=str(row["source_id"]), audio=audio, frames=frames, loudness=float(row["loudness"]),
                   labels=list(row.get("labels") or []), captions=list(row.get("captions") or []),
                   attributes=json.loads(attributes) if isinstance(attributes, str) and attributes else {})


def _progress(items: list, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="shards", unit="shard")
