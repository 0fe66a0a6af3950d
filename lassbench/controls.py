"""Query variants and controls of ``lassbench run``: for every item, what the model is asked for and what its output
is scored against.

* the benchmark's query (``default``) and the query-robustness variants (``caption-k``, ``tags``, ``paraphrase``):
  another wording of the same request, scored against the target;
* ``wrong-query``: another item's caption (a different target clip), scored against the target;
* ``absent``: a caption of a clip of another class from the same split, so nothing in the mixture matches; scored by
  the *false-separation level* (output energy relative to the mixture, dB, lower is better), not against a reference;
* ``interferer``: the first interferer's own caption, scored against that interferer;
* ``negative``: the benchmark's ``negative_query`` column (CLAPSep's protocol), scored against the first interferer.

A :class:`VariantPlan` is plain lists, one entry per item, so a DataLoader's workers get it cheaply.
:func:`run_variants` says which variants a run asks for, :func:`variant_plans` makes their plans.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.manifests import decode_list

CONTROLS = ("wrong-query", "absent", "interferer", "negative")
QUERY_VARIANTS = ("default", "caption-2", "caption-3", "caption-4", "caption-5", "tags", "paraphrase")
SOURCE_VARIANTS = frozenset({"paraphrase", "absent", "interferer", "negative"})  # need the source clips' captions
# Which variants score against which reference; "absent" has none.
TARGET, INTERFERER, NONE = "target", "interferer", "none"
FALSE_SEPARATION_FLOOR_DB = -120.0  # a silent output; keeps the mean finite
QUIET_THRESHOLD_DB = -20.0
FALSE_SEPARATION_METRICS = ("false_separation_db", "below_-20db")
FALSE_SEPARATION_DEFINITIONS = {
    "false_separation_db": "10*log10(energy(output) / energy(mixture)) when the query names a sound absent from the "
                           f"mixture; lower is better; floored at {FALSE_SEPARATION_FLOOR_DB:g} dB (silent output)",
    "below_-20db": f"1 when the false-separation level is below {QUIET_THRESHOLD_DB:g} dB, else 0; its mean is the "
                   "share of items where the model stays (nearly) silent",
}
_MAX_DRAWS = 200  # rejection sampling for `absent` before falling back to a full scan


@dataclass
class VariantPlan:
    """One variant: the query text and labels sent to the model, and the reference file (relative to the
    benchmark folder; ``None`` for ``absent``) of every item, in the items' order."""

    variant: str
    queries: list[str]
    labels: list[list[str]]
    references: list[str | None]
    reference: str = TARGET  # TARGET | INTERFERER | NONE
    # what *not* to separate, per item ("" for none), sent to models that take a negative query (CLAPSep); None: none
    negatives: list[str] | None = None

    @property
    def scores_false_separation(self) -> bool:
        return self.reference == NONE


def parse_controls(values) -> list[str]:
    """``--control`` given several times and/or comma-separated -> known control names, in order, once each."""
    names: list[str] = []
    for value in [values] if isinstance(values, str) else (values or []):
        for name in (part.strip() for part in str(value).split(",")):
            if not name:
                continue
            if name not in CONTROLS:
                raise LassbenchError(f"unknown control '{name}' (known: {', '.join(CONTROLS)})")
            if name not in names:
                names.append(name)
    return names


def run_variants(query_type: str, queries: str, controls: list[str]) -> list[str]:
    """The variants a run asks for: the main one, the query-robustness study (``queries="all"``), the controls."""
    if queries not in ("caption", "all"):
        raise LassbenchError(f"--queries must be 'caption' or 'all', not '{queries}'")
    if queries == "all" and query_type != "caption":
        raise LassbenchError("--queries all needs a text-queried model (e.g. lassnet)")
    if "wrong-query" in controls and query_type != "caption":
        raise LassbenchError("--control wrong-query needs a text-queried model (e.g. lassnet)")
    variants = ["default"]
    if queries == "all":
        variants += [*[f"caption-{k}" for k in range(2, 6)], "tags", "paraphrase", "wrong-query"]
    return variants + [c for c in controls if c not in variants]


