"""Reading scored results: result folders and the hand-curated reported rows, each as one :class:`SystemResult`.

Inputs
    ``results/<benchmark>/<system_dir>/summary.json`` (from ``lassbench evaluate`` / ``lassbench run``),
    with ``run.json`` beside it when ``lassbench run`` made the estimates, and ``per_item.csv`` (item-matched
    query deltas and plots). A partial run (``subset`` in summary.json) keeps its label here; the tables list it
    unranked.
    ``reported.csv``: hand-curated figures copied from papers / READMEs, one citation per row.

A benchmark name becomes a file name in the output folder, so it is checked here, where it is read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.jsonio import read_json_object
from lassbench.manifests import read_manifest
from lassbench.result_folders import DEFAULT_SPLIT

METRICS = ("sdr", "sdri", "si_sdr", "si_sdri")
REFERENCE_SYSTEMS = frozenset({"mixture", "oracle-irm", "oracle-ibm"})

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
    judge: dict = field(default_factory=dict)  # summary.json "judge": the SAM Audio judge's folder, SHA-256 (judge)

    @property
    def is_reference(self) -> bool:
        named = self.system in REFERENCE_SYSTEMS or self.model in REFERENCE_SYSTEMS
        return named or self.query_type == "none"

    def value(self, metric: str, stat: str = "mean") -> float:
        number = self.metrics.get(metric, {}).get(stat)
        return float(number) if _is_number(number) else math.nan


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
        judge=summary["judge"] if isinstance(summary.get("judge"), dict) else {},
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


def read_per_item(result: SystemResult) -> pd.DataFrame | None:
    """A reproduced result's ``per_item.csv``, every cell a string (defused cells restored, as every reader of our
    CSVs must); None for a reported row or a folder without one."""
    path = result.folder / "per_item.csv" if result.folder is not None else None
    if path is None or not path.is_file():
        return None
    return read_manifest(path, [])


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


def default_reported_path(out_dir: str | Path) -> Path | None:
    """``<out>/reported.csv`` when it exists: the curated table lives beside the tables it feeds."""
    candidate = Path(out_dir) / "reported.csv"
    return candidate if candidate.is_file() else None


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


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
