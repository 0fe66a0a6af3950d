"""Training examples for ``lassbench train``, drawn with the build protocol's own code, fed by a torch DataLoader.

``remix`` (default): every step draws fresh items from the benchmark's *training sources* with
:func:`lassbench.protocols.lassbench.draw_spec` and mixes them with :func:`lassbench.mixing.render` — the very code
that built the benchmark — so training and test mixtures follow one definition. The sources come from the build's
``sources.csv`` (path, length and loudness of every clip, measured once by ``build-dataset``), so start-up reads no
audio; an example reads only the frames of its crop from each of its clips.

``fixed``: the built ``train`` split's mixtures, in a per-epoch permutation (again only the crop is read).

``audiosep``: AudioSep's training recipe (``data/waveform_mixers.py`` and ``data/audiotext_dataset.py`` of
github.com/Audio-AGI/AudioSep at 944583f). An example is one training clip (uniform from (seed, index), clips under
1 s left out as the official dataset drops them), a crop of it (zero-padded when shorter) and one of its captions;
the mixtures are made within each micro-batch of ``--batch-size`` examples by :func:`segment_mix`, a line-by-line
port of the official ``SegmentMixer``: example ``n``'s interferer is example ``n + 1`` (cyclically), matched in energy
and moved by a random whole number of dB in [-10, 10], twice, and both are scaled by 0.9/peak if the mixture clips.
Its draws come from Python's ``random`` seeded per micro-batch from (seed, micro-batch index), as the official
``training_step`` seeds it per batch; so the examples depend on ``--batch-size`` (the mixing group), not on the number
of processes or ``--accumulate``.

Example ``j`` of step ``k`` has global index ``k * global_batch + j``; a process of rank ``r`` takes the ``r``-th
slice, so the union of all processes' batches is the one-process batch, and a resumed run sees the batches it would
have seen. Each example is a pure function of (seed, index): DataLoader workers (``workers``) render them in other
processes, and the batches do not depend on how many there are.

Validation always uses the built ``val`` split (fixed mixtures, full length).

Crops (``crop``): ``uniform`` draws the crop's start uniformly over the item; ``active`` draws a random active
256-sample frame of the target (within 40 dB of its loudest frame) and places the crop so that the frame's centre
falls at a uniformly drawn place in it, so that a clip whose sound lasts 0.7 s of its 10 s (the real corpus's median
key or drum hit) is not trained mostly on silence. The frame's centre is always inside the crop; the sound itself
can, rarely, lie just outside (a crop ending mid-frame before it: 20 of 100,000 draws for a lone 0.25 s burst).
Either way the crop is a pure function of (seed, index).

Relative to rendering the whole item and cropping it (lassbench < 0.2): the loudness gains are the same (whole-clip
loudness from ``sources.csv``); the anti-clipping gain is computed on the crop, so an example whose whole mixture
would clip outside its crop is no longer turned down for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lassbench.audio import read_audio, read_audio_range
from lassbench.errors import LassbenchError
from lassbench.manifests import (
    built_benchmark_dir,
    decode_list,
    locate_sources,
    read_dataset_json,
    read_item_manifest,
    read_manifest,
)
from lassbench.models.lassnet import QueryBatch
from lassbench.shards import has_shards

log = logging.getLogger(__name__)

CROPS = ("uniform", "active")
MIXINGS = ("remix", "fixed", "audiosep")
MIN_CLIP_SECONDS = 1.0  # AudioSep's AudioTextDataset drops shorter clips
ACTIVE_FLOOR_DB = -40.0  # a frame is active within this much of the target's loudest frame
SOURCES_TABLE = "sources.csv"  # written by build-dataset (lassbench.build.SOURCES_TABLE)


@dataclass
class TrainBatch:
    mixture: torch.Tensor  # (B, T)
    target: torch.Tensor  # (B, T)
    queries: list[str]
    labels: list[list[str]]

    def query_batch(self, device: str | torch.device = "cpu") -> QueryBatch:
        return QueryBatch(self.queries, self.labels)


@dataclass
class _Example:
    mixture: np.ndarray
    target: np.ndarray
    query: str
    labels: list[str]
    index: int = -1  # the global example index (the audiosep mixer's group)


class _RemixSource:
    """Examples remixed from the training clips: the build protocol's draw, crops read lazily."""

    def __init__(self, table: pd.DataFrame, params, seed: int, sample_rate: int, crop: str = "uniform") -> None:
        from lassbench.protocols.lassbench import SourcePool

        self.pool = SourcePool.from_frame(table)
        self.params, self.seed, self.sample_rate, self.crop = params, seed, sample_rate, crop
        ids = table["source_id"].tolist()
        self.paths = dict(zip(ids, table["path"].tolist(), strict=True))
        self.frames = dict(zip(ids, (int(v) for v in table["frames"].tolist()), strict=True))
        self.loudness = dict(zip(ids, (float(v) for v in table["loudness"].tolist()), strict=True))

    def example(self, index: int, segment: int) -> _Example:
        from lassbench.protocols.lassbench import draw_spec, render

        spec = draw_spec(index, self.pool, self.params, self.seed, split="train")
        length = self.frames[spec.target_id]  # interferers are cut / zero-padded to the target's length
        rng = np.random.default_rng([self.seed, index, 7])
        crops: dict[str, np.ndarray] = {}
        if self.crop == "active" and length > segment:
            target = self._read_whole(spec.target_id)
            offset = _active_crop_offset(target[:length], segment, rng)
            crops[spec.target_id] = _fit(target, offset, min(segment, length - offset))
        else:
            offset = _crop_offset(length, segment, rng)
        size = min(segment, length - offset)
        for sid in dict.fromkeys(spec.source_ids):
            if sid not in crops:
                crops[sid] = _fit(self._read_range(sid, offset, size), 0, size)
        item = render(spec, crops, self.loudness)
        return _Example(_fit(item.mixture, 0, segment), _fit(item.target, 0, segment), spec.query, list(spec.labels))

    def _read_whole(self, source_id: str) -> np.ndarray:
        return read_audio(self.paths[source_id], sample_rate=self.sample_rate)[0]

    def _read_range(self, source_id: str, offset: int, frames: int) -> np.ndarray:
        return read_audio_range(self.paths[source_id], offset, frames, sample_rate=self.sample_rate)


