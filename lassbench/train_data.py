"""Training batches for ``lassbench train``: the examples of :mod:`lassbench.train_examples`, fed by a torch
DataLoader, one benchmark or several.

``--mixing``: ``remix`` (default; from the shards of ``lassbench shard`` when the benchmark has them,
:mod:`lassbench.shard_training`), ``fixed`` or ``audiosep`` (see :mod:`lassbench.train_examples`).

``audiosep``: AudioSep's training recipe (``data/waveform_mixers.py`` and ``data/audiotext_dataset.py`` of
github.com/Audio-AGI/AudioSep at 944583f). The mixtures are made within each micro-batch of ``--batch-size``
examples by :func:`segment_mix`, a line-by-line port of the official ``SegmentMixer``: example ``n``'s interferer is
example ``n + 1`` (cyclically), matched in energy and moved by a random whole number of dB in [-10, 10], twice, and
both are scaled by 0.9/peak if the mixture clips. Its draws come from Python's ``random`` seeded per micro-batch from
(seed, micro-batch index), as the official ``training_step`` seeds it per batch; so the examples depend on
``--batch-size`` (the mixing group), not on the number of processes or ``--accumulate``.

Example ``j`` of step ``k`` has global index ``k * global_batch + j``; a process of rank ``r`` takes the ``r``-th
slice, so the union of all processes' batches is the one-process batch, and a resumed run sees the batches it would
have seen. Each example is a pure function of (seed, index): DataLoader workers (``workers``) render them in other
processes, and the batches do not depend on how many there are.

Validation always uses the built ``val`` split (fixed mixtures, full length).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lassbench.errors import LassbenchError
from lassbench.manifests import built_benchmark_dir, read_dataset_json, read_item_manifest
from lassbench.models.lassnet import QueryBatch
from lassbench.shard_training import ShardSource
from lassbench.shards import has_shards
from lassbench.train_examples import (
    ClipSource,
    Example,
    FixedSource,
    RemixSource,
    checked_crop,
    padded_crop,
    read_item_audio,
    training_sources,
)

MIXINGS = ("remix", "fixed", "audiosep")


@dataclass
class TrainBatch:
    mixture: torch.Tensor  # (B, T)
    target: torch.Tensor  # (B, T)
    queries: list[str]
    labels: list[list[str]]

    def query_batch(self, device: str | torch.device = "cpu") -> QueryBatch:
        return QueryBatch(self.queries, self.labels)


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

    def __call__(self, examples: list[Example]) -> TrainBatch:
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

    def __init__(self, source: RemixSource | FixedSource, segment: int) -> None:
        self.source, self.segment = source, segment

    def __getitem__(self, index: int) -> Example:
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


def collate(examples: list[Example]) -> TrainBatch:
    return TrainBatch(
        mixture=torch.from_numpy(np.stack([e.mixture for e in examples])),
        target=torch.from_numpy(np.stack([e.target for e in examples])),
        queries=[e.query for e in examples],
        labels=[e.labels for e in examples],
    )


class _Batches:
    """Deterministic batches of one example source: ``batch(step, ...)`` is a pure function of (seed, step)."""

    source: RemixSource | FixedSource | _MixedSource

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
        if mixing == "remix" and has_shards(data_dir):  # the sharded sources of `lassbench shard`
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
            self.source = FixedSource(data_dir, fixed, self.seed, self.sample_rate, crop)
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
            self.source = ClipSource(table, self.seed, self.sample_rate, self.crop)
        else:
            self.source = RemixSource(table, LassbenchParams(**params), self.seed, self.sample_rate, self.crop)

    def validation_batches(self, count: int, batch_size: int):
        val = self.items[self.items["split"] == "val"].iloc[:count]
        for start in range(0, len(val), batch_size):
            chunk = val.iloc[start:start + batch_size]
            mixtures = [self._read(r, "mixture") for _, r in chunk.iterrows()]
            length = max(len(m) for m in mixtures)
            yield TrainBatch(
                mixture=torch.from_numpy(np.stack([padded_crop(m, 0, length) for m in mixtures])),
                target=torch.from_numpy(np.stack([padded_crop(self._read(r, "target"), 0, length)
                                                  for _, r in chunk.iterrows()])),
                queries=list(chunk["query"]),
                labels=[list(labels) for labels in chunk["labels"]],
            )

    def _read(self, row: pd.Series, kind: str) -> np.ndarray:
        # read at every validation (no cache): 64 items of 10 s at 32 kHz would hold ~160 MB for the whole run
        return read_item_audio(self.data_dir, row, kind, self.sample_rate)


class _MixedSource:
    """Example ``i`` comes from benchmark ``k``, drawn uniformly from (seed, i): a pure function, like its parts."""

    def __init__(self, sources: list[RemixSource | FixedSource], seed: int) -> None:
        self.sources, self.seed = sources, seed

    def bind(self, batch_size: int, global_batch: int) -> None:
        for source in self.sources:
            _bind(source, batch_size, global_batch)

    def example(self, index: int, segment: int) -> Example:
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


def _bind(source, batch_size: int, global_batch: int) -> None:
    """Tell a source that draws by step (sharded sources: a step's shard) how example indices map to steps."""
    if hasattr(source, "bind"):
        source.bind(batch_size, global_batch)


def _digest(values) -> str:
    return hashlib.sha1("\n".join(map(str, values)).encode()).hexdigest()[:16]
