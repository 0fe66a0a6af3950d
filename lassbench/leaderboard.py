"""Leaderboards: gather every scored run under ``results/`` into one table per benchmark.

Inputs
    ``results/<benchmark>/<system_dir>/summary.json`` (from ``lassbench evaluate`` / ``lassbench run``),
    with ``run.json`` beside it when ``lassbench run`` made the estimates, and ``per_item.csv`` (plots only).
    ``reported.csv``: hand-curated figures copied from papers / READMEs, one citation per row.

Outputs (``write_leaderboards``)
    ``<out>/<benchmark>.csv``          main table: variant ``default`` runs, outside systems, reported rows.
    ``<out>/<benchmark>_queries.csv``  query-robustness table: one row per (model, variant).
    a markdown page with every table, and optionally a PNG per benchmark (matplotlib, the ``plot`` extra).

Rules the tables keep, because the field mixes them silently:

* ``source`` is ``reproduced`` (scored here) or ``reported`` (copied from a paper). The two are ranked
  separately (``rank`` restarts at 1 for reported rows) and never averaged together.
* Reference systems (``mixture``, ``oracle-irm``, ``oracle-ibm``, or any run whose ``query_type`` is
  ``none``) are listed with ``reference=yes`` and an empty ``rank``: they bound the table, not compete in it.
* Every row names its metric definitions (``sdr_definition``, ``si_sdr_definition``) and its ``aggregation``:
  AudioSep/DCASE "SDR" is the plain energy ratio, CLAPSep's is BSS-Eval (summary.json ``headline`` puts ``bss_sdr``
  / ``bss_sdri`` in the ``sdr`` / ``sdri`` columns of a ``clapsep`` benchmark); AudioSep's "SISDR" column is absolute
  SI-SDR (it sits in ``si_sdr``, not ``si_sdri``); AudioSep's AudioSet figure is a mean of per-class medians.
* Output is deterministic (sorted rows, 3-decimal floats, ``date`` taken from run.json, never from the
  clock), so regenerating from committed results reproduces committed CSVs byte for byte.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lassbench.audio import write_text_atomic
from lassbench.errors import LassbenchError
from lassbench.jsonio import read_json_object
from lassbench.manifests import first_label, read_manifest, write_manifest_csv
from lassbench.paths import check_output_file, check_output_folder
from lassbench.result_folders import DEFAULT_SPLIT

METRICS = ("sdr", "sdri", "si_sdr", "si_sdri")
REFERENCE_SYSTEMS = frozenset({"mixture", "oracle-irm", "oracle-ibm"})
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
REPORTED_REQUIRED = ("benchmark", "system", "citation")
REPORTED_COLUMNS = [
    "benchmark", "system", "query_type", "params", *METRICS, "n_items", "protocol", "aggregation",
    "sdr_definition", "si_sdr_definition", "citation", "notes",
]
_BENCHMARK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


@dataclass
class SystemResult:
    """One scored system on one benchmark: a result folder, or a row of reported.csv."""

    benchmark: str
    system: str
    source: str = "reproduced"
    model: str = ""
    variant: str = "default"
    query_type: str = "unknown"
    params: int | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> {mean, ci95_low, ci95_high}
    n_items: int | None = None
    protocol: str = ""
    aggregation: str = ""
    sdr_definition: str = ""
    si_sdr_definition: str = ""
    citation: str = ""
    notes: str = ""
    checkpoint_sha256: str = ""
    lassbench_version: str = ""
    date: str = ""
    folder: Path | None = None  # where per_item.csv lives (reproduced rows only)
    scored_against: str = "target"  # run.json: "interferer" (interferer/negative controls), "none" (absent)
    item_set: str = ""  # SHA-1 of the scored item ids (evaluate.item_set_digest); "" when unknown
    # dataset.json "exact" via summary.json: "no" when the benchmark only approximates its published protocol (AudioSep
    # lists re-mixed from raw clips); "" when unknown (reported rows, results from before the flag)
    exact: str = ""
    clap: dict = field(default_factory=dict)  # summary.json "clap": checkpoint, SHA-256, rate, window (clapscore)
    headline_sdri: str = "sdri"  # the per_item.csv column of the sdri column (summary.json "headline")
    subset: str = ""  # summary.json "subset" label of a partial run (`run --limit`, `evaluate --ids/--limit`)
    fad: dict = field(default_factory=dict)  # summary.json "fad": the FAD's embedding model (lassbench.fad)

    @property
    def is_reference(self) -> bool:
        named = self.system in REFERENCE_SYSTEMS or self.model in REFERENCE_SYSTEMS
        return named or self.query_type == "none"

    def value(self, metric: str, stat: str = "mean") -> float:
        number = self.metrics.get(metric, {}).get(stat)
        return float(number) if _is_number(number) else math.nan


@dataclass
class Leaderboard:
    """The tables of one benchmark."""

    benchmark: str
    main: pd.DataFrame
    queries: pd.DataFrame
    systems: list[SystemResult]


@dataclass
class LeaderboardOutputs:
    tables: list[Path]
    markdown: Path | None
    plots: list[Path]
    notes: list[str]


# ------------------------------------------------------------ reading


def collect_results(results_dir: str | Path) -> list[SystemResult]:
    """Every ``summary.json`` under ``results_dir`` (recursively), merged with its ``run.json`` if present."""
    root = Path(results_dir)
    if not root.is_dir():
        raise LassbenchError(f"{root}: results folder not found")
    summaries = sorted(p for p in root.rglob("summary.json") if not _hidden(p.relative_to(root)))
    if not summaries:
        raise LassbenchError(
            f"{root}: no summary.json found (score a system first: `lassbench evaluate ... --out "
            f"{root}/<benchmark>/<system>` or `lassbench run MODEL`)"
        )
    return [read_result_folder(p.parent) for p in summaries]


def read_result_folder(folder: str | Path) -> SystemResult:
    """One ``<system_dir>`` with ``summary.json`` (required) and ``run.json`` (optional)."""
    folder = Path(folder)
    summary = read_json_object(folder / "summary.json")
    run_path = folder / "run.json"
    run = read_json_object(run_path) if run_path.is_file() else {}
    metrics = summary.get("metrics")
    if not isinstance(metrics, dict) or not all(isinstance(v, dict) for v in metrics.values()):
        raise LassbenchError(f"{folder / 'summary.json'}: 'metrics' must map metric names to statistics")
    definitions = summary.get("definitions") if isinstance(summary.get("definitions"), dict) else {}
    metrics = _headline_columns(summary, metrics)
    benchmark = str(run.get("benchmark") or summary.get("benchmark") or folder.parent.name)
    if run.get("split") and run["split"] != DEFAULT_SPLIT:  # another split is another table: real+test-unseen
        benchmark = f"{benchmark}+{run['split']}"
    system = str(run.get("system") or run.get("model") or folder.name)
    return SystemResult(
        benchmark=_check_benchmark_name(benchmark, folder / "summary.json"),
        system=system,
        model=str(run.get("model") or system),
        variant=str(run.get("variant") or "default"),
        scored_against=str(run.get("scored_against") or "target"),
        query_type=str(run.get("query_type") or "unknown"),
        params=_as_int(run.get("params"), folder / "run.json"),
        metrics={name: {k: v for k, v in stats.items() if _is_number(v)} for name, stats in metrics.items()},
        n_items=_as_int(summary.get("n_items", run.get("n_items")), folder / "summary.json"),
        protocol=str(run.get("protocol") or summary.get("protocol") or ""),
        aggregation=str(summary.get("aggregate") or "mean"),
        sdr_definition=str(definitions.get(_headline(summary).get("sdr", "sdr"), "")),
        si_sdr_definition=str(definitions.get("si_sdr", "")),
        checkpoint_sha256=str(run.get("checkpoint_sha256") or ""),
        lassbench_version=str(run.get("lassbench_version") or summary.get("lassbench_version") or ""),
        exact={True: "yes", False: "no"}.get(summary.get("exact"), ""),
        date=str(run.get("date") or summary.get("date") or ""),
        folder=folder,
        item_set=str(summary.get("item_set_sha1") or _item_set_from_per_item(folder)),
        clap=summary["clap"] if isinstance(summary.get("clap"), dict) else {},
        headline_sdri=str(_headline(summary).get("sdri", "sdri")),
        subset=_subset_label(summary.get("subset")),
        fad=summary["fad"] if isinstance(summary.get("fad"), dict) else {},
    )


def _headline(summary: dict) -> dict[str, str]:
    headline = summary.get("headline")
    return headline if isinstance(headline, dict) else {}


def _headline_columns(summary: dict, metrics: dict) -> dict:
    """Metrics keyed by table column: where the benchmark's headline SDR is another metric (CLAPSep's BSS-Eval
    ``bss_sdr``), the ``sdr`` / ``sdri`` columns show it and ``sdr_definition`` says so."""
    columns = dict(metrics)
    for column, name in _headline(summary).items():
        if column in METRICS and name in metrics:
            columns[column] = metrics[name]
    return columns


def _subset_label(subset) -> str:
    """summary.json's ``subset`` (a partial run) as a short label; "" for a run over its whole split."""
    if not isinstance(subset, dict):
        return ""
    return str(subset.get("label") or f"{subset.get('n_items', '?')} of {subset.get('of', '?')} items")


