"""The evaluation harness: match estimates to references, score them, aggregate with bootstrap CIs, write results.

Three entry points share one scoring path (:func:`evaluate_arrays`), so a model scored in memory by the runner and
the same outputs scored from WAV files give identical numbers:

* :func:`evaluate_arrays` — ``(item_id, reference, estimate, mixture_or_None)`` tuples in memory;
* :func:`evaluate_folders` — WAVs matched by file name across a references, an estimates and a mixtures folder;
* :func:`evaluate_manifest` — a benchmark built by ``build-dataset`` (``target/<id>.wav`` and ``mixture/<id>.wav``
  beside its ``manifest.csv``) plus ``<estimates>/<id>.wav``; adds the protocol columns and breakdowns.

Outputs (:func:`write_results`): ``OUT/per_item.csv`` (``item`` + one column per metric [+ ``snr_db, labels,
condition, query``]) and ``OUT/summary.json``::

    {"n_items", "aggregate", ["class_column"], "si_sdr_convention",
     "metrics": {name: {"mean", "median", "std", "ci95_low", "ci95_high", "n", ...}},
     "definitions": {name: text}, "breakdowns": {"snr_bucket": {}, "label": {}, "condition": {}},
     "benchmark", "protocol", "lassbench_version"}
    (+ "aggregate_from", "headline", "exact", ... from evaluate_manifest)

``metrics[name]["mean"]`` is the headline number under ``aggregate`` (see :func:`summarize`); ``ci95_*`` is its
bootstrap interval; ``median``/``std`` are over items. A built benchmark's protocol chooses the SI-SDR convention,
the aggregate and which SDR is its headline (``headline``: ``{"sdr": "bss_sdr", "sdri": "bss_sdri"}`` for CLAPSep's
BSS-Eval figures) (:func:`protocol_rules`); all are recorded.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from lassbench import __version__
from lassbench.audio import list_audio_files, read_audio, read_single_channel, write_text_atomic
from lassbench.errors import LassbenchError
from lassbench.fad import is_fad_metric
from lassbench.jsonio import jsonable
from lassbench.manifests import (
    check_unique_ids,
    decode_list,
    first_label,
    read_dataset_json,
    read_item_manifest,
    read_manifest,
    write_manifest_csv,
)
from lassbench.metrics import (
    DEFAULT_METRICS,
    METRICS,
    SI_SDR_CONVENTIONS,
    compute_metrics,
    definition,
    resolve_metrics,
    si_sdr_convention,
)
from lassbench.paths import check_output_folder

AGGREGATES = ("mean", "class-median-mean", "class-mean")
ALIGNS = ("trim", "pad")
SNR_BUCKET_DB = 5.0
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
    ``si_sdr``/``si_sdri`` columns (:func:`protocol_rules` gives a benchmark's).

    Each item is checked first (:class:`LassbenchError` naming it): silent reference, NaN/inf samples, lengths
    that differ (unless ``align`` is ``"trim"`` — cut to the shortest — or ``"pad"`` — zero-pad to the longest), a
    metric that needs the mixture when the item has none. Items of equal length are scored in batches.
    """
    names = _resolve(metrics)
    _check_convention(convention)
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
    convention = _check_convention(convention or "zero-mean")
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
    _add_fad(summary, fad_scorer, ((paths[n]["estimates"], paths[n]["references"]) for n in item_names))
    if out is not None:
        write_results(per_item, summary, out)
    return per_item, summary