class _FixedSource:
    """Examples cropped from the built train split's mixtures, in a per-epoch permutation."""

    def __init__(self, data_dir: Path, items: pd.DataFrame, seed: int, sample_rate: int, crop: str = "uniform") -> None:
        self.data_dir, self.items, self.seed, self.sample_rate, self.crop = data_dir, items, seed, sample_rate, crop
        self._order: tuple[int, np.ndarray] | None = None  # one epoch's permutation, the only state kept

    def example(self, index: int, segment: int) -> _Example:
        epoch, position = divmod(index, len(self.items))
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.items)))
        row = self.items.iloc[int(self._order[1][position])]
        length = int(row["num_samples"])
        rng = np.random.default_rng([self.seed, index, 7])
        if self.crop == "active" and length > segment:
            whole = read_item_audio(self.data_dir, row, "target", self.sample_rate)
            offset = _active_crop_offset(whole, segment, rng)
            target = whole[offset:offset + segment]  # read once: the range is a slice of the whole
        else:
            offset = _crop_offset(length, segment, rng)
            target = self._read_range(row, "target", offset, segment)
        mixture = self._read_range(row, "mixture", offset, segment)
        return _Example(_fit(mixture, 0, segment), _fit(target, 0, segment), row["query"], list(row["labels"]))

    def _read_range(self, row: pd.Series, kind: str, offset: int, frames: int) -> np.ndarray:
        return read_audio_range(self.data_dir / kind / f"{row['id']}.wav", offset, frames, sample_rate=self.sample_rate)