def needs_sources(variants: list[str]) -> bool:
    """Whether the plans of ``variants`` read the benchmark's source manifest (captions and labels of any clip)."""
    return bool(SOURCE_VARIANTS & set(variants))


def variant_plans(items: pd.DataFrame, variants: list[str], *, manifest: pd.DataFrame, sources: pd.DataFrame | None,
                  data_dir: Path, seed: int, log: Callable[[str], None]) -> list[VariantPlan]:
    """The plan of every variant the benchmark can provide; the others are skipped with a note to ``log``.
    ``manifest``: the benchmark's items of every split (list columns filled), where ``sources`` (its source
    manifest, when :func:`needs_sources`) cannot be read."""
    clips = clip_lookup(manifest, sources) if needs_sources(variants) else {}
    paraphrases = _paraphrases(sources) if "paraphrase" in variants else {}
    plans = []
    for variant in variants:
        try:
            plans.append(_plan(items, variant, clips, paraphrases, data_dir, seed))
        except SkipVariant as exc:
            log(f"skipped variant {exc}")
    return plans


def askable(model, plan: VariantPlan, log: Callable[[str], None]) -> bool:
    """A class-conditioned model can only be asked for a class it knows: check every item now, not mid-run."""
    known = getattr(model, "class_index", None)
    if known is None:
        return True
    unknown = sorted({labels[0] if labels else "(none)" for labels in plan.labels} - set(known))
    if unknown and plan.variant == "default":  # the main run cannot be skipped
        raise LassbenchError(f"the class-conditioned model does not know class(es) {', '.join(unknown[:5])}; "
                             f"it knows {', '.join(sorted(known))}")
    if unknown:
        log(f"skipped variant {plan.variant}: the class-conditioned model does not know class(es) "
            f"{', '.join(unknown[:5])}")
    return not unknown


def _plan(items: pd.DataFrame, variant: str, clips: dict, paraphrases: dict, data_dir: Path,
          seed: int) -> VariantPlan:
    if variant == "absent":
        return absent_plan(items, clips, seed)
    if variant == "interferer":
        return interferer_plan(items, clips, data_dir)
    if variant == "negative":
        return negative_plan(items, clips, data_dir)
    queries = variant_queries(items, variant, paraphrases=paraphrases, seed=seed)
    if queries is None:
        raise SkipVariant(f"{variant}: the benchmark cannot provide it (no such captions, tags or paraphrases)")
    return target_plan(items, variant, queries)


# --- the query of every item under a variant ------------------------------------------------------------------


def variant_queries(items: pd.DataFrame, variant: str, *, paraphrases: dict | None = None,
                    seed: int = 0) -> list[str] | None:
    """The query of every item under ``variant``; None when the benchmark cannot provide that variant."""
    if variant in ("wrong-query", "paraphrase") and "target_id" not in items:
        return None  # an `id,query` manifest (real mixtures): no target clip to tell items apart by
    if variant in ("default", "caption"):
        return list(items["query"])
    if variant == "tags":
        return [", ".join(labels) if labels else "" for labels in items["labels"]] if _all_labelled(items) else None
    if variant == "wrong-query":
        return list(items["query"].iloc[_wrong_query_permutation(items["target_id"].tolist(), seed)])
    if variant.startswith("caption-"):
        k = int(variant.removeprefix("caption-")) - 1
        return _other_caption(items, k)
    if variant == "paraphrase":
        lookup = paraphrases or {}
        if not all(lookup.get(t) for t in items["target_id"]):
            return None
        return [lookup[t][i % len(lookup[t])] for i, t in enumerate(items["target_id"])]
    raise LassbenchError(f"unknown query variant '{variant}'")


def queries_by_id(items: pd.DataFrame, queries: list[str], ids) -> list[str]:
    lookup = dict(zip(items["id"], queries, strict=True))
    return [lookup[i] for i in ids]


def _other_caption(items: pd.DataFrame, k: int) -> list[str] | None:
    """The k-th caption of the clip other than the query (k=1: the first other one)."""
    queries = []
    for query, captions in zip(items["query"], items["captions"], strict=True):
        others = [c for c in captions if c != query]
        if k < 1 or len(others) < k:
            return None
        queries.append(others[k - 1])
    return queries


