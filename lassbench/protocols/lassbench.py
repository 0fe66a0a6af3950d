"""The ``lassbench`` protocol: loudness-controlled mixtures with a well-defined target loudness and SNR.

Item ``i`` of split ``s`` is drawn by an RNG seeded with ``(seed, s, i)`` only (any shard, any order, same item):

1. a target clip, uniformly from the split's usable clips;
2. its loudness ``T ~ U[target_lufs - lufs_jitter, target_lufs + lufs_jitter]`` LUFS;
3. ``K ~ U{min_interferers..max_interferers}`` interferers, each at ``T - snr_k`` LUFS, ``snr_k ~ U[snr_min,
   snr_max]`` LU;
4. with probability ``contrast_fraction`` (and when one exists) the first interferer is an *attribute-contrast*
   clip: same labels as the target, another value of one of ``contrast_attributes`` (e.g. the same alarm, but
   low-pitched instead of high) — condition ``attribute_contrast``; label-disjointness is waived for that one by
   design: only the query's words can tell target from interferer. All other interferers share no label with the
   target (when labels exist) — condition ``different_class`` (``unlabelled`` when the target has no labels);
5. the query: one of the target's captions (its first label, or its id, when it has none).
6. with ``scenes`` (``build-dataset --scenes``), drawn last: a background (an ambience of the split, never a
   foreground event) ``U[background_snr_min, background_snr_max]`` LU below the target, and the events' onsets —
   the target anywhere in the clip, each interferer overlapping it, the background looped over the whole clip —
   stored as the item's ``scene`` spec (:mod:`lassbench.scenes`), which regenerates the mixture.

Mixing (:func:`lassbench.mixing.render`, rule ``loudness``): gains from each clip's integrated loudness, measured
once per clip; one common gain ``0.99/peak`` when the mixture's peak would exceed 1 (recorded in ``gain``; the
recorded loudnesses include it). The item's ``snr_db`` is measured by the build on what it writes:
``L(target) - L(sum of interferers)``; ``planned_snr_db`` keeps the draw's ``-10 log10(sum_k 10^(-snr_k/10))``
(for one interferer both are ``snr_1``; for two, gating makes them differ by up to ~3 LU).

In-memory use (training with fresh mixtures every epoch, the same code path as the build)::

    from lassbench.corpora import load_sources, read_source
    from lassbench.manifests import read_source_manifest
    from lassbench.protocols.lassbench import LassbenchParams, SourcePool, draw_spec, render

    frame = read_source_manifest(synth_corpus())
    frame = frame[frame["split"] == "train"]
    loaded = load_sources(frame, 16000)                      # audio + loudness, once per clip
    pool = SourcePool.from_frame(frame[frame.source_id.isin(loaded.loudness)])
    params = LassbenchParams(contrast_fraction=0.3)
    spec = draw_spec(epoch * 100_000 + i, pool, params, seed=0, split="train")
    item = render(spec, loaded.audio, loaded.loudness)       # item.mixture, item.target, item.spec.query
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import pandas as pd

from lassbench.corpora import load_sources, read_source
from lassbench.errors import LassbenchError
from lassbench.manifests import decode_list
from lassbench.mixing import ItemSpec, RenderedItem, render
from lassbench.protocols import BuildRequest, Plan, Prepared, item_id, item_rng
from lassbench.scenes import Event, Scene, active_span

__all__ = [
    "LassbenchParams", "SourcePool", "draw_spec", "render", "load_sources", "ItemSpec", "RenderedItem", "prepare",
]

NAME = "lassbench"
SI_SDR_CONVENTION = "zero-mean"  # lassbench's own (zero-mean, capped at ±100 dB: lassbench.metrics)
SYNTH_ITEMS = {"train": 2000, "val": 200, "test": 300}
DEFAULT_SPLITS = ("val", "test", "test-unseen")  # those the sources have
SCENE_PARAMETERS = ("scenes", "background_snr_min", "background_snr_max", "background_labels")
# AudioSet names of sounds that fill a scene (ambiences); a scene's background is a clip with one of them
BACKGROUND_LABELS = ("Water", "Traffic noise, roadway noise", "Mechanisms", "Fire", "Train", "Crowd", "Rain", "Wind",
                     "Stream", "Ocean", "Insect", "Engine")


@dataclass
class LassbenchParams:
    target_lufs: float = -23.0
    lufs_jitter: float = 0.0
    min_interferers: int = 1
    max_interferers: int = 2
    snr_min: float = -5.0
    snr_max: float = 5.0
    contrast_fraction: float = 0.0
    contrast_attributes: tuple[str, ...] = ("pitch", "tempo")
    scenes: bool = False  # soundscapes: events at drawn onsets over a looped background (lassbench.scenes)
    background_snr_min: float = 3.0  # the target this many LU above the background, at least
    background_snr_max: float = 12.0
    background_labels: tuple[str, ...] = BACKGROUND_LABELS

    def __post_init__(self) -> None:
        if not 1 <= self.min_interferers <= self.max_interferers:
            raise LassbenchError(f"interferers: need 1 <= min ({self.min_interferers}) <= max "
                                 f"({self.max_interferers})")
        if self.snr_min > self.snr_max:
            raise LassbenchError(f"--snr-min {self.snr_min} is above --snr-max {self.snr_max}")
        if not 0.0 <= self.contrast_fraction <= 1.0:
            raise LassbenchError(f"--contrast-fraction {self.contrast_fraction} is not in [0, 1]")
        if self.lufs_jitter < 0:
            raise LassbenchError(f"--lufs-jitter {self.lufs_jitter} is negative")
        self.contrast_attributes = tuple(self.contrast_attributes)
        self.background_labels = tuple(self.background_labels)
        if self.background_snr_min > self.background_snr_max:
            raise LassbenchError(f"--background-snr-min {self.background_snr_min} is above --background-snr-max "
                                 f"{self.background_snr_max}")


@dataclass(frozen=True)
class SourcePool:
    """The candidate clips of one split, indexed for fast drawing (build once, draw many times)."""

    ids: tuple[str, ...]
    captions: tuple[tuple[str, ...], ...]
    labels: tuple[tuple[str, ...], ...]
    attributes: tuple[dict, ...]
    label_matrix: np.ndarray  # (clips, vocabulary) bool: clip has label
    label_set_codes: np.ndarray  # (clips,) int: equal codes = identical label sets
    spans: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)  # scenes: (start, end, length) s
    span_rate: int = 0  # the sample rate the spans were measured at (the build's)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> SourcePool:
        if frame.empty:
            raise LassbenchError("no usable source clips to draw items from")
        captions = tuple(tuple(decode_list(v)) for v in frame["captions"]) if "captions" in frame else None
        labels = tuple(tuple(decode_list(v)) for v in frame["labels"]) if "labels" in frame else None
        attributes = tuple(_attributes(v) for v in frame["attributes"]) if "attributes" in frame else None
        count = len(frame)
        captions = captions or ((),) * count
        labels = labels or ((),) * count
        vocabulary = {label: k for k, label in enumerate(sorted({lb for ls in labels for lb in ls}))}
        matrix = np.zeros((count, len(vocabulary)), dtype=bool)
        for row, ls in enumerate(labels):
            matrix[row, [vocabulary[lb] for lb in ls]] = True
        set_codes = {s: k for k, s in enumerate(sorted({tuple(sorted(ls)) for ls in labels}))}
        return cls(
            ids=tuple(frame["source_id"]), captions=captions, labels=labels,
            attributes=attributes or ({},) * count, label_matrix=matrix,
            label_set_codes=np.array([set_codes[tuple(sorted(ls))] for ls in labels]),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def disjoint_from(self, row: int) -> np.ndarray:
        """Rows sharing no label with ``row`` (every other row when either side has no labels)."""
        shared = self.label_matrix @ self.label_matrix[row] if self.label_matrix.shape[1] else np.zeros(len(self))
        mask = ~np.asarray(shared, dtype=bool)
        mask[row] = False
        return np.flatnonzero(mask)

    def contrasting(self, row: int, attributes: tuple[str, ...]) -> np.ndarray:
        """Rows with the same labels as ``row`` and another value of at least one of ``attributes``."""
        if not self.labels[row]:
            return np.zeros(0, dtype=int)
        same = np.flatnonzero(self.label_set_codes == self.label_set_codes[row])
        mine = self.attributes[row]
        keys = [k for k in attributes if k in mine]
        return np.array([
            r for r in same
            if r != row and any(k in self.attributes[r] and self.attributes[r][k] != mine[k] for k in keys)
        ], dtype=int)


def _attributes(value) -> dict:
    if isinstance(value, dict):
        return value
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError) as exc:
        raise LassbenchError(f"attributes column: expected a JSON object, got {value!r}") from exc
    return parsed if isinstance(parsed, dict) else {}


def draw_spec(index: int, sources: SourcePool | pd.DataFrame, params: LassbenchParams, seed: int, *,
              split: str = "test") -> ItemSpec:
    """Item ``index`` of ``split``: a pure function of its arguments. Pass a :class:`SourcePool` (a DataFrame is
    converted on every call)."""
    pool = sources if isinstance(sources, SourcePool) else SourcePool.from_frame(sources)
    rng = item_rng(seed, split, index)
    target = int(rng.integers(len(pool)))
    target_lufs = params.target_lufs + float(rng.uniform(-params.lufs_jitter, params.lufs_jitter))
    count = int(rng.integers(params.min_interferers, params.max_interferers + 1))
    chosen: list[int] = []
    condition = "different_class" if pool.labels[target] else "unlabelled"
    contrast_attribute = ""
    if rng.uniform() < params.contrast_fraction:
        candidates = pool.contrasting(target, params.contrast_attributes)
        if candidates.size:
            pick = int(candidates[rng.integers(candidates.size)])
            chosen.append(pick)
            condition = "attribute_contrast"
            mine, theirs = pool.attributes[target], pool.attributes[pick]
            contrast_attribute = ",".join(k for k in params.contrast_attributes
                                          if k in mine and theirs.get(k) != mine[k])
    others = np.setdiff1d(pool.disjoint_from(target), chosen)
    if params.scenes:  # ambiences are a scene's background, not its foreground events (scaper's two pools)
        others = np.setdiff1d(others, _backgrounds(pool, params))
    needed = count - len(chosen)
    if others.size < needed:
        raise LassbenchError(
            f"split {split!r}: only {others.size} clip(s) share no label with {pool.ids[target]}, "
            f"{needed} interferer(s) needed; lower --max-interferers or add sources"
        )
    chosen.extend(int(r) for r in rng.choice(others, size=needed, replace=False))
    snrs = tuple(float(v) for v in rng.uniform(params.snr_min, params.snr_max, count))
    captions = pool.captions[target]
    query = captions[int(rng.integers(len(captions)))] if captions else _fallback_query(pool, target)
    extra: tuple[tuple[str, str], ...] = (("contrast_attribute", contrast_attribute),)
    if params.scenes:  # drawn last: the items of a build without --scenes are unchanged
        background, background_snr, scene = _draw_scene(rng, pool, params, target, chosen, snrs, target_lufs, split)
        chosen, snrs = [*chosen, background], (*snrs, background_snr)
        extra += (("scene", scene.to_json()),)
    return ItemSpec(
        item_id=item_id(split, index), split=split, target_id=pool.ids[target],
        interferer_ids=tuple(pool.ids[r] for r in chosen), query=query, captions=captions,
        labels=pool.labels[target], rule="loudness", snr_db=snrs, target_lufs=target_lufs,
        condition=condition, protocol=NAME, seed=seed, index=index, extra=extra,
    )


def _backgrounds(pool: SourcePool, params: LassbenchParams) -> np.ndarray:
    wanted = set(params.background_labels)
    return np.array([r for r in range(len(pool)) if wanted & set(pool.labels[r])], dtype=int)


def _draw_scene(rng: np.random.Generator, pool: SourcePool, params: LassbenchParams, target: int,
                chosen: list[int], snrs: tuple[float, ...], target_lufs: float, split: str
                ) -> tuple[int, float, Scene]:
    """A background (a clip with a ``background_labels`` label, sharing no label with the target or an
    interferer) and the events: the target at a uniform onset, each interferer at an onset that makes it overlap
    the target, the background looped over the whole scene."""
    others = set(pool.disjoint_from(target).tolist())
    candidates = [r for r in _backgrounds(pool, params).tolist() if r in others and r not in chosen
                  and not any(set(pool.labels[r]) & set(pool.labels[c]) for c in chosen)]
    if not candidates:
        raise LassbenchError(f"--scenes: split {split!r} has no background clip for {pool.ids[target]} (a clip "
                             f"labelled one of: {', '.join(params.background_labels)}, sharing no label with the "
                             "target or an interferer)")
    background = candidates[int(rng.integers(len(candidates)))]
    background_snr = float(rng.uniform(params.background_snr_min, params.background_snr_max))
    length = pool.spans[pool.ids[target]][2]

    def span(row: int) -> tuple[float, float]:
        if pool.ids[row] not in pool.spans:
            raise LassbenchError("--scenes needs the clips' active spans (prepare() measures them)")
        start, end, _ = pool.spans[pool.ids[row]]
        return start, round(min(end - start, length), 6)

    start, duration = span(target)
    onset = float(rng.uniform(0.0, length - duration))
    events = [Event(pool.ids[target], "target", start, round(onset, 4), duration, duration)]
    for row, snr in zip(chosen, snrs, strict=True):
        start_k, duration_k = span(row)
        low, high = max(0.0, onset - duration_k / 2), min(length - duration_k, onset + duration / 2)
        onset_k = round(float(rng.uniform(low, max(low, high))), 4)
        events.append(Event(pool.ids[row], "interferer", start_k, onset_k, duration_k, duration_k, snr))
    start_b, duration_b = span(background)
    events.append(Event(pool.ids[background], "background", start_b, 0.0, length, duration_b, background_snr))
    scene = Scene(pool.span_rate, int(round(length * pool.span_rate)), target_lufs, tuple(events))
    return background, background_snr, scene


def _fallback_query(pool: SourcePool, row: int) -> str:
    """A clip without captions is queried by its first label, else by its id read as words."""
    if pool.labels[row]:
        return pool.labels[row][0]
    return pool.ids[row].replace("_", " ").replace("-", " ").strip() or pool.ids[row]


# --------------------------------------------------------------------------------------------------------- build


def prepare(frame: pd.DataFrame, request: BuildRequest) -> Prepared:
    """The clips of the requested splits, and a planner drawing ``num_items`` items per split from the usable ones."""
    frame = frame[~frame["source_id"].isin(request.exclude_ids)]
    splits, pools = _split_pools(frame, request.splits)
    options = dict(request.options)
    if "contrast_fraction" not in options:  # contrast items need attributes (the synth corpus has them)
        options["contrast_fraction"] = 0.3 if "attributes" in frame else 0.0
    known = {f.name for f in fields(LassbenchParams)}
    params = LassbenchParams(**{k: v for k, v in options.items() if k in known})
    sample_rate = request.sample_rate or _common_rate(frame)
    duration = options.get("duration")
    num_samples = int(round(duration * sample_rate)) if duration else None
    counts = _item_counts(splits, pools, request.num_items, synth="attributes" in frame)
    selected = pd.concat([pools[s] for s in splits]).drop_duplicates("source_id")

    def plan(usable: set[str]) -> Plan:
        specs = []
        spans = _spans(selected[selected["source_id"].isin(usable)], sample_rate, num_samples) if params.scenes else {}
        for split in splits:
            usable_pool = pools[split][pools[split]["source_id"].isin(usable)]
            pool = replace(SourcePool.from_frame(usable_pool), spans=spans, span_rate=sample_rate)
            specs.extend(draw_spec(i, pool, params, request.seed, split=split) for i in range(counts[split]))
        return Plan(specs)

    parameters = {**asdict(params), "splits": list(splits), "items": counts, "seed": request.seed,
                  "sample_rate": sample_rate, "duration": duration}
    parameters["contrast_attributes"] = list(params.contrast_attributes)
    if params.scenes:  # only then: builds without scenes keep their fingerprint (and resume, or grow, as before)
        parameters["background_labels"] = list(params.background_labels)
    else:
        for name in SCENE_PARAMETERS:
            parameters.pop(name)
    return Prepared(sources=selected, plan=plan, parameters=parameters, sample_rate=sample_rate,
                    num_samples=num_samples)


def _spans(frame: pd.DataFrame, sample_rate: int, num_samples: int | None) -> dict[str, tuple[float, float, float]]:
    """``source_id -> (start, end, length)`` in seconds: where each clip sounds, read as the build reads it."""
    spans = {}
    for source_id, path in zip(frame["source_id"], frame["path"], strict=True):
        audio = read_source(path, sample_rate, num_samples)
        start, end = active_span(audio, sample_rate)  # rounded: the scene spec reads as times, not float noise
        spans[source_id] = (round(start, 6), round(end, 6), round(audio.shape[0] / sample_rate, 6))
    return spans


def _split_pools(frame: pd.DataFrame, requested: tuple[str, ...] | None) -> tuple[tuple[str, ...], dict]:
    present = [s for s in dict.fromkeys(frame["split"]) if s]
    if not present:  # an unsplit corpus (a plain folder) is one test split
        frame = frame.assign(split="test")
        present = ["test"]
    if requested is None:
        requested = tuple(s for s in DEFAULT_SPLITS if s in present) or tuple(present)
    absent = [s for s in requested if s not in present]
    if absent:
        raise LassbenchError(f"the sources have no split {', '.join(absent)} (they have: {', '.join(present)})")
    return tuple(requested), {s: frame[frame["split"] == s] for s in requested}


def _item_counts(splits, pools, num_items, *, synth: bool) -> dict[str, int]:
    if isinstance(num_items, dict):
        unknown = set(num_items) - set(splits)
        if unknown:
            raise LassbenchError(f"--num-items names split(s) not being built: {', '.join(sorted(unknown))}")
    counts = {}
    for split in splits:
        if isinstance(num_items, dict) and split in num_items:
            counts[split] = int(num_items[split])
        elif isinstance(num_items, int):
            counts[split] = num_items
        else:  # synth: the documented benchmark sizes; other corpora: one item per clip on average
            counts[split] = SYNTH_ITEMS.get(split, len(pools[split])) if synth else len(pools[split])
        if counts[split] < 0:
            raise LassbenchError(f"--num-items for {split} is negative")
    return counts


def _common_rate(frame: pd.DataFrame) -> int:
    if "sample_rate" not in frame or frame.empty:
        raise LassbenchError("the sources do not state a sample rate; pass --sample-rate")
    rates = Counter(int(float(r)) for r in frame["sample_rate"] if str(r).strip())
    if not rates:
        raise LassbenchError("the sources do not state a sample rate; pass --sample-rate")
    return rates.most_common(1)[0][0]
