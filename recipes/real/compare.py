"""Per-class means and paired differences of systems on the real-recordings test split, from `lassbench run`'s
per-item scores (the figures of docs/real-corpus.md, "On the real test split").

    python recipes/real/compare.py [--results leaderboards/results/real] [--metric si_sdri] lassnet tag-queried ...

The first system is compared with each of the others item by item: the mean difference, a 95 % percentile bootstrap
interval over items (10,000 resamples, seed 0) and how many items it wins. Classes are the first label of an item.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("systems", nargs="+")
    parser.add_argument("--results", type=Path, default=Path("leaderboards/results/real"))
    parser.add_argument("--metric", default="si_sdri")
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


if __name__ == "__main__":
    main()
