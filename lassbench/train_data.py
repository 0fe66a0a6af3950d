"""Training examples for ``lassbench train``, drawn with the build protocol's own code.

``remix`` (default): every step draws fresh items from the benchmark's *training sources* with
:func:`lassbench.protocols.lassbench.draw_spec` and renders them in memory with :func:`lassbench.mixing.render` —
the very code that built the benchmark — so training and test mixtures follow one definition. Item ``j`` of step ``k``
has global index ``k * global_batch + j``; a process of rank ``r`` takes the ``r``-th slice, so the union of all
processes' batches is the one-process batch, and a resumed run sees the batches it would have seen.

``fixed``: the built ``train`` split's mixtures, in a per-epoch permutation.

Validation always uses the built ``val`` split (fixed mixtures, full length).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lassbench.audio import read_audio
from lassbench.corpora import resolve_sources
from lassbench.errors import LassbenchError
from lassbench.manifests import built_benchmark_dir, read_dataset_json, read_item_manifest
from lassbench.models.lassnet import QueryBatch


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


class TrainingData:
    """Deterministic batches of a built benchmark: ``batch(step, ...)`` is a pure function of (seed, step)."""

    def __init__(self, data_dir: Path, *, mixing: str, seed: int) -> None:
        self.data_dir = data_dir
        self.mixing = mixing
        self.seed = seed
        self.dataset = read_dataset_json(data_dir)
        self.items = read_item_manifest(data_dir / "manifest.csv")
        self.sample_rate = int(self.dataset.get("sample_rate") or self.items["sample_rate"].iloc[0])
        self._audio_cache: dict[Path, np.ndarray] = {}
        if mixing == "remix":
            self._init_remix()
        elif mixing == "fixed":
            self._fixed = self.items[self.items["split"] == "train"].reset_index(drop=True)
            if self._fixed.empty:
                raise LassbenchError(f"{data_dir}: --mixing fixed needs a built train split (--splits train,...)")
            self.classes = sorted({labels[0] for labels in self._fixed["labels"] if labels})
            self.fingerprint = _digest(sorted(self._fixed["mixture_sha1"]))
        else:
            raise LassbenchError(f"unknown mixing '{mixing}' (remix or fixed)")

    def _init_remix(self) -> None:
        from lassbench.protocols.lassbench import LassbenchParams, SourcePool, load_sources

        origin = _sources_origin(self.data_dir, self.dataset)
        frame = resolve_sources(origin).frame
        frame = frame[frame["split"] == "train"].reset_index(drop=True)
        if frame.empty:
            raise LassbenchError(f"{origin}: no sources of split 'train' to remix training items from")
        loaded = load_sources(frame, self.sample_rate)
        frame = frame[frame["source_id"].isin(loaded.loudness)].reset_index(drop=True)
        self._audio, self._loudness = loaded.audio, loaded.loudness
        self._pool = SourcePool.from_frame(frame)
        known = {f.name for f in fields(LassbenchParams)}
        params = {k: v for k, v in (self.dataset.get("parameters") or {}).items() if k in known}
        self._params = LassbenchParams(**params)
        self.classes = sorted({labels[0] for labels in frame["labels"] if labels})
        self.fingerprint = _digest([*sorted(zip(frame["source_id"], frame["sha1"], strict=True)),
                                    json.dumps(params, sort_keys=True, default=str)])

    def batch(self, step: int, batch_size: int, segment: int, *, rank: int = 0, world: int = 1,
              global_batch: int | None = None) -> TrainBatch:
        global_batch = global_batch or batch_size * world
        first = step * global_batch + rank * batch_size
        examples = [self._example(first + j, segment) for j in range(batch_size)]
        return TrainBatch(
            mixture=torch.from_numpy(np.stack([e.mixture for e in examples])),
            target=torch.from_numpy(np.stack([e.target for e in examples])),
            queries=[e.query for e in examples],
            labels=[e.labels for e in examples],
        )

    def _example(self, index: int, segment: int) -> _Example:
        if self.mixing == "remix":
            from lassbench.protocols.lassbench import draw_spec, render

            spec = draw_spec(index, self._pool, self._params, self.seed, split="train")
            item = render(spec, self._audio, self._loudness)
            mixture, target, query, labels = item.mixture, item.target, spec.query, list(spec.labels)
        else:
            epoch, position = divmod(index, len(self._fixed))
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self._fixed))
            row = self._fixed.iloc[int(order[position])]
            mixture, target = self._read(row, "mixture"), self._read(row, "target")
            query, labels = row["query"], list(row["labels"])
        offset = _crop_offset(len(mixture), segment, np.random.default_rng([self.seed, index, 7]))
        return _Example(_fit(mixture, offset, segment), _fit(target, offset, segment), query, labels)

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
        path = self.data_dir / kind / f"{row['id']}.wav"
        if path not in self._audio_cache:
            self._audio_cache[path] = read_audio(path, sample_rate=self.sample_rate)[0]
        return self._audio_cache[path]


def open_training_data(data: str | Path, *, mixing: str = "remix", seed: int = 0) -> TrainingData:
    return TrainingData(built_benchmark_dir(data), mixing=mixing, seed=seed)


def _sources_origin(data_dir: Path, dataset: dict) -> str:
    """The sources the benchmark was built from, as build-dataset recorded them in dataset.json."""
    origin = (dataset.get("sources") or {}).get("origin")
    if not origin:
        raise LassbenchError(f"{data_dir}/dataset.json names no sources: use --mixing fixed")
    if origin != "synth" and not Path(origin).exists():
        raise LassbenchError(f"training sources {origin} not found (moved?): rebuild, or use --mixing fixed")
    return origin


def _crop_offset(length: int, segment: int, rng: np.random.Generator) -> int:
    return int(rng.integers(0, length - segment + 1)) if length > segment else 0


def _fit(x: np.ndarray, offset: int, segment: int) -> np.ndarray:
    piece = x[offset:offset + segment]
    return np.pad(piece, (0, segment - len(piece))).astype(np.float32, copy=False)


def _digest(values) -> str:
    return hashlib.sha1("\n".join(map(str, values)).encode()).hexdigest()[:16]