def _wrong_query_permutation(target_ids: list[str], seed: int) -> np.ndarray:
    """A permutation sending every item to an item with a different target clip.

    Items are shuffled, grouped by target, then rotated by the largest group's size: no item lands in its own group
    as long as no target holds more than half of the items (otherwise as few as possible do).
    """
    n = len(target_ids)
    shuffled = np.random.default_rng(seed).permutation(n)
    order = sorted(shuffled, key=lambda i: target_ids[i])  # stable: random order within a target
    shift = max(pd.Series(target_ids).value_counts().max(), 1) if n else 0
    perm = np.empty(n, dtype=int)
    for position, item in enumerate(order):
        perm[item] = order[(position + shift) % n]
    return perm


def _all_labelled(items: pd.DataFrame) -> bool:
    return "labels" in items and all(bool(labels) for labels in items["labels"])


def _paraphrases(sources: pd.DataFrame | None) -> dict[str, list[str]]:
    """target source_id -> paraphrases, from the sources the benchmark was built from (if they have them)."""
    if sources is None or "paraphrases" not in sources:
        return {}
    return {sid: decode_list(p) for sid, p in zip(sources["source_id"], sources["paraphrases"], strict=True)}


# --- the plans -------------------------------------------------------------------------------------------------


def target_plan(items: pd.DataFrame, variant: str, queries: list[str]) -> VariantPlan:
    """The item's own target, asked for with ``queries`` (the item's labels go to tag / class models); the
    benchmark's ``negative_query`` (CLAPSep's lists: the interferer's caption) is what not to separate."""
    return VariantPlan(variant, list(queries), [list(labels) for labels in items["labels"]],
                       [f"target/{i}.wav" for i in items["id"]], TARGET, negatives=_negative_queries(items))


def _negative_queries(items: pd.DataFrame) -> list[str] | None:
    if "negative_query" not in items:
        return None
    return [("" if _missing(q) else str(q)).strip() for q in items["negative_query"]]


@dataclass
class Clip:
    captions: list[str]
    labels: list[str]
    split: str


def clip_lookup(items: pd.DataFrame, sources: pd.DataFrame | None) -> dict[str, Clip]:
    """source_id -> captions, labels, split: from the benchmark's source manifest when it can be read, else from
    the benchmark's own targets (``items`` should then be the whole manifest, every split)."""
    if sources is not None:
        splits = sources["split"] if "split" in sources else [""] * len(sources)
        return {str(sid): Clip(list(c), [str(x) for x in labels], str(s)) for sid, c, labels, s in
                zip(sources["source_id"], sources["captions"], sources["labels"], splits, strict=True)}
    lookup: dict[str, Clip] = {}
    if "target_id" not in items:
        return lookup
    splits = items["split"] if "split" in items else [""] * len(items)
    for sid, captions, labels, split in zip(items["target_id"], items["captions"], items["labels"], splits,
                                            strict=True):
        lookup.setdefault(str(sid), Clip(list(captions), [str(x) for x in labels], str(split)))
    return lookup


def interferer_plan(items: pd.DataFrame, clips: dict[str, Clip], data_dir: Path) -> VariantPlan:
    """Ask for the first interferer by its own (first) caption; score against ``interferers/<id>_0.wav``."""
    first = _first_interferers(items, data_dir, "interferer")
    queries, labels = [], []
    for item_id, sid in zip(items["id"], first, strict=True):
        clip = clips.get(sid)
        if clip is None or not clip.captions:
            raise SkipVariant(f"interferer: no caption for interferer clip '{sid}' of item {item_id} (the "
                              "benchmark's source manifest is not reachable from dataset.json's sources origin)")
        queries.append(clip.captions[0])
        labels.append(clip.labels)
    return VariantPlan("interferer", queries, labels, [f"interferers/{i}_0.wav" for i in items["id"]], INTERFERER)


