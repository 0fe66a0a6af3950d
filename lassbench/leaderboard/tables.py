"""Ranking: the main table and the query-robustness table of each benchmark, from :class:`SystemResult` rows.

``main_table``: variant ``default`` runs, outside systems and reported rows, ranked by SDRi.
``queries_table``: one row per (model, variant) of the query-robustness study, with its SDRi change.

Rules the tables keep, because the field mixes them silently:

* ``source`` is ``reproduced`` (scored here) or ``reported`` (copied from a paper). The two are ranked
  separately (``rank`` restarts at 1 for reported rows) and never averaged together.
* Reference systems (``mixture``, ``oracle-irm``, ``oracle-ibm``, or any run whose ``query_type`` is
  ``none``) are listed with ``reference=yes`` and an empty ``rank``: they bound the table, not compete in it.
* A partial run, or a run over another item set than the table's other rows, is listed unranked with a note.
* Every row names its metric definitions (``sdr_definition``, ``si_sdr_definition``) and its ``aggregation``:
  AudioSep/DCASE "SDR" is the plain energy ratio, CLAPSep's is BSS-Eval (summary.json ``headline`` puts ``bss_sdr``
  / ``bss_sdri`` in the ``sdr`` / ``sdri`` columns of a ``clapsep`` benchmark); AudioSep's "SISDR" column is absolute
  SI-SDR (it sits in ``si_sdr``, not ``si_sdri``); AudioSep's AudioSet figure is a mean of per-class medians.
* Output is deterministic (sorted rows, 3-decimal floats, ``date`` taken from run.json, never from the
  clock), so regenerating from committed results reproduces committed CSVs byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.leaderboard.results import METRICS, SystemResult, read_per_item

SOURCES = ("reproduced", "reported")
# Order of the query-robustness variants in their table; anything else follows alphabetically.
VARIANT_ORDER = (
    "default", "caption", "caption-2", "caption-3", "caption-4", "caption-5", "paraphrase", "tags", "wrong-query",
    "absent", "interferer", "negative",
)
# Query controls of `run --control` (lassbench.controls): absent has no reference, only a false-separation level.
CONTROL_COLUMNS = ["scored_against", "false_separation_db", "false_separation_db_ci95_low",
                   "false_separation_db_ci95_high", "below_-20db_share"]

CI_COLUMNS = [f"{m}_{bound}" for m in METRICS for bound in ("ci95_low", "ci95_high")]
MAIN_COLUMNS = [
    "rank", "system", "reference", "query_type", "params", *METRICS, *CI_COLUMNS, "n_items", "protocol", "exact",
    "aggregation", "sdr_definition", "si_sdr_definition", "source", "citation", "notes", "checkpoint_sha256",
    "lassbench_version", "date",
]
QUERY_COLUMNS = [
    "model", "variant", "query_type", *METRICS, "sdri_delta_vs_caption", "delta_items", *CONTROL_COLUMNS,
    *CI_COLUMNS, "n_items", "protocol", "aggregation", "sdr_definition", "si_sdr_definition", "checkpoint_sha256",
    "lassbench_version", "date", "notes",
]


@dataclass
class Leaderboard:
    """The tables of one benchmark."""

    benchmark: str
    main: pd.DataFrame
    queries: pd.DataFrame
    systems: list[SystemResult]


def build_leaderboards(systems: Iterable[SystemResult]) -> dict[str, Leaderboard]:
    """Group by benchmark and make the main and query-robustness tables of each, sorted by benchmark name."""
    by_benchmark: dict[str, list[SystemResult]] = {}
    for result in systems:
        by_benchmark.setdefault(result.benchmark, []).append(result)
    boards = {}
    for name in sorted(by_benchmark):
        rows = by_benchmark[name]
        _check_unique(rows)
        boards[name] = Leaderboard(name, main_table(rows), queries_table(rows), rows)
    return boards


def main_table(systems: list[SystemResult]) -> pd.DataFrame:
    """Default-variant runs, outside systems and reported rows of one benchmark, ranked by SDRi per source."""
    rows = sorted(main_rows(systems), key=main_sort_key)
    apart = unranked_notes(rows)
    records, rank, previous_source = [], 0, None
    for result in rows:
        if result.source != previous_source:
            rank, previous_source = 0, result.source
        ranked = not result.is_reference and not math.isnan(result.value("sdri")) and id(result) not in apart
        rank += ranked
        record = _main_record(result, rank if ranked else None)
        if id(result) in apart:
            record["notes"] = "; ".join(n for n in (record["notes"], apart[id(result)]) if n)
        records.append(record)
    frame = _with_clap_columns(pd.DataFrame(records, columns=MAIN_COLUMNS), rows)
    return _with_fad_columns(_with_judge_columns(frame, rows), rows)


def _with_clap_columns(frame: pd.DataFrame, rows: list[SystemResult]) -> pd.DataFrame:
    """Reference-free CLAPScore columns where any row has them (``evaluate --clap``). Their names carry the
    checkpoint's digest (``clap_score@1a2b3c4d``), so scores of different CLAP checkpoints never share a column;
    ``clap_checkpoint`` names the checkpoint, its SHA-256 and the preprocessing of each row's scores."""
    from lassbench.clapscore import is_clap_metric

    names = sorted({m for r in rows for m in r.metrics if is_clap_metric(m)})
    if not names:
        return frame
    for name in names:
        for stat, suffix in (("mean", ""), ("ci95_low", "_ci95_low"), ("ci95_high", "_ci95_high")):
            frame[f"{name}{suffix}"] = [_fmt(r.value(name, stat)) for r in rows]
    frame["clap_checkpoint"] = [
        f"{r.clap.get('checkpoint')} sha256={r.clap.get('sha256')} {r.clap.get('sample_rate')} Hz "
        f"{r.clap.get('window_s')} s windows" if r.clap else "" for r in rows]
    return frame


