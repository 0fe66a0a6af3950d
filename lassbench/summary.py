"""summary.json: the headline statistics of a set of per-item scores, the protocol rules that choose them, and the
files a result is written to. ``evaluate`` and ``run`` both build their summaries here.

``OUT/per_item.csv`` (``item`` + one column per metric [+ ``snr_db, labels, condition, query``]) and
``OUT/summary.json``::

    {"n_items", "item_set_sha1", "aggregate", ["class_column"], "si_sdr_convention",
     "metrics": {name: {"mean", "median", "std", "ci95_low", "ci95_high", "n", ...}},
     "definitions": {name: text}, "breakdowns": {"snr_bucket": {}, "label": {}, "condition": {}},
     "benchmark", "protocol", "lassbench_version"}
    (+ "aggregate_from", "headline", "clap", "judge", "fad", "not_scored", "exact", "split", "subset" for a
    benchmark)

``metrics[name]["mean"]`` is the headline number under ``aggregate`` (see :func:`summarize`); ``ci95_*`` is its
bootstrap interval; ``median``/``std`` are over items. A built benchmark's protocol chooses the SI-SDR convention,
the aggregate and which SDR is its headline (``headline``: ``{"sdr": "bss_sdr", "sdri": "bss_sdri"}`` for CLAPSep's
BSS-Eval figures); its ``dataset.json`` records them (:func:`protocol_rules`) and summary.json repeats them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench import __version__
from lassbench.audio import write_text_atomic
from lassbench.errors import LassbenchError
from lassbench.fad import add_fad, is_fad_metric
from lassbench.jsonio import jsonable
from lassbench.manifests import decode_list, first_label, write_manifest_csv
from lassbench.metrics import DEFAULT_METRICS, METRICS, SI_SDR_CONVENTIONS, definition

AGGREGATES = ("mean", "class-median-mean", "class-mean")
HEADLINE_SDRS = ("sdr", "bss_sdr")
SNR_BUCKET_DB = 5.0
_MAX_LISTED = 5


# --- the protocol's rules --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolRules:
    """How a benchmark's published evaluator scores: SI-SDR convention and headline aggregate, and their source."""

    convention: str
    aggregate: str
    source: str  # where the aggregate came from: "dataset.json", "default", or "option" (the user's --aggregate)
    sdr: str = "sdr"  # the SDR of the headline sdr / sdri columns: "sdr" (energy ratio) or "bss_sdr" (BSS-Eval)

    @property
    def metrics(self) -> tuple[str, ...]:
        """What is scored by default: the four headline columns, and BSS-Eval's pair where it is the headline."""
        return DEFAULT_METRICS + (("bss_sdr", "bss_sdri") if self.sdr == "bss_sdr" else ())

    @property
    def headline(self) -> dict[str, str]:
        """summary.json ``headline``: the metric each leaderboard column shows (``sdr`` -> ``bss_sdr`` for CLAPSep)."""
        return {"sdr": self.sdr, "sdri": self.sdr + "i"}

    def overridden(self, aggregate: str | None, convention: str | None) -> ProtocolRules:
        """These rules with the user's ``--aggregate`` / ``--si-sdr`` where given (each checked)."""
        rules = self if aggregate is None else replace(self, aggregate=aggregate or self.aggregate, source="option")
        return replace(rules, convention=check_convention(convention or rules.convention))


def protocol_rules(dataset: dict) -> ProtocolRules:
    """The scoring rules of a built benchmark, from its ``dataset.json`` content.

    ``parameters.si_sdr_convention`` where the build recorded it, else the convention the protocol declares
    (:func:`declared_si_sdr_convention`). Aggregate: ``parameters.aggregation`` where the protocol recorded one
    (AudioSep's AudioSet list: ``class-median-mean``, MUSIC: ``class-mean``), else ``mean``.
    """
    parameters = dataset.get("parameters") if isinstance(dataset.get("parameters"), dict) else {}
    aggregate = parameters.get("aggregation")
    if aggregate is not None and aggregate not in AGGREGATES:
        raise LassbenchError(f"dataset.json: unknown aggregation {aggregate!r}; known: {', '.join(AGGREGATES)}")
    # benchmarks built before dataset.json recorded it: CLAPSep's evaluator always reported BSS-Eval SDR
    sdr = parameters.get("headline_sdr") or ("bss_sdr" if dataset.get("protocol") == "clapsep" else "sdr")
    if sdr not in HEADLINE_SDRS:
        raise LassbenchError(f"dataset.json: unknown headline_sdr {sdr!r}; known: {', '.join(HEADLINE_SDRS)}")
    convention = parameters.get("si_sdr_convention") or declared_si_sdr_convention(dataset.get("protocol"))
    if convention not in SI_SDR_CONVENTIONS:
        raise LassbenchError(f"dataset.json: unknown si_sdr_convention {convention!r}; known: "
                             f"{', '.join(SI_SDR_CONVENTIONS)}")
    return ProtocolRules(convention, aggregate or "mean", "dataset.json" if aggregate else "default", sdr)