def _item_set_from_per_item(folder: Path) -> str:
    """The item-set digest of a summary written before summaries recorded it, from its per_item.csv."""
    from lassbench.summary import item_set_digest

    path = folder / "per_item.csv"
    if not path.is_file():
        return ""
    return item_set_digest(read_manifest(path, ["item"])["item"])


def read_reported(path: str | Path) -> list[SystemResult]:
    """The hand-curated ``reported.csv``: every row needs a benchmark, a system, a citation and one metric."""
    path = Path(path)
    frame = read_manifest(path, REPORTED_REQUIRED, kind="reported-results table")
    # line numbers as a spreadsheet shows them: the header is line 1
    return [_reported_row(row, path, line) for line, row in enumerate(frame.to_dict("records"), start=2)]


def _reported_row(row: dict[str, str], path: Path, line: int) -> SystemResult:
    where = f"{path}:{line}"
    for column in REPORTED_REQUIRED:
        if not row.get(column, "").strip():
            raise LassbenchError(f"{where}: empty '{column}' (every reported figure needs one)")
    metrics = {}
    for metric in METRICS:
        text = row.get(metric, "").strip()
        if text:
            metrics[metric] = {"mean": _parse_float(text, f"{where}: column '{metric}'")}
    if not metrics:
        raise LassbenchError(f"{where}: no metric value (fill at least one of {', '.join(METRICS)})")
    return SystemResult(
        benchmark=_check_benchmark_name(row["benchmark"].strip(), where),
        system=row["system"].strip(),
        source="reported",
        model=row["system"].strip(),
        query_type=row.get("query_type", "").strip() or "unknown",
        params=_as_int(row.get("params", "").strip() or None, where),
        metrics=metrics,
        n_items=_as_int(row.get("n_items", "").strip() or None, where),
        protocol=row.get("protocol", "").strip(),
        aggregation=row.get("aggregation", "").strip(),
        sdr_definition=row.get("sdr_definition", "").strip(),
        si_sdr_definition=row.get("si_sdr_definition", "").strip(),
        citation=row["citation"].strip(),
        notes=row.get("notes", "").strip(),
    )