def _with_judge_columns(frame: pd.DataFrame, rows: list[SystemResult]) -> pd.DataFrame:
    """The SAM Audio judge's four reference-free scores where any row has them (``--judge``), and ``judge_model``
    naming each row's judge (its folder, the SHA-256 of its weights and of its config.json): scores of different
    judges do not compare."""
    from lassbench.judge import METRICS as JUDGE_METRICS

    if not any(m in r.metrics for r in rows for m in JUDGE_METRICS):
        return frame
    for name in JUDGE_METRICS:
        for stat, suffix in (("mean", ""), ("ci95_low", "_ci95_low"), ("ci95_high", "_ci95_high")):
            frame[f"{name}{suffix}"] = [_fmt(r.value(name, stat)) for r in rows]
    frame["judge_model"] = [_judge_label(r.judge) if r.judge else "" for r in rows]
    return frame


def _judge_label(judge: dict) -> str:
    label = f"SAM Audio judge {judge.get('checkpoint')} sha256={judge.get('sha256')}"
    config = judge.get("config_sha256")  # results scored before it was recorded have none
    return f"{label} config={config[:12]}" if config else label


def _with_fad_columns(frame: pd.DataFrame, rows: list[SystemResult]) -> pd.DataFrame:
    """FAD columns where any row has one (``--fad``): ``fad@<digest>`` per embedding model, so FADs in different
    embedding spaces never share a column, and ``fad_model`` naming each row's model and its SHA-256."""
    from lassbench.fad import is_fad_metric

    names = sorted({m for r in rows for m in r.metrics if is_fad_metric(m)})
    if not names:
        return frame
    for name in names:
        for stat, suffix in (("mean", ""), ("ci95_low", "_ci95_low"), ("ci95_high", "_ci95_high")):
            # 4 significant digits, not 3 decimals: a near-oracle FAD is far below 0.001
            values = (r.value(name, stat) for r in rows)
            frame[f"{name}{suffix}"] = ["" if math.isnan(v) else f"{v:.4g}" for v in values]
    frame["fad_model"] = [f"{r.fad.get('embedding_model')} {r.fad.get('checkpoint')} sha256={r.fad.get('sha256')}"
                          if r.fad else "" for r in rows]
    return frame


