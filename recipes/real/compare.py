"""Per-class means and paired differences of systems on the real-recordings test split, from `lassbench run`'s
per-item scores (the figures of docs/real-corpus.md, "On the real test split").

    python recipes/real/compare.py [--results leaderboards/results/real] [--metric si_sdri] lassnet tag-queried ...
    python recipes/real/compare.py --mixture mixture+test-unseen lassnet+test-unseen   # where does it fail?

The first system is compared with each of the others item by item: the mean difference, a 95 % percentile bootstrap
interval over items (10,000 resamples, seed 0) and how many items it wins. Classes are the first label of an item.
With ``--mixture RUN`` (the mixture's own run) the first system's items are also split by whether the target already
dominates the mixture (the mixture's SI-SDR above 0 dB), with the share of items whose SI-SDR improves at all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def per_item(results: Path, system: str, metric: str) -> tuple[pd.Series, pd.Series]:
    """A system's per-item ``metric`` and each item's class (its first label), indexed by item id."""
    frame = pd.read_csv(results / system / "per_item.csv").set_index("item")
    return frame[metric], frame["labels"].map(lambda value: (json.loads(value) or ["?"])[0])


def paired_difference(a: pd.Series, b: pd.Series, resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    if set(a.index) != set(b.index):
        raise SystemExit(f"error: the two systems were scored on different items ({len(a)} vs {len(b)})")
    diff = (a - b.loc[a.index]).to_numpy()
    if not np.isfinite(diff).all():
        raise SystemExit("error: a per-item score is missing or not finite")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(diff.mean()), "ci95_low": float(low), "ci95_high": float(high), "wins": int((diff > 0).sum()),
            "n": len(diff)}


def by_mixture_dominance(results: Path, system: str, mixture: str) -> pd.DataFrame:
    """``system``'s mean SDRi / SI-SDRi and share of improved items, for items whose target dominates the mixture or
    not (the mixture run's SI-SDR above 0 dB)."""
    scores = pd.read_csv(results / system / "per_item.csv").set_index("item")
    mixture_si_sdr = pd.read_csv(results / mixture / "per_item.csv").set_index("item")["si_sdr"]
    if set(scores.index) != set(mixture_si_sdr.index):
        raise SystemExit(f"error: {system} and {mixture} were scored on different items")
    dominates = (mixture_si_sdr.loc[scores.index] > 0).map({True: "target dominates", False: "target does not"})
    groups = pd.concat([scores.assign(group=dominates), scores.assign(group="all items")]).groupby("group")
    return pd.DataFrame({"items": groups.size(), "sdri": groups["sdri"].mean(), "si_sdri": groups["si_sdri"].mean(),
                         "improved": groups["si_sdri"].apply(lambda v: (v > 0).mean())})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("systems", nargs="+")
    parser.add_argument("--results", type=Path, default=Path("leaderboards/results/real"))
    parser.add_argument("--metric", default="si_sdri")
    parser.add_argument("--mixture", help="the mixture's run (e.g. mixture+test-unseen): split by target dominance")
    args = parser.parse_args()
    read = {system: per_item(args.results, system, args.metric) for system in args.systems}
    scores = {system: values for system, (values, _) in read.items()}
    first = args.systems[0]
    print(f"## {args.metric}: {first} minus each other system, item by item\n")
    print("| other | mean difference (dB) | 95 % bootstrap CI | items won | n |\n|---|---|---|---|---|")
    for other in args.systems[1:]:
        d = paired_difference(scores[first], scores[other])
        print(f"| {other} | {d['mean']:.2f} | [{d['ci95_low']:.2f}, {d['ci95_high']:.2f}] | {d['wins']} | {d['n']} |")
    classes = read[first][1]
    table = pd.DataFrame({system: scores[system].loc[classes.index] for system in args.systems})
    grouped = table.groupby(classes.to_numpy())
    summary = grouped.mean().round(1).assign(items=grouped.size()).sort_values("items", ascending=False)
    print(f"\n## mean {args.metric} per class\n")
    print("| class | " + " | ".join(args.systems) + " | items |\n|" + "---|" * (len(args.systems) + 2))
    for name, row in summary.iterrows():
        print(f"| {name} | " + " | ".join(f"{row[s]:.1f}" for s in args.systems) + f" | {int(row['items'])} |")
    if args.mixture:
        print(f"\n## {first} by whether the target dominates the mixture ({args.mixture} SI-SDR > 0 dB)\n")
        print("| items | n | SDRi | SI-SDRi | SI-SDR improved |\n|---|---|---|---|---|")
        for name, row in by_mixture_dominance(args.results, first, args.mixture).iterrows():
            print(f"| {name} | {int(row['items'])} | {row['sdri']:.2f} | {row['si_sdri']:.2f} | "
                  f"{row['improved']:.0%} |")


if __name__ == "__main__":
    main()