def evaluate_manifest(manifest: str | Path, estimates: str | Path, *, out: str | Path | None,
                      metrics: Iterable[str] | str | None = None, align: str | None = None,
                      aggregate: str | None = None, progress: bool = False, clap=None, split: str | None = None,
                      convention: str | None = None, ids: str | Path | None = None, limit: int | None = None,
                      fad=None) -> tuple[pd.DataFrame, dict]:
    """Score ``<estimates>/<id>.wav`` against a built benchmark's ``target/<id>.wav`` (mixtures
    ``mixture/<id>.wav``), adding the protocol columns ``snr_db, labels, condition, query`` and the breakdowns by
    SNR bucket, label and condition. ``benchmark``/``protocol`` come from ``dataset.json`` beside the manifest.

    Items without a target (empty ``target_id``: real mixtures) get no reference-based metrics (NaN, listed under
    ``summary["not_scored"]``). ``clap`` (a CLAP checkpoint folder or hub name, or a
    :class:`~lassbench.clapscore.ClapScorer`) adds the reference-free ``clap_score@<digest>`` and
    ``clap_score_i@<digest>`` for every item, and ``summary["clap"]`` (checkpoint, SHA-256, preprocessing).
    ``fad`` (a local embedding model path or a :class:`~lassbench.fad.FadScorer`) adds the set-level
    ``fad@<digest>`` of the estimates against the targets, with its bootstrap CI, and ``summary["fad"]`` (the
    embedding model).

    ``split`` scores only the manifest's items of that split (estimates are needed for those only), so a system
    run on the test split is scored on the same items as ``lassbench run`` scores; duplicate ids are refused.
    ``ids`` (a file: one id per line, or a CSV with an ``id`` column such as a sub-manifest) and ``limit`` (the
    first N items) score a subset; so does a sub-manifest saved beside the benchmark's ``manifest.csv``. A subset
    is recorded as ``summary["subset"]`` (``n_items``, ``of``, ``label``), which the leaderboard shows.

    ``aggregate`` and ``convention`` (SI-SDR) default to what the benchmark's protocol prescribes
    (:func:`protocol_rules` on its ``dataset.json``); summary.json records both and where they came from."""
    manifest, aggregate_option = Path(manifest), aggregate is not None
    rules = protocol_rules(read_dataset_json(manifest.parent))
    names = _metrics_for(rules.metrics if metrics is None else metrics, has_mixtures=True)
    aggregate, convention = aggregate or rules.aggregate, _check_convention(convention or rules.convention)
    _check_aggregate(aggregate, has_labels=True)
    if out is not None:
        check_output_folder(out, "--out")  # before the scoring, not after it
    frame = _select_split(read_item_manifest(manifest), split, manifest)
    if frame.empty:
        raise LassbenchError(f"{manifest}: manifest has no items")
    check_unique_ids(frame["id"], manifest)
    frame, subset = _select_subset(frame, manifest, split, ids, limit)
    base, estimates = manifest.parent, Path(estimates)
    if not estimates.is_dir():
        raise LassbenchError(f"{estimates}: estimates folder not found")
    ids = [str(i) for i in frame["id"]]
    targeted = _ids_with_target(frame, ids, base)
    if aggregate != "mean":  # before the scoring: every summarised item needs its class
        summarised = set(ids if clap is not None else targeted)
        item_classes(frame[frame["id"].astype(str).isin(summarised)].rename(columns={"id": "item"}), aggregate)
    if not targeted and clap is None:
        raise LassbenchError(f"{manifest}: no item has a target (empty target_id), so only reference-free scores "
                             "apply: pass --clap CHECKPOINT (a CLAP folder or hub name)")
    expected = {i: estimates / f"{i}.wav" for i in ids}
    missing = [f"{i}.wav" for i, p in expected.items() if not p.is_file()]
    if missing:
        raise LassbenchError(f"{estimates}: missing {_listing(missing)} listed in {manifest}; to score only "
                             "some items, pass --ids FILE (one id per line, or a CSV with an id column) or --limit N")
    for folder, wanted in (("target", targeted), ("mixture", ids)):
        absent = [f"{folder}/{i}.wav" for i in wanted if not (base / folder / f"{i}.wav").is_file()]
        if absent:
            raise LassbenchError(f"{manifest}: benchmark audio missing beside the manifest: {_listing(absent)}; to "
                                 "score a subset of a built benchmark, pass its manifest.csv with --ids SUBSET.csv")
    from lassbench.clapscore import clap_scorer

    scorer = clap_scorer(clap)  # after the cheap file checks, before the long work: a bad checkpoint fails first
    fad_scorer = _fad_scorer(fad, len(targeted))

    def describe(item: str, role: str) -> str:
        return str({"reference": base / "target" / f"{item}.wav", "estimate": expected[item],
                    "mixture": base / "mixture" / f"{item}.wav"}[role])

    items = _read_items(targeted, lambda i: base / "target" / f"{i}.wav", lambda i: expected[i],
                        lambda i: base / "mixture" / f"{i}.wav")
    per_item = evaluate_arrays(items, names, align=align, describe=describe, progress=progress,
                               total=len(targeted), convention=convention)
    per_item = per_item.set_index("item").reindex(ids).rename_axis("item").reset_index()  # target-less: NaN
    clap_names: list[str] = []
    if scorer is not None:
        queries = dict(zip(ids, frame["query"], strict=True))
        clap_items = ((i, queries[i], *_estimate_and_mixture(expected[i], base / "mixture" / f"{i}.wav"))
                      for i in ids)
        per_item = per_item.merge(scorer.score_items(clap_items), on="item", how="left", validate="one_to_one")
        clap_names = [scorer.score_name, scorer.improvement_name]
    for column in PROTOCOL_COLUMNS:
        default = [[] for _ in ids] if column == "labels" else ([math.nan] * len(ids) if column == "snr_db" else "")
        per_item[column] = frame[column].tolist() if column in frame else default
    summary = summarize(per_item[per_item["item"].isin(set(targeted))], names, aggregate=aggregate,
                        convention=convention)
    summary["aggregate_from"] = "option" if aggregate_option else rules.source
    summary["headline"] = headline_of(rules, names)
    summary["n_items"] = len(per_item)
    if scorer is not None:
        summary["metrics"].update(summarize(per_item, clap_names, aggregate=aggregate)["metrics"])
        summary["definitions"].update(scorer.info["definitions"])
        summary["clap"] = scorer.info
    _add_fad(summary, fad_scorer, ((expected[i], base / "target" / f"{i}.wav") for i in targeted))
    summary["not_scored"] = _not_scored(ids, targeted, names)
    summary["breakdowns"] = breakdowns(per_item, [*names, *clap_names])
    summary["benchmark"], summary["protocol"] = _dataset_identity(base)
    summary["exact"] = read_dataset_json(base).get("exact")  # false: the benchmark approximates its protocol
    if split is not None:
        summary["split"] = split
    if subset is not None:
        summary["subset"] = subset
    if out is not None:
        write_results(per_item, summary, out)
    return per_item, summary