# ------------------------------------------------------------ tables


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
    rows = [s for s in systems if s.source == "reported" or s.variant == "default"]
    rows.sort(key=_main_sort_key)
    apart = {**incomparable(rows), **partial_notes(rows)}
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
    return _with_fad_columns(_with_clap_columns(pd.DataFrame(records, columns=MAIN_COLUMNS), rows), rows)


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
    path = result.folder / "per_item.csv" if result.folder is not None else None
    if path is None or not path.is_file():
        return None
    frame = read_manifest(path, [])
    if "item" not in frame.columns or column not in frame.columns:
        return None
    values = pd.to_numeric(frame[column], errors="coerce")
    return pd.Series(values.to_numpy(), index=frame["item"].astype(str)).dropna()


def _main_sort_key(result: SystemResult) -> tuple:
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


# ------------------------------------------------------------ writing


def write_leaderboards(
    results_dir: str | Path,
    out_dir: str | Path,
    *,
    reported: str | Path | None = None,
    markdown: str | Path | None = None,
    plots: bool = True,
) -> LeaderboardOutputs:
    """Write ``<out>/<benchmark>.csv`` (+ ``_queries.csv``), the markdown page and, when asked, PNG plots.

    ``reported``: path of reported.csv (None: reproduced rows only). ``markdown``: where to write the page
    (None: no page; the CLI's default is ``<out>/leaderboard.md``, so nothing lands outside ``out``). Plots need
    matplotlib; without it they are skipped with a note in ``notes``.
    """
    out = Path(out_dir)
    check_output_folder(out, "--out")  # refused before anything is read or written
    if markdown is not None:
        check_output_file(markdown, "--markdown")
    systems = collect_results(results_dir)
    if reported is not None:
        systems += read_reported(reported)
    boards = build_leaderboards(systems)
    tables = _write_tables(boards, out)
    notes: list[str] = []
    for name, board in boards.items():
        rows = [s for s in board.systems if s.source == "reported" or s.variant == "default"]
        apart = {**incomparable(rows), **partial_notes(rows)}
        notes += [f"{name}: {s.system}: {apart[id(s)]}" for s in rows if id(s) in apart]
        notes += [f"{name}: {r['model']}@{r['variant']}: {r['notes']}" for r in board.queries.to_dict("records")
                  if r["notes"] and r["variant"] != "default"]  # a main run's note is already in the main table's
    plot_paths = _write_plots(boards, out, notes) if plots else {}
    md_path = None
    if markdown is not None:
        md_path = write_text_atomic(markdown, render_markdown(boards, plots=plot_paths, page=Path(markdown)))
    return LeaderboardOutputs(tables, md_path, sorted(plot_paths.values()), notes)