def main_rows(systems: list[SystemResult]) -> list[SystemResult]:
    """The rows of the main table, in ``systems``' order: reported figures and default-variant runs."""
    return [s for s in systems if s.source == "reported" or s.variant == "default"]


def unranked_notes(systems: list[SystemResult]) -> dict[int, str]:
    """``id(result) -> note`` for the rows listed but not ranked: other item sets and partial runs."""
    return {**incomparable(systems), **partial_notes(systems)}


def incomparable(systems: list[SystemResult]) -> dict[int, str]:
    """``id(result) -> note`` for reproduced rows that scored another item set than the table's usual one (the
    set most rows scored; ties go to the set the reference systems scored): means over other items are not
    comparable, so such rows are listed but not ranked. Rows whose item set is unknown are left alone."""
    known = [s for s in systems if s.source == "reproduced" and s.item_set]
    if not known:
        return {}
    counts: dict[str, list[int]] = {}
    for result in known:
        entry = counts.setdefault(result.item_set, [0, 0])
        entry[0] += 1
        entry[1] += result.is_reference
    usual = max(counts, key=lambda digest: (*counts[digest], digest))
    size = next((s.n_items for s in known if s.item_set == usual and s.n_items is not None), None)
    usual_text = f"{size} items" if size is not None else "items"
    return {
        id(s): f"not comparable: scored {s.n_items if s.n_items is not None else 'other'} items, another item set "
               f"than the other rows ({usual_text}, item set {usual[:8]}); not ranked"
        for s in known if s.item_set != usual
    }


def partial_notes(systems: list[SystemResult]) -> dict[int, str]:
    """``id(result) -> note`` for partial runs (a subset of their split): listed, never ranked as the system's row."""
    return {id(s): f"partial: {s.subset}; not ranked" for s in systems if s.subset}


def queries_table(systems: list[SystemResult]) -> pd.DataFrame:
    """One row per (model, variant) of the query-robustness study, the model's main run (variant ``default``,
    the benchmark's own caption) first; ``sdri_delta_vs_caption`` is SDRi minus that of the ``caption`` variant
    when there is one, else of the main run (left empty for the controls scored against the interferer or nothing:
    their SDRi measures another source)."""
    reproduced = [s for s in systems if s.source == "reproduced"]
    studied = {s.model for s in reproduced if s.variant != "default"}
    rows = sorted((s for s in reproduced if s.model in studied), key=lambda s: (s.model, _variant_key(s.variant)))
    records = []
    for result in rows:
        delta, matched, note = _query_delta(result, [r for r in rows if r.model == result.model])
        note = "; ".join(n for n in (f"partial: {result.subset}" if result.subset else "", note) if n)
        record = {"model": result.model, "variant": result.variant, "sdri_delta_vs_caption": _fmt(delta),
                  "delta_items": "" if matched is None else str(matched), "notes": note,
                  "scored_against": result.scored_against, "below_-20db_share": _fmt(result.value("below_-20db"))}
        for stat, column in (("mean", ""), ("ci95_low", "_ci95_low"), ("ci95_high", "_ci95_high")):
            record[f"false_separation_db{column}"] = _fmt(result.value("false_separation_db", stat))
        records.append({**_common_record(result), **record})
    return pd.DataFrame(records, columns=QUERY_COLUMNS)


def _query_delta(result: SystemResult, study: list[SystemResult]) -> tuple[float, int | None, str]:
    """(SDRi minus the baseline's, items the difference is over, note). The baseline is the model's ``caption``
    run, else its main run, preferring one over the same items; over another item set the difference is taken on
    the items both scored (from their per_item.csv), or left empty and flagged when they cannot be matched."""
    if result.scored_against != "target":
        return math.nan, None, ""
    baselines = [r for r in study if r.variant in ("default", "caption")]
    if not baselines:
        return math.nan, None, ""
    baseline = min(baselines, key=lambda r: (r.item_set != result.item_set, bool(r.subset),
                                             r.variant != "caption"))
    if baseline.item_set == result.item_set or not (baseline.item_set and result.item_set):
        return result.value("sdri") - baseline.value("sdri"), result.n_items, ""
    matched = _matched_sdri(result, baseline)
    if matched is None:
        return math.nan, None, (f"not comparable: other items than {baseline.system} "
                                f"({result.n_items} vs {baseline.n_items}) and no per_item.csv to match them")
    ours, theirs, count = matched
    return ours - theirs, count, (f"ΔSDRi over the {count} items both scored (mean), not over this row's "
                                  f"{result.n_items} vs {baseline.system}'s {baseline.n_items}")