def subset_record(n_items: int, of: int, split: str | None, selection: str, *, first: bool = False) -> dict:
    """``summary.json`` / ``run.json`` ``subset`` of a result over part of its split: what the leaderboard shows."""
    label = f"{'first ' if first else ''}{n_items} of {of} {split + ' ' if split else ''}items"
    return {"n_items": n_items, "of": of, "split": split or "", "selection": selection, "label": label}


def _select_subset(frame: pd.DataFrame, manifest: Path, split: str | None, ids: str | Path | None,
                   limit: int | None) -> tuple[pd.DataFrame, dict | None]:
    """The items ``--ids`` / ``--limit`` keep (manifest order), and the subset record when they are not all."""
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise LassbenchError(f"--limit {limit}: give a positive number of items (leave it out for all)")
    of, selection = _whole_split_size(frame, manifest, split), "sub-manifest " + manifest.name
    if ids is not None:
        wanted = read_id_list(ids)
        unknown = sorted(set(wanted) - set(frame["id"].astype(str)))
        if unknown:
            raise LassbenchError(f"{ids}: {len(unknown)} id(s) not in {manifest}"
                                 f"{' split ' + split if split else ''}: {', '.join(unknown[:_MAX_LISTED])}")
        frame, selection = frame[frame["id"].astype(str).isin(set(wanted))].reset_index(drop=True), f"--ids {ids}"
    if limit is not None and limit < len(frame):
        frame, selection = frame.iloc[:limit].reset_index(drop=True), f"--limit {limit}"
    if len(frame) >= of:
        return frame, None
    return frame, subset_record(len(frame), of, split, selection, first=selection.startswith("--limit"))


def _whole_split_size(frame: pd.DataFrame, manifest: Path, split: str | None) -> int:
    """Items of the benchmark's split: of ``manifest.csv`` beside a sub-manifest, else of ``frame`` itself."""
    whole = manifest.parent / "manifest.csv"
    if manifest.name == "manifest.csv" or not whole.is_file():
        return len(frame)
    try:
        full = read_item_manifest(whole)
    except LassbenchError:
        return len(frame)
    full = full[full["split"] == split] if split is not None and "split" in full else full
    return max(len(full), len(frame))