class _ClipSource:
    """AudioSep's examples: one training clip's crop and caption; mixed later, per micro-batch (:class:`GroupMixer`)."""

    def __init__(self, table: pd.DataFrame, seed: int, sample_rate: int, crop: str = "uniform") -> None:
        from lassbench.protocols.lassbench import SourcePool

        table = table[table["frames"] >= MIN_CLIP_SECONDS * sample_rate].reset_index(drop=True)
        if table.empty:
            raise LassbenchError(f"--mixing audiosep: no training clip of {MIN_CLIP_SECONDS:g} s or more")
        self.pool = SourcePool.from_frame(table)
        self.paths, self.frames = table["path"].tolist(), [int(v) for v in table["frames"].tolist()]
        self.seed, self.sample_rate, self.crop = seed, sample_rate, crop

    def example(self, index: int, segment: int) -> _Example:
        from lassbench.protocols.lassbench import _fallback_query

        rng = np.random.default_rng([self.seed, index, 17])
        row = int(rng.integers(len(self.paths)))
        captions = self.pool.captions[row]
        query = captions[int(rng.integers(len(captions)))] if captions else _fallback_query(self.pool, row)
        length = self.frames[row]
        if self.crop == "active" and length > segment:
            whole = read_audio(self.paths[row], sample_rate=self.sample_rate)[0]
            clip = _fit(whole, _active_crop_offset(whole[:length], segment, rng), segment)
        else:
            offset = _crop_offset(length, segment, rng)
            clip = _fit(read_audio_range(self.paths[row], offset, min(segment, length - offset),
                                         sample_rate=self.sample_rate), 0, segment)
        return _Example(clip, clip, query, list(self.pool.labels[row]), index)


