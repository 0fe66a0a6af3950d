"""Training examples, one at a time: each a pure function of (seed, index), drawn from a built benchmark.

An *example source* has ``example(index, segment) -> Example``: a crop of ``segment`` samples and its query.
:mod:`lassbench.train_data` batches them for ``lassbench train``.

:class:`RemixSource` (``--mixing remix``, the default) draws an item from the benchmark's *training sources* with
:func:`lassbench.protocols.lassbench.draw_spec` and mixes it with :func:`lassbench.mixing.render` — the very code
that built the benchmark — so training and test mixtures follow one definition. The sources come from the build's
``sources.csv`` (:func:`training_sources`: path, length and loudness of every clip, measured once by
``build-dataset``), so start-up reads no audio; an example reads only the frames of its crop from each of its clips.

:class:`FixedSource` (``--mixing fixed``): the built ``train`` split's mixtures, in a per-epoch permutation (again
only the crop is read).

:class:`ClipSource` (``--mixing audiosep``): AudioSep's training examples (``data/audiotext_dataset.py`` of
github.com/Audio-AGI/AudioSep at 944583f): one training clip (uniform from (seed, index), clips under 1 s left out as
the official dataset drops them), a crop of it (zero-padded when shorter) and one of its captions; mixed later, per
micro-batch (:class:`lassbench.train_data.GroupMixer`).

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

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench.audio import read_audio, read_audio_range
from lassbench.errors import LassbenchError
from lassbench.manifests import decode_list, locate_sources, read_manifest

log = logging.getLogger(__name__)

CROPS = ("uniform", "active")
MIN_CLIP_SECONDS = 1.0  # AudioSep's AudioTextDataset drops shorter clips
ACTIVE_FLOOR_DB = -40.0  # a frame is active within this much of the target's loudest frame
SOURCES_TABLE = "sources.csv"  # written by build-dataset (lassbench.build_outputs.SOURCES_TABLE)


@dataclass
class Example:
    mixture: np.ndarray
    target: np.ndarray
    query: str
    labels: list[str]
    index: int = -1  # the global example index (the audiosep mixer's group)


class RemixSource:
    """Examples remixed from the training clips: the build protocol's draw, crops read lazily."""

    def __init__(self, table: pd.DataFrame, params, seed: int, sample_rate: int, crop: str = "uniform") -> None:
        from lassbench.protocols.lassbench import SourcePool

        self.pool = SourcePool.from_frame(table)
        self.params, self.seed, self.sample_rate, self.crop = params, seed, sample_rate, crop
        ids = table["source_id"].tolist()
        self.paths = dict(zip(ids, table["path"].tolist(), strict=True))
        self.frames = dict(zip(ids, (int(v) for v in table["frames"].tolist()), strict=True))
        self.loudness = dict(zip(ids, (float(v) for v in table["loudness"].tolist()), strict=True))

    def example(self, index: int, segment: int) -> Example:
        from lassbench.protocols.lassbench import draw_spec, render

        spec = draw_spec(index, self.pool, self.params, self.seed, split="train")
        length = self.frames[spec.target_id]  # interferers are cut / zero-padded to the target's length
        rng = np.random.default_rng([self.seed, index, 7])
        crops: dict[str, np.ndarray] = {}
        if self.crop == "active" and length > segment:
            target = self._read_whole(spec.target_id)
            offset = _active_crop_offset(target[:length], segment, rng)
            crops[spec.target_id] = padded_crop(target, offset, min(segment, length - offset))
        else:
            offset = _crop_offset(length, segment, rng)
        size = min(segment, length - offset)
        for sid in dict.fromkeys(spec.source_ids):
            if sid not in crops:
                crops[sid] = padded_crop(self._read_range(sid, offset, size), 0, size)
        item = render(spec, crops, self.loudness)
        return Example(padded_crop(item.mixture, 0, segment), padded_crop(item.target, 0, segment), spec.query,
                       list(spec.labels))

    def _read_whole(self, source_id: str) -> np.ndarray:
        return read_audio(self.paths[source_id], sample_rate=self.sample_rate)[0]

    def _read_range(self, source_id: str, offset: int, frames: int) -> np.ndarray:
        return read_audio_range(self.paths[source_id], offset, frames, sample_rate=self.sample_rate)


class FixedSource:
    """Examples cropped from the built train split's mixtures, in a per-epoch permutation."""

    def __init__(self, data_dir: Path, items: pd.DataFrame, seed: int, sample_rate: int, crop: str = "uniform") -> None:
        self.data_dir, self.items, self.seed, self.sample_rate, self.crop = data_dir, items, seed, sample_rate, crop
        self._order: tuple[int, np.ndarray] | None = None  # one epoch's permutation, the only state kept

    def example(self, index: int, segment: int) -> Example:
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
        return Example(padded_crop(mixture, 0, segment), padded_crop(target, 0, segment), row["query"],
                       list(row["labels"]))

    def _read_range(self, row: pd.Series, kind: str, offset: int, frames: int) -> np.ndarray:
        return read_audio_range(self.data_dir / kind / f"{row['id']}.wav", offset, frames, sample_rate=self.sample_rate)


class ClipSource:
    """AudioSep's examples: one training clip's crop and caption; mixed later, per micro-batch
    (:class:`lassbench.train_data.GroupMixer`)."""

    def __init__(self, table: pd.DataFrame, seed: int, sample_rate: int, crop: str = "uniform") -> None:
        from lassbench.protocols.lassbench import SourcePool

        table = table[table["frames"] >= MIN_CLIP_SECONDS * sample_rate].reset_index(drop=True)
        if table.empty:
            raise LassbenchError(f"--mixing audiosep: no training clip of {MIN_CLIP_SECONDS:g} s or more")
        self.pool = SourcePool.from_frame(table)
        self.paths, self.frames = table["path"].tolist(), [int(v) for v in table["frames"].tolist()]
        self.seed, self.sample_rate, self.crop = seed, sample_rate, crop

    def example(self, index: int, segment: int) -> Example:
        from lassbench.protocols.lassbench import _fallback_query

        rng = np.random.default_rng([self.seed, index, 17])
        row = int(rng.integers(len(self.paths)))
        captions = self.pool.captions[row]
        query = captions[int(rng.integers(len(captions)))] if captions else _fallback_query(self.pool, row)
        length = self.frames[row]
        if self.crop == "active" and length > segment:
            whole = read_audio(self.paths[row], sample_rate=self.sample_rate)[0]
            clip = padded_crop(whole, _active_crop_offset(whole[:length], segment, rng), segment)
        else:
            offset = _crop_offset(length, segment, rng)
            clip = padded_crop(read_audio_range(self.paths[row], offset, min(segment, length - offset),
                                         sample_rate=self.sample_rate), 0, segment)
        return Example(clip, clip, query, list(self.pool.labels[row]), index)


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


def padded_crop(x: np.ndarray, offset: int, segment: int) -> np.ndarray:
    """``segment`` samples of ``x`` from ``offset``, zero-padded past its end, as float32."""
    piece = x[offset:offset + segment]
    return np.pad(piece, (0, segment - len(piece))).astype(np.float32, copy=False)
