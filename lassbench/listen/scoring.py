"""``lassbench listen score``: post-screening, per-condition statistics and metric-listener correlations.

Post-screening follows ITU-R BS.1534-3 (10/2015), §4.1.2: an assessor is excluded if they rate the hidden reference
lower than 90 for more than 15% of the test items, or the mid-range (7 kHz) anchor higher than 90 for more than 15%
of the items — an item where more than 25% of the assessors rate the mid-range anchor above 90 does not count toward
that second rule (the anchor did not degrade it). Per condition the Recommendation's §10.3 asks for the median and
inter-quartile range, plus means with 95% confidence intervals (here Student's t over all retained ratings).

Correlation: for each (trial, system under test), the mean retained rating against the system's objective score on
that item (``sdri``, ``si_sdri``, ``clap_score@..``/``clap_score_i@..`` where the run had them, from the key),
Pearson's r and Spearman's rho with their p-values and n pairs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from lassbench.audio import write_text_atomic
from lassbench.errors import LassbenchError
from lassbench.jsonio import jsonable
from lassbench.listen.key import check_outside_folder, read_key
from lassbench.listen.ratings import read_ratings
from lassbench.listen.stimuli import HIDDEN_REFERENCE, MID_ANCHOR
from lassbench.manifests import write_manifest_csv

REFERENCE_FLOOR = 90.0  # §4.1.2: hidden reference rated below this ...
MID_ANCHOR_CEILING = 90.0  # ... or the mid-range anchor above this ...
MAX_SHARE = 0.15  # ... for more than this share of the items excludes the assessor
ANCHOR_ITEM_SHARE = 0.25  # an item whose mid anchor more of the assessors rate > 90 is not held against anyone


def post_screen(rows: pd.DataFrame) -> dict[str, dict]:
    """assessor -> {"excluded", "reasons", "items", "reference_low", "anchor_high"} (BS.1534-3 §4.1.2)."""
    reference = rows[rows["rating_stimulus"] == HIDDEN_REFERENCE]
    anchor = rows[rows["rating_stimulus"] == MID_ANCHOR]
    high = anchor.assign(high=anchor["rating_score"] > MID_ANCHOR_CEILING)
    share_high = high.groupby("trial_id")["high"].mean()
    exempt = set(share_high[share_high > ANCHOR_ITEM_SHARE].index)
    out = {}
    for assessor in sorted(set(rows["assessor"])):
        mine = reference[reference["assessor"] == assessor]
        low = int((mine["rating_score"] < REFERENCE_FLOOR).sum())
        counted = high[(high["assessor"] == assessor) & ~high["trial_id"].isin(exempt)]
        reasons = []
        if len(mine) and low / len(mine) > MAX_SHARE:
            reasons.append(f"hidden reference below {REFERENCE_FLOOR:g} in {low} of {len(mine)} items")
        if len(counted) and counted["high"].sum() / len(counted) > MAX_SHARE:
            reasons.append(f"mid-range anchor above {MID_ANCHOR_CEILING:g} in {int(counted['high'].sum())} of "
                           f"{len(counted)} items")
        out[assessor] = {"excluded": bool(reasons), "reasons": reasons, "items": int(len(mine)),
                         "reference_low": low, "anchor_high": int(counted["high"].sum())}
    return out


def condition_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Per condition: mean, 95% CI (Student's t), median, quartiles, n ratings, n assessors; by mean, best first."""
    records = []
    for condition, group in rows.groupby("rating_stimulus"):
        values = group["rating_score"].to_numpy(dtype=float)
        mean, n = float(values.mean()), values.size
        half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        records.append({"condition": condition, "mean": mean, "ci95_low": mean - half, "ci95_high": mean + half,
                        "median": float(median), "q1": float(q1), "q3": float(q3), "n": int(n),
                        "assessors": int(group["assessor"].nunique())})
    frame = pd.DataFrame(records, columns=["condition", "mean", "ci95_low", "ci95_high", "median", "q1", "q3", "n",
                                           "assessors"])
    return frame.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)