def _matched_sdri(result: SystemResult, baseline: SystemResult) -> tuple[float, float, int] | None:
    """Mean SDRi of two runs over the items both scored; None without per-item SDRi or common items."""
    frames = [_per_item_column(r, "sdri") for r in (result, baseline)]
    if any(f is None for f in frames):
        return None
    common = frames[0].index.intersection(frames[1].index)
    if common.empty:
        return None
    return float(frames[0].loc[common].mean()), float(frames[1].loc[common].mean()), len(common)


def _per_item_column(result: SystemResult, column: str) -> pd.Series | None:
    """``column`` of a result's per_item.csv indexed by item (NaN rows dropped); None when it has none."""
    frame = read_per_item(result)
    if frame is None or "item" not in frame.columns or column not in frame.columns:
        return None
    values = pd.to_numeric(frame[column], errors="coerce")
    return pd.Series(values.to_numpy(), index=frame["item"].astype(str)).dropna()


def main_sort_key(result: SystemResult) -> tuple:
    """The main table's order: by source, references and partial runs last, then SDRi from best."""
    sdri = result.value("sdri")
    return (
        SOURCES.index(result.source) if result.source in SOURCES else len(SOURCES),
        result.is_reference,
        bool(result.subset),  # partial runs after the ranked ones
        math.isnan(sdri),
        -sdri if not math.isnan(sdri) else 0.0,
        result.system,
        result.citation,
    )


def _variant_key(variant: str) -> tuple:
    known = VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)
    return (known, variant)


def _main_record(result: SystemResult, rank: int | None) -> dict:
    record = _common_record(result)
    record.update(
        rank="" if rank is None else str(rank),
        system=result.system,
        reference="yes" if result.is_reference else "no",
        source=result.source,
        citation=result.citation,
        notes=result.notes,
    )
    return record


def _common_record(result: SystemResult) -> dict:
    record = {
        "query_type": result.query_type,
        "params": "" if result.params is None else str(result.params),
        "n_items": "" if result.n_items is None else str(result.n_items),
        "protocol": result.protocol,
        "exact": result.exact,
        "aggregation": result.aggregation,
        "sdr_definition": result.sdr_definition,
        "si_sdr_definition": result.si_sdr_definition,
        "checkpoint_sha256": result.checkpoint_sha256,
        "lassbench_version": result.lassbench_version,
        "date": result.date,
    }
    for metric in METRICS:
        record[metric] = _fmt(result.value(metric))
        for bound in ("ci95_low", "ci95_high"):
            record[f"{metric}_{bound}"] = _fmt(result.value(metric, bound))
    return record


def _check_unique(rows: list[SystemResult]) -> None:
    """Two folders claiming the same row would make the table depend on which one is read last."""
    seen: dict[tuple, SystemResult] = {}
    for result in rows:
        key = (result.source, result.system, result.variant, result.citation, result.subset)
        if key in seen:
            first = seen[key]
            where = [str(r.folder) if r.folder else f"reported row {r.citation}" for r in (first, result)]
            raise LassbenchError(
                f"{where[1]}: benchmark '{result.benchmark}' has system '{result.system}' variant "
                f"'{result.variant}' twice (also {where[0]}); remove or rename one"
            )
        seen[key] = result


def _fmt(value: float) -> str:
    # Fixed 3 decimals (the precision the published READMEs print); "-0.000" would make reruns differ by sign.
    if math.isnan(value):
        return ""
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text