def default_reported_path(out_dir: str | Path) -> Path | None:
    """``<out>/reported.csv`` when it exists: the curated table lives beside the tables it feeds."""
    candidate = Path(out_dir) / "reported.csv"
    return candidate if candidate.is_file() else None


def _write_tables(boards: dict[str, Leaderboard], out: Path) -> list[Path]:
    written = []
    for name, board in boards.items():
        written.append(write_manifest_csv(board.main, out / f"{name}.csv"))
        if len(board.queries):
            written.append(write_manifest_csv(board.queries, out / f"{name}_queries.csv"))
    return written


def _write_plots(boards: dict[str, Leaderboard], out: Path, notes: list[str]) -> dict[str, Path]:
    try:
        import matplotlib  # noqa: F401  (only probing: the plot extra is optional)
    except ImportError:
        notes.append("plots skipped: matplotlib is not installed (pip install 'lassbench[plot]')")
        return {}
    written = {}
    for name, board in boards.items():
        path = plot_leaderboard(board, out / f"{name}.png")
        if path is not None:
            written[name] = path
    return written


# ------------------------------------------------------------ markdown


def render_markdown(
    boards: dict[str, Leaderboard], *, plots: dict[str, Path] | None = None, page: Path | None = None
) -> str:
    """All tables as one markdown page; plot images are linked relative to ``page``."""
    lines = [
        "# Leaderboards",
        "",
        "Generated by `lassbench leaderboard`; do not edit by hand, rerun the command.",
        "`reproduced` rows were scored with lassbench; `reported` rows are figures copied from the cited",
        "source. The two are ranked separately and never averaged. Reference systems (mixture, oracle masks)",
        "have no rank. Intervals are bootstrap 95% CIs. A partial run (a subset of its split: `run --limit`,",
        "`evaluate --ids`) and a run over another item set than the table's other rows are listed unranked, with a",
        "note; the query-robustness ΔSDRi is taken over the items both runs scored.",
    ]
    for name, board in boards.items():
        lines += ["", f"## {name}", "", *_markdown_main(board.main)]
        lines += _markdown_clap(board.main)
        lines += _markdown_fad(board.main)
        lines += _markdown_definitions(board.main)
        if plots and name in plots:
            lines += ["", f"![{name}]({_relative(plots[name], page)})"]
        if len(board.queries):
            lines += ["", f"### {name}: query robustness", "", *_markdown_queries(board.queries)]
    return "\n".join(lines) + "\n"


def _markdown_main(frame: pd.DataFrame) -> list[str]:
    header = ["rank", "system", "source", "query", "params", "SDRi (95% CI)", "SI-SDRi", "SDR", "SI-SDR", "n",
              "aggregation", "citation"]
    rows = []
    for r in frame.to_dict("records"):
        rank = r["rank"] or ("ref." if r["reference"] == "yes" else "")
        rows.append([rank, r["system"], r["source"], r["query_type"], r["params"], _with_ci(r, "sdri"),
                     r["si_sdri"], r["sdr"], r["si_sdr"], r["n_items"], r["aggregation"], r["citation"]])
    return _markdown_table(header, rows)