def segment_mix(waveforms: torch.Tensor, rng: random.Random, max_mix_num: int = 2, lower_db: int = -10,
                higher_db: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """AudioSep's ``SegmentMixer.__call__`` (data/waveform_mixers.py at 944583f), its draws from ``rng`` in the
    official order; (mixtures, targets), each [B, T]."""
    batch_size = waveforms.shape[0]
    mixtures, segments = [], []
    for n in range(batch_size):
        segment = waveforms[n].clone()
        noise = torch.zeros_like(segment)
        mix_num = rng.randint(2, max_mix_num)
        for i in range(1, mix_num):
            noise += _dynamic_loudnorm(waveforms[(n + i) % batch_size], segment, rng, lower_db, higher_db)
        noise = _dynamic_loudnorm(noise, segment, rng, lower_db, higher_db)
        mixture = segment + noise
        max_value = torch.max(torch.abs(mixture))
        if max_value > 1:
            segment *= 0.9 / max_value
            mixture *= 0.9 / max_value
        segments.append(segment)
        mixtures.append(mixture)
    return torch.stack(mixtures), torch.stack(segments)


def _dynamic_loudnorm(audio: torch.Tensor, reference: torch.Tensor, rng: random.Random, lower_db: int,
                      higher_db: int) -> torch.Tensor:
    """The official ``dynamic_loudnorm``: match ``reference``'s energy (ratio clamped to [0.02, 50]), then a random
    whole-dB gain."""
    energy = torch.mean(audio ** 2)
    reference_energy = max(torch.mean(reference ** 2), 1e-10)
    ratio = torch.clamp((energy / reference_energy) ** 0.5, 0.02, 50)
    gain = np.power(10.0, rng.randint(lower_db, higher_db) / 20.0)
    return gain * (audio / ratio)


class GroupMixer:
    """Collate for ``--mixing audiosep``: each run of ``group`` consecutive examples (one micro-batch) is mixed by
    :func:`segment_mix` with draws seeded from (seed, its first index // group)."""

    def __init__(self, group: int, seed: int) -> None:
        self.group, self.seed = group, seed

    def __call__(self, examples: list[_Example]) -> TrainBatch:
        batch = collate(examples)
        mixtures, targets = [], []
        for start in range(0, len(examples), self.group):
            number = examples[start].index // self.group
            rng = random.Random(int(np.random.default_rng([self.seed, number, 19]).integers(2**63)))
            mixture, target = segment_mix(batch.target[start:start + self.group], rng)
            mixtures.append(mixture)
            targets.append(target)
        batch.mixture, batch.target = torch.cat(mixtures), torch.cat(targets)
        return batch


class ExampleDataset(torch.utils.data.Dataset):
    """Map-style dataset over global example indices (see the module docstring)."""

    def __init__(self, source: _RemixSource | _FixedSource, segment: int) -> None:
        self.source, self.segment = source, segment

    def __getitem__(self, index: int) -> _Example:
        return self.source.example(int(index), self.segment)


class StepBatches(torch.utils.data.Sampler):
    """The example indices of steps ``start .. stop - 1`` for one rank: ``step * global_batch + rank * batch_size
    + j``."""

    def __init__(self, start: int, stop: int, batch_size: int, *, rank: int = 0, global_batch: int) -> None:
        self.start, self.stop, self.batch_size, self.rank, self.global_batch = start, stop, batch_size, rank, \
            global_batch

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = step * self.global_batch + self.rank * self.batch_size
            yield list(range(first, first + self.batch_size))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def collate(examples: list[_Example]) -> TrainBatch:
    return TrainBatch(
        mixture=torch.from_numpy(np.stack([e.mixture for e in examples])),
        target=torch.from_numpy(np.stack([e.target for e in examples])),
        queries=[e.query for e in examples],
        labels=[e.labels for e in examples],
    )


class _Batches:
    """Deterministic batches of one example source: ``batch(step, ...)`` is a pure function of (seed, step)."""

    source: _RemixSource | _FixedSource | _MixedSource

    def batch(self, step: int, batch_size: int, segment: int, *, rank: int = 0, world: int = 1,
              global_batch: int | None = None, mix_group: int | None = None) -> TrainBatch:
        """The batch of ``step`` for ``rank``, rendered in this process."""
        global_batch = global_batch or batch_size * world
        sampler = StepBatches(step, step + 1, batch_size, rank=rank, global_batch=global_batch)
        _bind(self.source, batch_size, global_batch)
        dataset = ExampleDataset(self.source, segment)
        return self._collate(mix_group or batch_size)([dataset[i] for i in next(iter(sampler))])

    def batches(self, start: int, stop: int, batch_size: int, segment: int, *, rank: int = 0, world: int = 1,
                workers: int = 0, mix_group: int | None = None) -> Iterator[TrainBatch]:
        """The batches of steps ``start .. stop - 1`` for ``rank``, rendered ahead by ``workers`` processes (0: in
        this process); identical whatever ``workers`` is. ``mix_group``: the micro-batch size (``--mixing
        audiosep`` mixes within it; default ``batch_size``)."""
        sampler = StepBatches(start, stop, batch_size, rank=rank, global_batch=batch_size * world)
        _bind(self.source, batch_size, batch_size * world)
        loader = torch.utils.data.DataLoader(
            ExampleDataset(self.source, segment), batch_sampler=sampler, num_workers=workers,
            collate_fn=self._collate(mix_group or batch_size), prefetch_factor=2 if workers else None,
        )
        return iter(loader)

    def _collate(self, group: int):
        return GroupMixer(group, self.seed) if self.mixing == "audiosep" else collate


class TrainingData(_Batches):
    """The training examples and validation items of one built benchmark."""

    def __init__(self, data_dir: Path, *, mixing: str, seed: int, crop: str = "uniform") -> None:
        self.data_dir = data_dir
        self.mixing = mixing
        self.seed = seed
        self.crop = checked_crop(crop)
        self.dataset = read_dataset_json(data_dir)
        self.items = read_item_manifest(data_dir / "manifest.csv")
        self.sample_rate = int(self.dataset.get("sample_rate") or self.items["sample_rate"].iloc[0])
        if mixing == "remix" and has_shards(data_dir):
            from lassbench.shard_training import ShardSource  # training from the sharded sources of `lassbench shard`

            self.source = ShardSource(data_dir, self.dataset, seed, self.sample_rate, self.crop)
            self.classes, self.tags, self.fingerprint = self.source.classes, self.source.tags, self.source.fingerprint
        elif mixing in ("remix", "audiosep"):
            self._init_remix()
        elif mixing == "fixed":
            fixed = self.items[self.items["split"] == "train"].reset_index(drop=True)
            if fixed.empty:
                raise LassbenchError(f"{data_dir}: --mixing fixed needs a built train split (--splits train,...)")
            self.classes = sorted({labels[0] for labels in fixed["labels"] if labels})
            self.tags = sorted({tag for labels in fixed["labels"] for tag in labels})
            self.fingerprint = _digest(sorted(fixed["mixture_sha1"]))
            self.source = _FixedSource(data_dir, fixed, self.seed, self.sample_rate, crop)
        else:
            raise LassbenchError(f"unknown mixing '{mixing}' ({', '.join(MIXINGS)})")

    def _init_remix(self) -> None:
        from lassbench.protocols.lassbench import LassbenchParams

        table = training_sources(self.data_dir, self.dataset, self.sample_rate)
        known = {f.name for f in fields(LassbenchParams)}
        params = {k: v for k, v in (self.dataset.get("parameters") or {}).items() if k in known}
        self.classes = sorted({labels[0] for labels in table["labels"] if labels})
        self.tags = sorted({tag for labels in table["labels"] for tag in labels})  # what tag-queried is asked
        sha1 = table["sha1"] if "sha1" in table else [""] * len(table)
        self.fingerprint = _digest([*sorted(zip(table["source_id"], sha1, strict=True)),
                                    json.dumps(params, sort_keys=True, default=str)])
        if self.mixing == "audiosep":  # the clips alone: the protocol's parameters play no part
            self.source = _ClipSource(table, self.seed, self.sample_rate, self.crop)
        else:
            self.source = _RemixSource(table, LassbenchParams(**params), self.seed, self.sample_rate, self.crop)

    def validation_batches(self, count: int, batch_size: int):
        val = self.items[self.items["split"] == "val"].iloc[:count]
        for start in range(0, len(val), batch_size):
            chunk = val.iloc[start:start + batch_size]
            mixtures = [self._read(r, "mixture") for _, r in chunk.iterrows()]
            length = max(len(m) for m in mixtures)
            yield TrainBatch(
                mixture=torch.from_numpy(np.stack([_fit(m, 0, length) for m in mixtures])),
                target=torch.from_numpy(np.stack([_fit(self._read(r, "target"), 0, length)
                                                  for _, r in chunk.iterrows()])),
                queries=list(chunk["query"]),
                labels=[list(labels) for labels in chunk["labels"]],
            )

    def _read(self, row: pd.Series, kind: str) -> np.ndarray:
        # read at every validation (no cache): 64 items of 10 s at 32 kHz would hold ~160 MB for the whole run
        return read_item_audio(self.data_dir, row, kind, self.sample_rate)


class _MixedSource:
    """Example ``i`` comes from benchmark ``k``, drawn uniformly from (seed, i): a pure function, like its parts."""

    def __init__(self, sources: list[_RemixSource | _FixedSource], seed: int) -> None:
        self.sources, self.seed = sources, seed

    def bind(self, batch_size: int, global_batch: int) -> None:
        for source in self.sources:
            _bind(source, batch_size, global_batch)

    def example(self, index: int, segment: int) -> _Example:
        which = int(np.random.default_rng([self.seed, index, 13]).integers(len(self.sources)))
        return self.sources[which].example(index, segment)  # an audiosep group mixes clips of several benchmarks


class MixedTrainingData(_Batches):
    """Several built benchmarks trained on together (``train --data A --data B``): each example is drawn from one of
    them with equal probability and mixed by that benchmark's own protocol (its sources never meet another's), the
    class list is the union, and validation takes the first ``⌈count / n⌉`` items of each benchmark's ``val``
    split. All must be at one sample rate (build the others with ``--sample-rate``)."""

    def __init__(self, parts: list[TrainingData], seed: int) -> None:
        rates = {part.sample_rate for part in parts}
        if len(rates) > 1:
            listing = ", ".join(f"{part.data_dir} {part.sample_rate} Hz" for part in parts)
            raise LassbenchError(f"--data benchmarks at different sample rates ({listing}): rebuild them at one "
                                 "rate with build-dataset --sample-rate")
        self.parts, self.seed, self.mixing = parts, seed, parts[0].mixing
        self.sample_rate = parts[0].sample_rate
        self.data_dir = parts[0].data_dir
        self.classes = sorted({name for part in parts for name in part.classes})
        self.tags = sorted({tag for part in parts for tag in part.tags})
        self.fingerprint = _digest([part.fingerprint for part in parts])
        self.source = _MixedSource([part.source for part in parts], seed)

    def validation_batches(self, count: int, batch_size: int):
        share = -(-count // len(self.parts))
        for part in self.parts:
            yield from part.validation_batches(share, batch_size)


def open_training_data(data: str | Path | list[str | Path] | tuple[str | Path, ...], *, mixing: str = "remix",
                       seed: int = 0, crop: str = "uniform") -> TrainingData | MixedTrainingData:
    """One built benchmark, or several trained on together (:class:`MixedTrainingData`)."""
    checked_crop(crop)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    if not paths:
        raise LassbenchError("--data: no benchmark given")
    if len({str(built_benchmark_dir(p).resolve()) for p in paths}) < len(paths):
        raise LassbenchError("--data: the same benchmark is given twice")
    parts = [TrainingData(built_benchmark_dir(p), mixing=mixing, seed=seed, crop=crop) for p in paths]
    return parts[0] if len(parts) == 1 else MixedTrainingData(parts, seed)


def training_sources(data_dir: Path, dataset: dict, sample_rate: int) -> pd.DataFrame:
    """The usable ``train`` clips (source_id, path, labels, captions, attributes, sha1, frames, loudness) from the
    build's ``sources.csv``; a benchmark built before it existed is measured here, once per start."""
    table_path = data_dir / ((dataset.get("sources") or {}).get("table") or SOURCES_TABLE)
    if table_path.is_file():
        table = read_manifest(table_path, ["source_id", "path", "split", "frames", "loudness"])
        table["loudness"] = pd.to_numeric(table["loudness"], errors="coerce")
        table["frames"] = pd.to_numeric(table["frames"], errors="coerce")
        table = table[(table["split"] == "train") & table["loudness"].notna()].reset_index(drop=True)
        for column in ("captions", "labels"):
            if column in table:
                table[column] = [decode_list(v) for v in table[column].tolist()]
        origin = str(table_path)
    else:
        origin = sources_origin(data_dir, dataset)
        table = _measure_now(origin, sample_rate, dataset)
    if table.empty:
        raise LassbenchError(f"{origin}: no usable sources of split 'train' to remix training items from")
    _check_folders(table["path"], data_dir)
    return table


def _measure_now(origin: str, sample_rate: int, dataset: dict) -> pd.DataFrame:
    """Measure the train clips of ``origin`` (what build-dataset stores in sources.csv since lassbench 0.2)."""
    from lassbench.corpora import measure_source, resolve_sources

    frame = resolve_sources(origin).frame
    frame = frame[frame["split"] == "train"].reset_index(drop=True)
    duration = (dataset.get("parameters") or {}).get("duration")
    num_samples = int(round(duration * sample_rate)) if duration else None
    log.warning("%s: no %s (built by an older lassbench): measuring %d training clips now; rerun build-dataset "
                "with the same arguments to store them", origin, SOURCES_TABLE, len(frame))
    frames, loudness = [], []
    for path in frame["path"]:
        audio, level, reason = measure_source(path, sample_rate, num_samples)
        frames.append(0 if audio is None else int(audio.shape[0]))
        loudness.append(level if reason is None else np.nan)
    frame = frame.assign(frames=frames, loudness=loudness)
    return frame[frame["loudness"].notna()].reset_index(drop=True)


def sources_origin(data_dir: Path, dataset: dict) -> str:
    """The sources the benchmark was built from (:func:`lassbench.manifests.locate_sources`), or one clear error."""
    if not (dataset.get("sources") or {}).get("origin"):
        raise LassbenchError(f"{data_dir}/dataset.json names no sources: use --mixing fixed")
    origin = locate_sources(data_dir, dataset)
    if origin is None:
        raise LassbenchError(f"training sources {dataset['sources']['origin']} not found (moved?): rebuild, or use "
                             "--mixing fixed")
    return origin


def _check_folders(paths, data_dir: Path) -> None:
    """One stat per folder (not per clip): a moved corpus is refused before training starts."""
    missing = sorted(folder for folder in {os.path.dirname(p) for p in paths} if not os.path.isdir(folder))
    if missing:
        raise LassbenchError(f"{data_dir}: training sources under {missing[0]} not found (moved?): rebuild the "
                             "benchmark, or use --mixing fixed")


def read_item_audio(data_dir: Path, row: pd.Series, kind: str, sample_rate: int) -> np.ndarray:
    """A built item's ``mixture`` or ``target`` at ``sample_rate``."""
    return read_audio(data_dir / kind / f"{row['id']}.wav", sample_rate=sample_rate)[0]


def _bind(source, batch_size: int, global_batch: int) -> None:
    """Tell a source that draws by step (sharded sources: a step's shard) how example indices map to steps."""
    if hasattr(source, "bind"):
        source.bind(batch_size, global_batch)


def checked_crop(crop: str) -> str:
    if crop not in CROPS:
        raise LassbenchError(f"unknown crop '{crop}' ({' or '.join(CROPS)})")
    return crop


def _crop_offset(length: int, segment: int, rng: np.random.Generator) -> int:
    return int(rng.integers(0, length - segment + 1)) if length > segment else 0


def _active_crop_offset(target: np.ndarray, segment: int, rng: np.random.Generator, hop: int = 256) -> int:
    """A crop start that puts the centre of a random active frame of ``target`` at a uniformly drawn place inside
    the crop; a silent target falls back to a uniform start."""
    length = len(target)
    frames = length // hop
    if length <= segment or frames == 0:
        return _crop_offset(length, segment, rng)
    power = np.square(target[:frames * hop], dtype=np.float64).reshape(frames, hop).sum(axis=1)
    peak = float(power.max())
    if peak <= 0.0:
        return _crop_offset(length, segment, rng)
    active = np.flatnonzero(power >= peak * 10.0 ** (ACTIVE_FLOOR_DB / 10.0))
    centre = int(active[rng.integers(len(active))]) * hop + hop // 2
    return int(np.clip(centre - int(rng.integers(0, segment)), 0, length - segment))


def _fit(x: np.ndarray, offset: int, segment: int) -> np.ndarray:
    piece = x[offset:offset + segment]
    return np.pad(piece, (0, segment - len(piece))).astype(np.float32, copy=False)


def _digest(values) -> str:
    return hashlib.sha1("\n".join(map(str, values)).encode()).hexdigest()[:16]