def read_id_list(path: str | Path) -> list[str]:
    """Item ids from a file: a CSV with an ``id`` column (a sub-manifest), else one id per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LassbenchError(f"{path}: cannot read the id list ({exc})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and "id" in [c.strip() for c in lines[0].split(",")]:
        lines = [str(i) for i in read_manifest(path, ["id"])["id"]]
    if not lines:
        raise LassbenchError(f"{path}: no item id in the file")
    return lines


def _select_split(frame: pd.DataFrame, split: str | None, manifest: Path) -> pd.DataFrame:
    if split is None:
        return frame
    present = sorted({str(v) for v in frame["split"]}) if "split" in frame else []
    if split not in present:
        have = ", ".join(present) if present else "none: the manifest has no split column"
        raise LassbenchError(f"--split {split}: {manifest} has no item of that split (splits: {have})")
    return frame[frame["split"] == split].reset_index(drop=True)



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


def _add_fad(summary: dict, scorer, paths: Iterable[tuple[Path, Path]]) -> None:
    """FAD of the (estimate, reference) files, streamed: only their embeddings are held."""
    if scorer is None:
        return
    from lassbench.fad import add_fad

    add_fad(summary, scorer, scorer.score_pairs((*read_audio(e), *read_audio(r)) for e, r in paths))


def _estimate_and_mixture(estimate_path: Path, mixture_path: Path) -> tuple:
    """(estimate, mixture, rate) for CLAPScore; the two rates must agree (CLAP resamples both the same way)."""
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


def _dataset_identity(base: Path) -> tuple[str | None, str | None]:
    info = read_dataset_json(base)
    return info.get("name"), info.get("protocol")


# --- aggregation -----------------------------------------------------------------------------------------------


HEADLINE_SDRS = ("sdr", "bss_sdr")


@dataclass(frozen=True)
class ProtocolRules:
    """How a benchmark's published evaluator scores: SI-SDR convention and headline aggregate, and their source."""

    convention: str
    aggregate: str
    source: str  # "dataset.json" when the benchmark states its aggregation, else "default"
    sdr: str = "sdr"  # the SDR of the headline sdr / sdri columns: "sdr" (energy ratio) or "bss_sdr" (BSS-Eval)

    @property
    def metrics(self) -> tuple[str, ...]:
        """What is scored by default: the four headline columns, and BSS-Eval's pair where it is the headline."""
        return DEFAULT_METRICS + (("bss_sdr", "bss_sdri") if self.sdr == "bss_sdr" else ())

    @property
    def headline(self) -> dict[str, str]:
        """summary.json ``headline``: the metric each leaderboard column shows (``sdr`` -> ``bss_sdr`` for CLAPSep)."""
        return {"sdr": self.sdr, "sdri": self.sdr + "i"}


def protocol_rules(dataset: dict) -> ProtocolRules:
    """The scoring rules of a built benchmark, from its ``dataset.json`` content.

    SI-SDR: AudioSep's ``calculate_sisdr`` for the ``audiosep``, ``dcase2024`` and ``clapsep`` protocols, zero-mean
    otherwise (:func:`lassbench.metrics.si_sdr_convention`). Aggregate: ``parameters.aggregation`` where the
    protocol recorded one (AudioSep's AudioSet list: ``class-median-mean``, MUSIC: ``class-mean``), else ``mean``.
    """
    parameters = dataset.get("parameters") if isinstance(dataset.get("parameters"), dict) else {}
    aggregate = parameters.get("aggregation")
    if aggregate is not None and aggregate not in AGGREGATES:
        raise LassbenchError(f"dataset.json: unknown aggregation {aggregate!r}; known: {', '.join(AGGREGATES)}")
    # benchmarks built before dataset.json recorded it: CLAPSep's evaluator always reported BSS-Eval SDR
    sdr = parameters.get("headline_sdr") or ("bss_sdr" if dataset.get("protocol") == "clapsep" else "sdr")
    if sdr not in HEADLINE_SDRS:
        raise LassbenchError(f"dataset.json: unknown headline_sdr {sdr!r}; known: {', '.join(HEADLINE_SDRS)}")
    return ProtocolRules(si_sdr_convention(dataset.get("protocol")), aggregate or "mean",
                         "dataset.json" if aggregate else "default", sdr)


def headline_of(rules: ProtocolRules, scored: Iterable[str]) -> dict[str, str]:
    """The protocol's headline mapping, limited to the metrics actually scored (``--metrics`` may leave some out)."""
    scored = set(scored)
    return {column: name for column, name in rules.headline.items() if name in scored}