def negative_plan(items: pd.DataFrame, clips: dict[str, Clip], data_dir: Path) -> VariantPlan:
    """The benchmark's ``negative_query`` as the query, scored against the first interferer; a model that takes a
    negative query is told not to separate the item's own query (the two swapped: the interferer is now the target)."""
    negatives = _negative_queries(items)
    if negatives is None:
        raise SkipVariant("negative: the benchmark stores no `negative_query` column (CLAPSep's protocol does)")
    empty = [i for i, q in zip(items["id"], negatives, strict=True) if not q]
    if empty:
        raise SkipVariant(f"negative: {len(empty)} item(s) have no negative_query (first: {empty[0]})")
    first = _first_interferers(items, data_dir, "negative")
    labels = [clips[sid].labels if sid in clips else [] for sid in first]
    return VariantPlan("negative", negatives, labels, [f"interferers/{i}_0.wav" for i in items["id"]], INTERFERER,
                       negatives=[str(q) for q in items["query"]])


def absent_plan(items: pd.DataFrame, clips: dict[str, Clip], seed: int) -> VariantPlan:
    """Ask each item for a clip of the same split whose labels share nothing with the target's or any interferer's
    (seeded draw; the clip's first caption). Needs class labels."""
    if not all(bool(labels) for labels in items["labels"]):
        raise SkipVariant("absent: needs class labels for every item (manifest `labels`) to pick a sound that is "
                          "not in the mixture")
    by_split: dict[str, list[str]] = {}
    for sid, clip in clips.items():
        if clip.captions and clip.labels:
            by_split.setdefault(clip.split, []).append(sid)
    rng = np.random.default_rng(seed)
    queries, labels = [], []
    splits = items["split"] if "split" in items else [""] * len(items)
    interferers = items["interferer_ids"] if "interferer_ids" in items else [[] for _ in range(len(items))]
    for item_id, split, own, others in zip(items["id"], splits, items["labels"], interferers, strict=True):
        present = {str(x) for x in own}
        for sid in others:
            present |= set(clips[str(sid)].labels) if str(sid) in clips else set()
        pool = by_split.get(str(split)) or [s for group in by_split.values() for s in group]
        chosen = _draw_absent(pool, clips, present, rng)
        if chosen is None:
            raise SkipVariant(f"absent: no clip of split '{split}' has a class other than {sorted(present)} "
                              f"(item {item_id})")
        queries.append(clips[chosen].captions[0])
        labels.append(clips[chosen].labels)
    return VariantPlan("absent", queries, labels, [None] * len(items), NONE)


def _draw_absent(pool: list[str], clips: dict[str, Clip], present: set[str], rng: np.random.Generator) -> str | None:
    if not pool:
        return None
    for _ in range(_MAX_DRAWS):
        sid = pool[int(rng.integers(len(pool)))]
        if present.isdisjoint(clips[sid].labels):
            return sid
    allowed = [s for s in pool if present.isdisjoint(clips[s].labels)]
    return allowed[int(rng.integers(len(allowed)))] if allowed else None


def _first_interferers(items: pd.DataFrame, data_dir: Path, variant: str) -> list[str]:
    if "interferer_ids" not in items:
        raise SkipVariant(f"{variant}: the manifest has no interferer_ids column")
    first = []
    for item_id, ids in zip(items["id"], items["interferer_ids"], strict=True):
        ids = decode_list(ids)
        if not ids:
            raise SkipVariant(f"{variant}: item {item_id} has no interferer")
        if not (data_dir / "interferers" / f"{item_id}_0.wav").is_file():
            raise SkipVariant(f"{variant}: interferers/{item_id}_0.wav is missing (the benchmark stores no "
                              "interferer audio)")
        first.append(str(ids[0]))
    return first


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class SkipVariant(Exception):  # noqa: N818 - a signal, not an error: the variant is skipped with this message
    """The benchmark cannot provide this variant; the message says why."""


def false_separation(estimate: np.ndarray, mixture: np.ndarray) -> float:
    """Output energy relative to the mixture, in dB, floored at :data:`FALSE_SEPARATION_FLOOR_DB`."""
    mixture_energy = float(np.sum(np.square(mixture, dtype=np.float64)))
    if mixture_energy == 0.0:
        return math.nan
    ratio = float(np.sum(np.square(estimate, dtype=np.float64))) / mixture_energy
    return max(10.0 * math.log10(ratio), FALSE_SEPARATION_FLOOR_DB) if ratio > 0 else FALSE_SEPARATION_FLOOR_DB