def correlations(rows: pd.DataFrame, test: dict) -> list[dict]:
    """Pearson and Spearman of listener means against each objective metric, over (trial, system) pairs."""
    means = rows.groupby(["trial_id", "rating_stimulus"])["rating_score"].mean()
    pairs: dict[str, list[tuple[float, float]]] = {}
    for trial in test["trials"]:
        for system, metrics in trial.get("metrics", {}).items():
            key = (trial["trial_id"], system)
            if key not in means.index:
                continue
            for metric, value in metrics.items():
                pairs.setdefault(metric, []).append((float(value), float(means[key])))
    out = []
    for metric, values in sorted(pairs.items()):
        x, y = np.array(values).T
        record = {"metric": metric, "n": len(values), "pearson_r": math.nan, "pearson_p": math.nan,
                  "spearman_rho": math.nan, "spearman_p": math.nan}
        if len(values) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
            record.update(pearson_r=float(pearson.statistic), pearson_p=float(pearson.pvalue),
                          spearman_rho=float(spearman.statistic), spearman_p=float(spearman.pvalue))
        out.append(record)
    return out


def score_ratings(paths: list[str | Path], key: str | Path, out: str | Path | None = None) -> dict:
    """Read, reunite with the key (the file, or the listeners' folder it sits beside), screen, summarise; write
    ``OUT/listening_summary.json`` and ``OUT/conditions.csv`` (unless None)."""
    test = read_key(key)
    if out is not None and test.get("folder"):
        check_outside_folder(Path(out), Path(test["folder"]), "--out")
    rows, duplicates = read_ratings(paths, test)
    if rows.empty:
        raise LassbenchError("the ratings file(s) hold no ratings (only a header?): export them from the test page "
                             "after rating")
    screening = post_screen(rows)
    kept = rows[~rows["assessor"].map(lambda a: screening[a]["excluded"])]
    if kept.empty:
        raise LassbenchError(f"post-screening excluded all {len(screening)} assessor(s): "
                             + "; ".join(f"{a}: {', '.join(s['reasons'])}" for a, s in screening.items()))
    table = condition_stats(kept)
    result = {
        "test_id": test["test_id"],
        "rule": "ITU-R BS.1534-3 §4.1.2 post-screening; means with Student-t 95% CIs over retained ratings",
        "assessors": len(screening),
        "excluded": sorted(a for a, s in screening.items() if s["excluded"]),
        "screening": screening,
        "duplicate_ratings_dropped": duplicates,
        "systems": test.get("systems", []),
        "conditions": table.to_dict(orient="records"),
        "correlations": correlations(kept, test),
    }
    if out is not None:
        out = Path(out)
        write_manifest_csv(table, out / "conditions.csv")
        write_text_atomic(out / "listening_summary.json", json.dumps(jsonable(result), indent=2) + "\n")
    return result


def format_report(result: dict) -> str:
    systems = set(result.get("systems", []))
    lines = [f"assessors: {result['assessors']} ({len(result['excluded'])} excluded by BS.1534-3 post-screening"
             + (f": {', '.join(result['excluded'])}" if result["excluded"] else "") + ")"]
    for assessor in result["excluded"]:
        lines.append(f"  {assessor}: {'; '.join(result['screening'][assessor]['reasons'])}")
    lines.append(f"{'condition':<22} {'mean':>6}  {'95% CI':>15}  {'median':>6}  {'IQR':>11}  {'n':>4}")
    for c in result["conditions"]:
        name = c["condition"] + ("" if c["condition"] in systems else " *")
        lines.append(f"{name:<22} {c['mean']:6.1f}  [{c['ci95_low']:5.1f}, {c['ci95_high']:5.1f}]  "
                     f"{c['median']:6.1f}  [{c['q1']:4.1f}, {c['q3']:4.1f}]  {c['n']:4d}")
    lines.append("* reference, anchor or mixture (not a system under test)")
    if result["correlations"]:
        lines.append("correlation of listener means with objective scores (systems under test, per item):")
        for c in result["correlations"]:
            lines.append(f"  {c['metric']:<24} Pearson r {_fmt(c['pearson_r'])}  Spearman rho "
                         f"{_fmt(c['spearman_rho'])}  n={c['n']}")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "  nan" if value is None or math.isnan(value) else f"{value:+.3f}"