def summarize(per_item: pd.DataFrame, metrics: Iterable[str], *, aggregate: str = "mean", n_boot: int = 1000,
              seed: int = 0, group_column: str = "labels", convention: str = "zero-mean") -> dict:
    """summary.json content (``breakdowns`` empty, ``benchmark``/``protocol`` null; the callers fill them).

    ``aggregate`` (the arithmetic of AudioSep's ``benchmark.py`` / ``evaluate_*.py`` on their own lists):

    * ``mean`` — mean over items (AudioSep's AudioCaps, Clotho, VGGSound, ESC-50 figures; DCASE 2024);
    * ``class-median-mean`` — ``nanmean`` over classes of each class's ``nanmedian`` (AudioSep's AudioSet figure);
    * ``class-mean`` — mean over classes of each class's mean (AudioSep's MUSIC figure).

    An item's class is the *first* entry of its ``group_column`` list (JSON text or list); a class aggregate over
    items without a class is an error (it would silently become another statistic). ``convention`` names the SI-SDR
    definition the ``si_sdr`` columns were scored with (recorded with the definitions). CIs: percentile bootstrap
    (2.5, 97.5) of the headline statistic with ``n_boot`` resamples and a fixed ``seed``; class aggregates resample
    items within each class (the class set is fixed).
    """
    names = list(metrics)
    if aggregate not in AGGREGATES:
        raise LassbenchError(f"unknown aggregate {aggregate!r}; use one of {', '.join(AGGREGATES)}")
    _check_convention(convention)
    classes = None
    if aggregate != "mean":
        classes = item_classes(per_item, aggregate, group_column)
    stats = {}
    for name in names:
        values = per_item[name].to_numpy(dtype=np.float64)
        stats[name] = _metric_summary(values, aggregate, classes, n_boot, seed)
    return {
        "n_items": len(per_item),
        "item_set_sha1": item_set_digest(per_item["item"]) if "item" in per_item else None,
        "aggregate": aggregate,
        **({"class_column": group_column} if aggregate != "mean" else {}),
        "si_sdr_convention": convention,
        "metrics": stats,
        "definitions": {name: definition(name, convention) for name in names if name in METRICS},
        "breakdowns": {"snr_bucket": {}, "label": {}, "condition": {}},
        "benchmark": None,
        "protocol": None,
        "lassbench_version": __version__,
    }


def item_set_digest(ids: Iterable) -> str:
    """SHA-1 of the sorted item ids: two results are comparable only when they scored the same items (the
    leaderboard flags rows whose digest differs from their table's)."""
    return hashlib.sha1("".join(f"{i}\n" for i in sorted({str(i) for i in ids})).encode()).hexdigest()