def _markdown_clap(frame: pd.DataFrame) -> list[str]:
    """Reference-free CLAPScore of the rows that have it: one column per CLAP checkpoint (digest in the name)."""
    from lassbench.clapscore import is_clap_metric

    names = [c for c in frame.columns if is_clap_metric(c) and not c.endswith(("_ci95_low", "_ci95_high"))]
    records = [r for r in frame.to_dict("records") if any(r[n] for n in names)]
    if not records:
        return []
    rows = [[r["system"], *[_with_ci(r, n) for n in names], r["clap_checkpoint"]] for r in records]
    return ["", "CLAPScore (reference-free, [docs/evaluation.md](evaluation.md); one column per CLAP checkpoint):",
            "", *_markdown_table(["system", *names, "CLAP checkpoint"], rows)]


def _markdown_fad(frame: pd.DataFrame) -> list[str]:
    """FAD of the rows that have it, beside their SDRi: one column per embedding model (digest in the name)."""
    from lassbench.fad import is_fad_metric

    names = [c for c in frame.columns if is_fad_metric(c) and not c.endswith(("_ci95_low", "_ci95_high"))]
    records = [r for r in frame.to_dict("records") if any(r[n] for n in names)]
    if not records:
        return []
    rows = [[r["system"], _with_ci(r, "sdri"), *[_with_ci(r, n) for n in names], r["fad_model"]] for r in records]
    return ["", "FAD against the references (lower is better; one value per system over the whole item set, in "
            "the named model's embedding space). SDR compares waveforms sample by sample, so it ranks a generative "
            "separator, whose right-sounding output has another phase, below a masking one that leaks the "
            "interferer; FAD compares what the outputs sound like as a set. Read both "
            "([docs/metrics.md](metrics.md)):",
            "", *_markdown_table(["system", "SDRi (95% CI)", *names, "FAD embedding model"], rows)]


def _markdown_queries(frame: pd.DataFrame) -> list[str]:
    header = ["model", "variant", "query", "scored against", "SDRi (95% CI)", "ΔSDRi vs caption", "SI-SDRi",
              "False-sep. dB (95% CI)", "share < −20 dB", "n"]
    records = frame.to_dict("records")
    rows = [[r["model"], r["variant"], r["query_type"], r["scored_against"], _with_ci(r, "sdri"),
             r["sdri_delta_vs_caption"], r["si_sdri"], _with_ci(r, "false_separation_db"), r["below_-20db_share"],
             r["n_items"]] for r in records]
    notes = [f"- Note on {r['model']}@{r['variant']}: {r['notes']}" for r in records if r["notes"]]
    return [*_markdown_table(header, rows), *([""] + notes if notes else [])]


def _markdown_definitions(frame: pd.DataFrame) -> list[str]:
    lines = []
    for column, label in (("sdr_definition", "SDR"), ("si_sdr_definition", "SI-SDR")):
        for definition in sorted({d for d in frame[column] if d}):
            systems = ", ".join(sorted(set(frame.loc[frame[column] == definition, "system"])))
            lines.append(f"- {label} of {systems}: {definition}")
    notes = [(r["system"], r["notes"]) for r in frame.to_dict("records") if r["notes"]]
    lines += [f"- Note on {system}: {note}" for system, note in notes]
    return ["", *lines] if lines else []


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows)]


def _with_ci(record: dict, metric: str) -> str:
    low, high = record[f"{metric}_ci95_low"], record[f"{metric}_ci95_high"]
    return f"{record[metric]} [{low}, {high}]" if low and high else record[metric]


def _relative(target: Path, page: Path | None) -> str:
    if page is None:
        return target.as_posix()
    return Path(os.path.relpath(target.resolve(), page.resolve().parent)).as_posix()


# ------------------------------------------------------------ plots


