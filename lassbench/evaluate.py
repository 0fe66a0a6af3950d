"""The evaluation harness: match estimates to references and score them (results: :mod:`lassbench.summary`).

Three entry points share one scoring path (:func:`evaluate_arrays`), so a model scored in memory by the runner and
the same outputs scored from WAV files give identical numbers:

* :func:`evaluate_arrays` — ``(item_id, reference, estimate, mixture_or_None)`` tuples in memory;
* :func:`evaluate_folders` — WAVs matched by file name across a references, an estimates and a mixtures folder;
* :func:`evaluate_manifest` — a benchmark built by ``build-dataset`` (``target/<id>.wav`` and ``mixture/<id>.wav``
  beside its ``manifest.csv``) plus ``<estimates>/<id>.wav``; adds the protocol columns and breakdowns, and scores
  under the benchmark's protocol rules (:func:`lassbench.summary.protocol_rules`).

The last two write ``OUT/per_item.csv`` and ``OUT/summary.json`` (:func:`lassbench.summary.write_results`).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from lassbench.audio import list_audio_files, read_audio, read_single_channel
from lassbench.errors import LassbenchError
from lassbench.fad import add_fad
from lassbench.manifests import read_dataset_json
from lassbench.metrics import DEFAULT_METRICS, METRICS, compute_metrics, resolve_metrics
from lassbench.paths import check_output_folder
from lassbench.subsets import manifest_items
from lassbench.summary import (
    AGGREGATES,
    benchmark_summary,
    check_convention,
    item_classes,
    protocol_rules,
    summarize,
    write_results,
)

ALIGNS = ("trim", "pad")
PROTOCOL_COLUMNS = ("snr_db", "labels", "condition", "query")
_BATCH_ITEMS = 32  # equal-length items scored together: amortises bss_sdr's per-call solve
_MAX_LISTED = 5

Describe = Callable[[str, str], str]  # (item_id, role) -> how to name it in an error message


def _default_describe(item: str, role: str) -> str:
    return f"item {item} ({role})"


# --- scoring ---------------------------------------------------------------------------------------------------


def score_arrays(reference, estimate, mixture=None, metrics: Iterable[str] | str | None = DEFAULT_METRICS, *,
                 item: str = "item", align: str | None = None, convention: str = "zero-mean") -> dict[str, float]:
    """Score one item: ``{metric: value}`` (floats). Validates like :func:`evaluate_arrays`; ``convention`` is the
    SI-SDR definition (``"audiosep"`` to score as AudioSep / DCASE 2024 / CLAPSep)."""
    frame = evaluate_arrays([(item, reference, estimate, mixture)], metrics, align=align, convention=convention)
    return {name: float(frame[name].iloc[0]) for name in frame.columns if name != "item"}


def evaluate_arrays(items: Iterable[tuple], metrics: Iterable[str] | str | None = DEFAULT_METRICS, *,
                    align: str | None = None, describe: Describe = _default_describe,
                    progress: bool = False, total: int | None = None, convention: str = "zero-mean") -> pd.DataFrame:
    """Score ``(item_id, reference, estimate, mixture_or_None)`` tuples; returns the per-item frame
    (``item`` + one float column per metric, in input order). ``convention`` is the SI-SDR definition of the
    ``si_sdr``/``si_sdri`` columns (:func:`lassbench.summary.protocol_rules` gives a benchmark's).

    Each item is checked first (:class:`LassbenchError` naming it): silent reference, NaN/inf samples, lengths
    that differ (unless ``align`` is ``"trim"`` — cut to the shortest — or ``"pad"`` — zero-pad to the longest), a
    metric that needs the mixture when the item has none. Items of equal length are scored in batches.
    """
    names = _resolve(metrics)
    check_convention(convention)
    if align not in (None, *ALIGNS):
        raise LassbenchError(f"unknown align mode {align!r}; use one of {', '.join(ALIGNS)}")
    rows: list[dict] = []
    pending: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]] = []
    bar = tqdm(items, total=total, desc="scoring", unit="item", file=sys.stderr,
               disable=not progress or (total is not None and total < 20))
    for item_id, reference, estimate, mixture in bar:
        pending.append(_checked(str(item_id), reference, estimate, mixture, names, align, describe,
                                silent_ok=convention == "audiosep"))
        if len(pending) >= _BATCH_ITEMS:
            rows.extend(_score_batch(pending, names, convention))
            pending = []
    rows.extend(_score_batch(pending, names, convention))
    return pd.DataFrame(rows, columns=["item", *names])


def _resolve(metrics) -> tuple[str, ...]:
    try:
        return resolve_metrics(metrics)
    except ValueError as exc:
        raise LassbenchError(str(exc)) from exc


def _checked(item: str, reference, estimate, mixture, names, align, describe: Describe, silent_ok: bool = False):
    signals = {"reference": reference, "estimate": estimate, "mixture": mixture}
    arrays = {}
    for role, signal in signals.items():
        if signal is None:
            continue
        array = np.asarray(signal.detach().cpu().numpy() if hasattr(signal, "detach") else signal)
        array = np.squeeze(array)
        if array.ndim != 1 or array.size == 0:
            raise LassbenchError(f"{describe(item, role)}: expected a non-empty mono signal, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise LassbenchError(f"{describe(item, role)}: contains NaN or inf samples")
        arrays[role] = array
    # AudioSep's and DCASE's evaluators score a silent reference (mean powers floored at 1e-10, eps in SI-SDR):
    # under their convention it is scored as they would; BSS-Eval has no value for it, and lassbench's own
    # convention refuses it rather than report a number that only reflects the floor.
    bss = any(n.startswith("bss_") for n in names)
    if not np.any(arrays["reference"]) and (bss or not silent_ok):
        raise LassbenchError(
            f"{describe(item, 'reference')}: reference is silent (all zeros), so SDR is undefined; drop the item"
        )
    if "mixture" not in arrays and any(METRICS[n].needs_mixture for n in names):
        needing = ", ".join(n for n in names if METRICS[n].needs_mixture)
        raise LassbenchError(f"{describe(item, 'mixture')}: no mixture, but {needing} need(s) one")
    arrays = _aligned(item, arrays, align, describe)
    return item, arrays["reference"], arrays["estimate"], arrays.get("mixture")


def _aligned(item: str, arrays: dict[str, np.ndarray], align: str | None, describe: Describe):
    lengths = {role: a.size for role, a in arrays.items()}
    if len(set(lengths.values())) == 1:
        return arrays
    if align is None:
        role = next(r for r in lengths if lengths[r] != lengths["reference"])
        raise LassbenchError(
            f"{describe(item, role)}: {lengths[role]} samples but {describe(item, 'reference')} has "
            f"{lengths['reference']}; pass align='trim' or 'pad' (CLI: --align trim|pad) to score anyway"
        )
    if align == "trim":
        size = min(lengths.values())
        return {role: a[:size] for role, a in arrays.items()}
    size = max(lengths.values())
    return {role: np.pad(a, (0, size - a.size)) for role, a in arrays.items()}


def _score_batch(batch: list, names: tuple[str, ...], convention: str) -> list[dict]:
    """Score a list of checked items, stacking those of equal length (and equal mixture presence)."""
    scores: dict[str, dict[str, float]] = {}
    groups: dict[tuple[int, bool], list] = {}
    for entry in batch:
        groups.setdefault((entry[1].size, entry[3] is not None), []).append(entry)
    for (_, has_mixture), group in groups.items():
        reference = np.stack([g[1] for g in group])
        estimate = np.stack([g[2] for g in group])
        mixture = np.stack([g[3] for g in group]) if has_mixture else None
        values = compute_metrics(reference, estimate, mixture, names, convention=convention)
        for row, entry in enumerate(group):
            scores[entry[0]] = {name: float(values[name][row]) for name in names}
    return [{"item": entry[0], **scores[entry[0]]} for entry in batch]


# --- folders and manifests -----------------------------------------------------------------------------------


def evaluate_folders(references: str | Path, estimates: str | Path, mixtures: str | Path | None = None, *,
                     out: str | Path | None, metrics: Iterable[str] | str | None = None, align: str | None = None,
                     aggregate: str = "mean", progress: bool = False, convention: str | None = None,
                     fad=None) -> tuple[pd.DataFrame, dict]:
    """Score WAVs matched by file name across folders; write ``out`` (unless ``None``); return
    ``(per_item, summary)``.

    ``metrics=None`` means the defaults, less the improvement metrics when there is no mixtures folder; naming
    ``sdri``/``si_sdri`` explicitly without ``mixtures`` is an error. Folders carry no protocol: ``convention``
    (SI-SDR) defaults to ``"zero-mean"``; pass ``"audiosep"`` to score as AudioSep / DCASE / CLAPSep do.
    ``fad`` adds the set-level FAD of the estimates against the references (as :func:`evaluate_manifest`).
    """
    names = _metrics_for(metrics, has_mixtures=mixtures is not None)
    _check_aggregate(aggregate, has_labels=False)
    convention = check_convention(convention or "zero-mean")
    if out is not None:
        check_output_folder(out, "--out")  # before the scoring, not after it
    folders = {"references": Path(references), "estimates": Path(estimates)}
    if mixtures is not None:
        folders["mixtures"] = Path(mixtures)
    files = {role: _audio_by_name(folder, role) for role, folder in folders.items()}
    for role in files:
        if role != "references":
            _check_same_names(files["references"], folders["references"], files[role], folders[role])
    item_names = sorted(files["references"])
    paths = {name: {role: files[role][name] for role in files} for name in item_names}
    fad_scorer = _fad_scorer(fad, len(item_names))

    def describe(item: str, role: str) -> str:
        key = {"reference": "references", "estimate": "estimates", "mixture": "mixtures"}[role]
        return str(paths[item][key]) if key in paths[item] else f"item {item} ({role})"

    items = _read_items(item_names, lambda name: paths[name]["references"],
                        lambda name: paths[name]["estimates"], lambda name: paths[name].get("mixtures"))
    per_item = evaluate_arrays(items, names, align=align, describe=describe, progress=progress,
                               total=len(item_names), convention=convention)
    summary = summarize(per_item, names, aggregate=aggregate, convention=convention)
    fad_statistics = _fad_of(fad_scorer, ((paths[n]["estimates"], paths[n]["references"]) for n in item_names))
    if fad_statistics is not None:
        add_fad(summary, *fad_statistics)
    if out is not None:
        write_results(per_item, summary, out)
    return per_item, summary


def evaluate_manifest(manifest: str | Path, estimates: str | Path, *, out: str | Path | None,
                      metrics: Iterable[str] | str | None = None, align: str | None = None,
                      aggregate: str | None = None, progress: bool = False, clap=None, split: str | None = None,
                      convention: str | None = None, ids: str | Path | None = None, limit: int | None = None,
                      fad=None, judge=None) -> tuple[pd.DataFrame, dict]:
    """Score ``<estimates>/<id>.wav`` against a built benchmark's ``target/<id>.wav`` (mixtures
    ``mixture/<id>.wav``), adding the protocol columns ``snr_db, labels, condition, query`` and the breakdowns by
    SNR bucket, label and condition. ``benchmark``/``protocol`` come from ``dataset.json`` beside the manifest.

    Items without a target (empty ``target_id``: real mixtures) get no reference-based metrics (NaN, listed under
    ``summary["not_scored"]``). ``clap`` (a CLAP checkpoint folder or hub name, or a
    :class:`~lassbench.clapscore.ClapScorer`) adds the reference-free ``clap_score@<digest>`` and
    ``clap_score_i@<digest>`` for every item, and ``summary["clap"]`` (checkpoint, SHA-256, preprocessing).
    ``fad`` (a local embedding model path or a :class:`~lassbench.fad.FadScorer`) adds the set-level
    ``fad@<digest>`` of the estimates against the targets, with its bootstrap CI, and ``summary["fad"]`` (the
    embedding model). ``judge`` (a local SAM Audio judge folder or a :class:`~lassbench.judge.JudgeScorer`) adds
    the reference-free ``judge_overall``, ``judge_recall``, ``judge_precision`` and ``judge_faithfulness`` for every
    item, and ``summary["judge"]`` (the judge's folder, weights' SHA-256, preprocessing).

    ``split`` scores only the manifest's items of that split (estimates are needed for those only), so a system
    run on the test split is scored on the same items as ``lassbench run`` scores; duplicate ids are refused.
    ``ids`` (a file: one id per line, or a CSV with an ``id`` column such as a sub-manifest) and ``limit`` (the
    first N items) score a subset; so does a sub-manifest saved beside the benchmark's ``manifest.csv``. A subset
    is recorded as ``summary["subset"]`` (``n_items``, ``of``, ``label``), which the leaderboard shows.

    ``aggregate`` and ``convention`` (SI-SDR) default to what the benchmark's protocol prescribes
    (:func:`lassbench.summary.protocol_rules` on its ``dataset.json``); summary.json records both and where they
    came from."""
    manifest = Path(manifest)
    dataset = read_dataset_json(manifest.parent)
    rules = protocol_rules(dataset)
    names = _metrics_for(rules.metrics if metrics is None else metrics, has_mixtures=True)
    rules = rules.overridden(aggregate, convention)
    _check_aggregate(rules.aggregate, has_labels=True)
    if out is not None:
        check_output_folder(out, "--out")  # before the scoring, not after it
    frame, subset = manifest_items(manifest, split, ids, limit)
    base, estimates = manifest.parent, Path(estimates)
    if not estimates.is_dir():
        raise LassbenchError(f"{estimates}: estimates folder not found")
    ids = [str(i) for i in frame["id"]]
    targeted = _ids_with_target(frame, ids, base)
    reference_free_only = clap is not None or judge is not None
    if rules.aggregate != "mean":  # before the scoring: every summarised item needs its class
        summarised = set(ids if reference_free_only else targeted)
        item_classes(frame[frame["id"].astype(str).isin(summarised)].rename(columns={"id": "item"}), rules.aggregate)
    if not targeted and not reference_free_only:
        raise LassbenchError(f"{manifest}: no item has a target (empty target_id), so only reference-free scores "
                             "apply: pass --clap CHECKPOINT (a CLAP folder or hub name) or --judge DIR (the SAM "
                             "Audio judge)")
    expected = {i: estimates / f"{i}.wav" for i in ids}
    _check_audio_present(manifest, estimates, expected, targeted)
    from lassbench.clapscore import clap_scorer
    from lassbench.judge import judge_scorer

    scorer = clap_scorer(clap)  # after the cheap file checks, before the long work: a bad checkpoint fails first
    judged = judge_scorer(judge)
    fad_scorer = _fad_scorer(fad, len(targeted))

    def describe(item: str, role: str) -> str:
        return str({"reference": base / "target" / f"{item}.wav", "estimate": expected[item],
                    "mixture": base / "mixture" / f"{item}.wav"}[role])

    items = _read_items(targeted, lambda i: base / "target" / f"{i}.wav", lambda i: expected[i],
                        lambda i: base / "mixture" / f"{i}.wav")
    per_item = evaluate_arrays(items, names, align=align, describe=describe, progress=progress,
                               total=len(targeted), convention=rules.convention)
    per_item = per_item.set_index("item").reindex(ids).rename_axis("item").reset_index()  # target-less: NaN
    queries = dict(zip(ids, frame["query"], strict=True))
    reference_free: list[str] = []
    for extra in (scorer, judged):
        if extra is not None:
            items = ((i, queries[i], *_estimate_and_mixture(expected[i], base / "mixture" / f"{i}.wav")) for i in ids)
            scored = extra.score_items(items)
            per_item = per_item.merge(scored, on="item", how="left", validate="one_to_one")
            reference_free += [c for c in scored.columns if c != "item"]
    for column in PROTOCOL_COLUMNS:
        default = [[] for _ in ids] if column == "labels" else ([math.nan] * len(ids) if column == "snr_db" else "")
        per_item[column] = frame[column].tolist() if column in frame else default
    summary = benchmark_summary(
        per_item, names, rules, dataset, benchmark=dataset.get("name"), with_reference=targeted,
        reference_free=reference_free, clap=scorer.info if scorer is not None else None,
        judge=judged.info if judged is not None else None,
        fad=_fad_of(fad_scorer, ((expected[i], base / "target" / f"{i}.wav") for i in targeted)),
        not_scored=_not_scored(ids, targeted, names), split=split, subset=subset)
    if out is not None:
        write_results(per_item, summary, out)
    return per_item, summary


def _check_audio_present(manifest: Path, estimates: Path, expected: dict[str, Path], targeted: list[str]) -> None:
    """Every estimate, and every target and mixture of the benchmark, exists (checked before any scoring)."""
    missing = [f"{i}.wav" for i, p in expected.items() if not p.is_file()]
    if missing:
        raise LassbenchError(f"{estimates}: missing {_listing(missing)} listed in {manifest}; to score only "
                             "some items, pass --ids FILE (one id per line, or a CSV with an id column) or --limit N")
    for folder, wanted in (("target", targeted), ("mixture", list(expected))):
        absent = [f"{folder}/{i}.wav" for i in wanted if not (manifest.parent / folder / f"{i}.wav").is_file()]
        if absent:
            raise LassbenchError(f"{manifest}: benchmark audio missing beside the manifest: {_listing(absent)}; to "
                                 "score a subset of a built benchmark, pass its manifest.csv with --ids SUBSET.csv")


def _ids_with_target(frame: pd.DataFrame, ids: list[str], base: Path) -> list[str]:
    """Items with a reference: a non-empty ``target_id``; in a hand-written manifest without that column (``id,
    query`` over a folder of mixtures), the items whose ``target/<id>.wav`` exists."""
    if "target_id" not in frame:
        return [i for i in ids if (base / "target" / f"{i}.wav").is_file()]
    return [i for i, target in zip(ids, frame["target_id"], strict=True) if str(target).strip()]


def _fad_scorer(fad, n_references: int):
    """The FAD scorer, checked before the scoring: a set needs 2 references, the model must load."""
    if fad and n_references < 2:
        raise LassbenchError(f"FAD needs at least 2 items with a reference ({n_references} here)")
    from lassbench.fad import fad_scorer

    return fad_scorer(fad)


def _fad_of(scorer, paths: Iterable[tuple[Path, Path]]) -> tuple | None:
    """(scorer, FAD statistics) of the (estimate, reference) files, streamed: only their embeddings are held."""
    if scorer is None:
        return None
    return scorer, scorer.score_pairs((*read_audio(e), *read_audio(r)) for e, r in paths)


def _estimate_and_mixture(estimate_path: Path, mixture_path: Path) -> tuple:
    """(estimate, mixture, rate) for the reference-free scores (CLAPScore, the judge); the two rates must agree
    (both scorers resample the two the same way)."""
    estimate, rate = read_single_channel(estimate_path, role="the estimate")
    mixture, mixture_rate = read_audio(mixture_path)
    if mixture_rate != rate:
        raise LassbenchError(f"{estimate_path}: sample rate {rate} Hz but the mixture {mixture_path} is "
                             f"{mixture_rate} Hz; resample the estimates to the mixture rate")
    return estimate, mixture, rate


def _not_scored(ids: list[str], targeted: list[str], names) -> dict:
    """metric -> how many items it could not score and why (items without a target have no SDR)."""
    has_target = set(targeted)
    skipped = [i for i in ids if i not in has_target]
    if not skipped:
        return {}
    entry = {"n": len(skipped), "reason": "no target (empty target_id)", "items": skipped[:_MAX_LISTED]}
    return {name: dict(entry) for name in names}


def _metrics_for(metrics, has_mixtures: bool) -> tuple[str, ...]:
    if metrics is None:
        return tuple(n for n in DEFAULT_METRICS if has_mixtures or not METRICS[n].needs_mixture)
    names = _resolve(metrics)
    needing = [n for n in names if METRICS[n].needs_mixture]
    if needing and not has_mixtures:
        raise LassbenchError(
            f"metric(s) {', '.join(needing)} need the mixtures: pass --mixtures DIR (or use --manifest)"
        )
    return names


def _check_aggregate(aggregate: str, has_labels: bool) -> None:
    if aggregate not in AGGREGATES:
        raise LassbenchError(f"unknown aggregate {aggregate!r}; use one of {', '.join(AGGREGATES)}")
    if aggregate != "mean" and not has_labels:
        raise LassbenchError(f"aggregate {aggregate!r} needs class labels: score a benchmark with --manifest")


def _audio_by_name(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise LassbenchError(f"{folder}: {role} folder not found")
    paths = list_audio_files(folder)
    files = {p.stem: p for p in paths}
    if len(files) < len(paths):
        stems = Counter(p.stem for p in paths)
        clashes = sorted(p.name for p in paths if stems[p.stem] > 1)
        raise LassbenchError(f"{folder}: files share a name and differ only by extension: {', '.join(clashes[:6])}")
    if not files:
        raise LassbenchError(f"{folder}: {role} folder has no audio files")
    return files


def _check_same_names(reference_files: dict, reference_dir: Path, other_files: dict, other_dir: Path) -> None:
    absent = sorted(set(reference_files) - set(other_files))
    if absent:
        raise LassbenchError(
            f"{other_dir}: missing {_listing([reference_files[n].name for n in absent])} present in {reference_dir}"
        )
    extra = sorted(set(other_files) - set(reference_files))
    if extra:
        raise LassbenchError(
            f"{other_dir}: {_listing([other_files[n].name for n in extra])} with no reference in {reference_dir}"
        )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return f"{len(names)} file(s): {shown}{more}"


def _read_items(ids: list[str], reference_of, estimate_of, mixture_of) -> Iterator[tuple]:
    """Read each item's WAVs lazily (one item in memory at a time), checking the sample rates agree."""
    for item in ids:
        reference, rate = read_audio(reference_of(item))
        signals = {"estimate": estimate_of(item), "mixture": mixture_of(item)}
        loaded = {}
        for role, path in signals.items():
            if path is None:
                loaded[role] = None
                continue
            loaded[role], other_rate = read_single_channel(path, role=f"the {role}")
            if other_rate != rate:
                raise LassbenchError(
                    f"{path}: sample rate {other_rate} Hz but the reference {reference_of(item)} is {rate} Hz; "
                    "resample the estimates to the reference rate"
                )
        yield item, reference, loaded["estimate"], loaded["mixture"]