def _metric_summary(values: np.ndarray, aggregate: str, classes, n_boot: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    if values.size == 0:
        nan = math.nan
        return {"mean": nan, "median": nan, "std": nan, "ci95_low": nan, "ci95_high": nan, "n": 0}
    if aggregate == "mean":
        headline, boots = float(values.mean()), _bootstrap(values, np.mean, n_boot, rng)
        extra = {}
    else:  # AudioSet: np.nanmean of per-class np.nanmedian; MUSIC: np.mean of per-class np.mean
        reduce, over = (np.nanmedian, np.nanmean) if aggregate == "class-median-mean" else (np.mean, np.mean)
        groups = [values[classes == c] for c in sorted(set(classes))]
        headline = float(over([reduce(g) for g in groups]))
        boots = over([_bootstrap(g, reduce, n_boot, rng) for g in groups], axis=0)
        extra = {"n_classes": len(groups), "item_mean": float(values.mean())}
    low, high = np.percentile(boots, [2.5, 97.5])
    return {"mean": headline, "median": float(np.median(values)), "std": float(values.std(ddof=1))
            if values.size > 1 else 0.0, "ci95_low": float(low), "ci95_high": float(high), "n": int(values.size),
            **extra}


def _bootstrap(values: np.ndarray, statistic, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``statistic`` of ``n_boot`` resamples, vectorised in chunks of at most ~4M drawn indices."""
    out = np.empty(n_boot)
    step = max(1, 4_000_000 // values.size)
    for start in range(0, n_boot, step):
        count = min(step, n_boot - start)
        draws = values[rng.integers(0, values.size, size=(count, values.size))]
        out[start : start + count] = statistic(draws, axis=1)
    return out


def item_classes(per_item: pd.DataFrame, aggregate: str, group_column: str = "labels") -> np.ndarray:
    """Each item's class (first entry of ``group_column``); an error naming the items that have none."""
    if group_column not in per_item:
        raise LassbenchError(f"aggregate {aggregate!r} needs each item's class, but the items have no "
                             f"{group_column!r} column; use --aggregate mean")
    classes = np.array([first_label(v) for v in per_item[group_column]], dtype=object)
    unlabelled = [str(i) for i, c in zip(per_item.get("item", per_item.index), classes, strict=True) if c == ""]
    if unlabelled:
        raise LassbenchError(
            f"aggregate {aggregate!r} needs each item's class (first of {group_column!r}), but {len(unlabelled)} of "
            f"{len(classes)} item(s) have none ({', '.join(unlabelled[:_MAX_LISTED])}); build the benchmark with "
            "class labels or use --aggregate mean"
        )
    return classes


def _check_convention(convention: str) -> str:
    if convention not in SI_SDR_CONVENTIONS:
        raise LassbenchError(f"unknown SI-SDR convention {convention!r}; use one of {', '.join(SI_SDR_CONVENTIONS)}")
    return convention



def breakdowns(per_item: pd.DataFrame, metrics: Iterable[str]) -> dict:
    """Mean and count of each metric by SNR bucket (``SNR_BUCKET_DB`` wide, ``"lo..hi"``, lo inclusive), by label
    (an item counts under every label it has) and by condition."""
    names = list(metrics)
    out: dict[str, dict] = {"snr_bucket": {}, "label": {}, "condition": {}}
    if "snr_db" in per_item:
        snr = pd.to_numeric(per_item["snr_db"], errors="coerce")
        low = np.floor(snr / SNR_BUCKET_DB) * SNR_BUCKET_DB
        keys = [None if math.isnan(v) else f"{v:g}..{v + SNR_BUCKET_DB:g}" for v in low]
        order = sorted({(v, k) for v, k in zip(low, keys, strict=True) if k is not None})
        out["snr_bucket"] = {k: _group_stats(per_item, names, [x == k for x in keys]) for _, k in order}
    if "labels" in per_item:
        label_lists = [decode_list(v) if not isinstance(v, list) else v for v in per_item["labels"]]
        for label in sorted({str(x) for labels in label_lists for x in labels}):
            mask = [label in map(str, labels) for labels in label_lists]
            out["label"][label] = _group_stats(per_item, names, mask)
    if "condition" in per_item:
        conditions = per_item["condition"].fillna("").astype(str)
        for condition in sorted(set(conditions) - {""}):
            out["condition"][condition] = _group_stats(per_item, names, list(conditions == condition))
    return out


def _group_stats(per_item: pd.DataFrame, names: list[str], mask) -> dict:
    subset = per_item.loc[np.asarray(mask, dtype=bool)]
    return {name: {"mean": float(subset[name].mean()), "n": len(subset)} for name in names}


# --- output ----------------------------------------------------------------------------------------------------


def write_results(per_item: pd.DataFrame, summary: dict, out: str | Path) -> tuple[Path, Path]:
    """Atomically write ``OUT/per_item.csv`` (list cells as JSON, formula-like text defused) and
    ``OUT/summary.json``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LassbenchError(f"{out}: output path exists and is not a folder")
    if "item" in per_item and not summary.get("item_set_sha1"):  # summaries made by hand or by older code
        summary = {**summary, "item_set_sha1": item_set_digest(per_item["item"])}
    csv_path = write_manifest_csv(per_item, out / "per_item.csv")
    json_path = write_text_atomic(out / "summary.json", json.dumps(jsonable(summary), indent=2) + "\n")
    return csv_path, json_path



def format_table(summary: dict) -> str:
    """An aligned text table: metric, headline (under the summary's aggregate), 95% CI, median, n."""
    header = ("metric", summary.get("aggregate", "mean"), "95% CI", "median", "n")
    rows = [header]
    for name, stats in summary["metrics"].items():
        fmt = _fmt_set_level if is_fad_metric(name) else _fmt  # one value per set: no median; small values
        rows.append((
            name, fmt(stats.get("mean")), f"[{fmt(stats.get('ci95_low'))}, {fmt(stats.get('ci95_high'))}]",
            _fmt(stats["median"]) if "median" in stats else "-", str(stats.get("n", "")),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _fmt_set_level(value) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"