def plot_leaderboard(board: Leaderboard, path: str | Path) -> Path | None:
    """PNG with the per-system SDRi distribution (box plot) and per-class mean SDRi bars, from per_item.csv of
    the reproduced main rows. Returns None when no system has per-item SDRi. Needs matplotlib."""
    from matplotlib.figure import Figure  # a Figure, not pyplot: no global figure state, no GUI backend

    per_system = _per_item_sdri(board)
    if not per_system:
        return None
    classes = _per_class_means(per_system)
    height = 3.0 + 0.3 * (len(classes.index) if classes is not None else 0)
    figure = Figure(figsize=(11, max(4.0, height)))
    box_axes, bar_axes = figure.subplots(1, 2)
    names = list(per_system)
    box_axes.boxplot([per_system[n]["sdri"].to_numpy() for n in names], showfliers=False)
    box_axes.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    box_axes.set_ylabel("SDRi per item (dB)")
    box_axes.set_title(f"{board.benchmark}: SDRi distribution")
    if classes is not None:
        _grouped_bars(bar_axes, classes)
    else:
        bar_axes.set_axis_off()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, metadata={"Software": None})
    return path


def _grouped_bars(axes, classes: pd.DataFrame) -> None:
    """Horizontal bars, one group per class, one bar per system (drawn here: pandas plotting uses pyplot)."""
    width = 0.8 / len(classes.columns)
    for k, system in enumerate(classes.columns):
        positions = [i + k * width for i in range(len(classes.index))]
        axes.barh(positions, classes[system].to_numpy(), height=width, label=system)
    axes.set_yticks([i + 0.4 - width / 2 for i in range(len(classes.index))], list(classes.index))
    axes.set_xlabel("mean SDRi (dB)")
    axes.set_title("per-class SDRi (first label)")
    axes.legend(fontsize="small")


def _per_item_sdri(board: Leaderboard) -> dict[str, pd.DataFrame]:
    """system -> per_item rows with numeric ``sdri`` (and ``labels`` if scored from a manifest), of the main rows
    over the table's usual item set only: the per-class bars compare matched items (partial and other-item-set
    rows are left out, as they are left unranked)."""
    found = {}
    main = [s for s in board.systems if s.source == "reproduced" and s.variant == "default"]
    apart = {**incomparable(main), **partial_notes(main)}
    for result in sorted(main, key=_main_sort_key):
        if result.folder is None or id(result) in apart:
            continue
        path = result.folder / "per_item.csv"
        if not path.is_file():
            continue
        frame = read_manifest(path, [])  # restores defused cells, as every reader of our CSVs must
        column = result.headline_sdri  # the benchmark's SDRi: CLAPSep's lists plot bss_sdri
        if column not in frame.columns:
            continue
        frame["sdri"] = pd.to_numeric(frame[column], errors="coerce")
        frame = frame[frame["sdri"].notna()]
        if len(frame):
            found[result.system] = frame
    return found


def _per_class_means(per_system: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """classes x systems table of mean SDRi; a class is the first label (as evaluate's class aggregation)."""
    columns = {}
    for system, frame in per_system.items():
        if system in REFERENCE_SYSTEMS or "labels" not in frame.columns:
            continue
        first = [first_label(v) for v in frame["labels"]]
        grouped = frame.assign(_class=first)
        grouped = grouped[grouped["_class"] != ""]
        if len(grouped):
            columns[system] = grouped.groupby("_class")["sdri"].mean()
    if not columns:
        return None
    return pd.DataFrame(columns).sort_index(ascending=False)



# ------------------------------------------------------------ helpers



def _check_benchmark_name(name: str, where: object) -> str:
    # The name becomes a file name in the output folder: a safe alphabet, and none of our own file names.
    if not _BENCHMARK_NAME.match(name) or name == "reported" or name.endswith("_queries"):
        raise LassbenchError(
            f"{where}: benchmark name {name!r} cannot name a leaderboard file "
            "(letters, digits and . _ @ + - only; not 'reported', not ending in '_queries')"
        )
    return name


def _as_int(value: object, where: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise LassbenchError(f"{where}: expected an integer, got {value!r}") from exc
    if not math.isfinite(number) or number != int(number):
        raise LassbenchError(f"{where}: expected an integer, got {value!r}")
    return int(number)


def _parse_float(text: str, where: str) -> float:
    try:
        number = float(text)
    except ValueError as exc:
        raise LassbenchError(f"{where}: expected a number, got {text!r}") from exc
    if not math.isfinite(number):
        raise LassbenchError(f"{where}: expected a finite number, got {text!r}")
    return number


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: float) -> str:
    # Fixed 3 decimals (the precision the published READMEs print); "-0.000" would make reruns differ by sign.
    if math.isnan(value):
        return ""
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