def declared_si_sdr_convention(protocol: str | None) -> str:
    """The SI-SDR convention protocol ``protocol`` declares (its module's ``SI_SDR_CONVENTION``): what a benchmark
    built before dataset.json recorded it is scored with. ``zero-mean`` for no protocol or one lassbench lacks."""
    from lassbench.protocols import PROTOCOLS, get_protocol

    return get_protocol(protocol).SI_SDR_CONVENTION if protocol in PROTOCOLS else "zero-mean"


def headline_of(rules: ProtocolRules, scored: Iterable[str]) -> dict[str, str]:
    """The protocol's headline mapping, limited to the metrics actually scored (``--metrics`` may leave some out)."""
    scored = set(scored)
    return {column: name for column, name in rules.headline.items() if name in scored}


def check_convention(convention: str) -> str:
    if convention not in SI_SDR_CONVENTIONS:
        raise LassbenchError(f"unknown SI-SDR convention {convention!r}; use one of {', '.join(SI_SDR_CONVENTIONS)}")
    return convention


# --- statistics ------------------------------------------------------------------------------------------------


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
    check_convention(convention)
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


# --- a benchmark's summary -------------------------------------------------------------------------------------


def benchmark_summary(per_item: pd.DataFrame, metrics: Sequence[str], rules: ProtocolRules, dataset: dict, *,
                      benchmark: str | None, with_reference: Collection[str] | None = None,
                      reference_free: Sequence[str] = (), definitions: Mapping[str, str] | None = None,
                      clap: dict | None = None, fad: tuple | None = None, not_scored: dict | None = None,
                      split: str | None = None, subset: dict | None = None, judge: dict | None = None) -> dict:
    """summary.json of a result on a built benchmark (``dataset``: its dataset.json), under the protocol's ``rules``.

    ``metrics`` are summarised over the items ``with_reference`` (their ids; None: every item), the
    ``reference_free`` ones (CLAPScore, the judge's) over every item, and ``n_items`` counts every item.
    ``definitions`` adds the texts of metrics lassbench.metrics does not define; ``clap`` is the CLAP scorer's info,
    ``judge`` the SAM Audio judge's (:attr:`lassbench.judge.JudgeScorer.info`), ``fad`` a ``(FadScorer, statistics)``
    pair; ``not_scored``, ``split`` and ``subset`` are recorded as given.
    """
    scored = per_item if with_reference is None else per_item[per_item["item"].isin(set(with_reference))]
    summary = summarize(scored, metrics, aggregate=rules.aggregate, convention=rules.convention)
    summary["aggregate_from"] = rules.source
    summary["headline"] = headline_of(rules, metrics)
    summary["n_items"] = len(per_item)
    if reference_free:
        summary["metrics"].update(summarize(per_item, reference_free, aggregate=rules.aggregate)["metrics"])
    summary["definitions"].update(definitions or {})
    if clap is not None:
        summary["definitions"].update(clap["definitions"])
        summary["clap"] = clap
    if judge is not None:
        summary["definitions"].update(judge["definitions"])
        summary["judge"] = judge
    if fad is not None:
        add_fad(summary, *fad)
    if not_scored is not None:
        summary["not_scored"] = not_scored
    summary["breakdowns"] = breakdowns(per_item, [*metrics, *reference_free])
    summary.update(benchmark=benchmark, protocol=dataset.get("protocol"))
    summary["exact"] = dataset.get("exact")  # false: the benchmark approximates its protocol
    if split is not None:
        summary["split"] = split
    if subset is not None:
        summary["subset"] = subset
    return summary


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
