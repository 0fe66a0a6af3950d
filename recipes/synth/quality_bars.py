"""Check the model-zoo quality bars on the synth test set (and on the real-recordings test set when its results
exist) from the results `lassbench run` wrote.

    python recipes/synth/quality_bars.py [--results leaderboards/results] [--benchmark synth] > docs/quality-bars.md

Reads ``<results>/<benchmark>/<system>/summary.json`` (and per_item.csv for the attribute-contrast subset) and
prints a markdown page: each bar, the measured numbers and whether the bar is met. Nothing here is tuned on the test
set: the numbers are whatever the shipped checkpoints score.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

MODELS = ("lassnet", "tag-queried", "class-conditioned")


def mean_sdri(folder: Path, condition: str | None = None, metric: str = "sdri") -> float | None:
    """Mean SDRi (or ``metric``) of a run, over all items or over one ``condition`` subset (from per_item.csv)."""
    if condition is None:
        path = folder / "summary.json"
        return json.loads(path.read_text())["metrics"][metric]["mean"] if path.is_file() else None
    path = folder / "per_item.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    subset = frame[frame["condition"] == condition] if "condition" in frame else frame.iloc[0:0]
    return float(subset[metric].mean()) if len(subset) else None


def bars(root: Path) -> list[tuple[str, str, bool | None]]:
    def get(system: str, condition: str | None = None) -> float | None:
        return mean_sdri(root / system, condition)

    lassnet, tag, cls = get("lassnet"), get("tag-queried"), get("class-conditioned")
    wrong, irm, mixture = get("lassnet@wrong-query"), get("oracle-irm"), get("mixture")
    c_lass, c_tag, c_cls = (get(s, "attribute_contrast") for s in ("lassnet", "tag-queried", "class-conditioned"))
    rows = []

    def add(text: str, value: str, ok: bool | None) -> None:
        rows.append((text, value, ok))

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f} dB"

    add("LASS-Net SDRi >= 8 dB", fmt(lassnet), None if lassnet is None else lassnet >= 8)
    if None not in (c_lass, c_tag, c_cls):
        margin = c_lass - max(c_tag, c_cls)
        add("LASS-Net beats tag-queried and class-conditioned on attribute-contrast items by >= 3 dB SDRi",
            f"{fmt(c_lass)} vs {fmt(c_tag)} / {fmt(c_cls)} (margin {margin:+.2f} dB)", margin >= 3)
    else:
        add("LASS-Net beats the baselines on attribute-contrast items by >= 3 dB SDRi", "n/a", None)
    drop = None if None in (lassnet, wrong) else lassnet - wrong
    add("wrong-query control costs LASS-Net >= 6 dB SDRi",
        "n/a" if drop is None else f"{fmt(lassnet)} -> {fmt(wrong)} (drop {drop:.2f} dB)",
        None if drop is None else drop >= 6)
    others = [v for v in (lassnet, tag, cls) if v is not None]
    add("oracle-irm above all", f"{fmt(irm)} vs best model {fmt(max(others) if others else None)}",
        None if irm is None or not others else irm > max(others))
    add("mixture exactly 0 dB SDRi", fmt(mixture), None if mixture is None else mixture == 0.0)
    return rows


def fine_tuning_steps(logs: Path) -> dict[str, int]:
    """Each model's last logged step in the real-recordings fine-tuning logs (recipes/real/logs/MODEL.csv)."""
    steps = {}
    for model in MODELS:
        log = logs / f"{model}.csv"
        if log.is_file():
            steps[model] = int(pd.read_csv(log, usecols=["step"])["step"].max())
    return steps


def budget_note(steps: dict[str, int]) -> str:
    """'' when the three had the same fine-tuning; else a warning that a comparison between them is uneven."""
    if len(set(steps.values())) <= 1:
        return ""
    return " (unequal fine-tuning: " + ", ".join(f"{m} {n} steps" for m, n in steps.items()) + ")"


def real_bars(root: Path, note: str = "") -> list[tuple[str, str, bool | None]]:
    """The bars on the real-recordings test split (SI-SDRi: SDRi alone rewards a louder, distorted estimate)."""
    def get(system: str, metric: str = "si_sdri") -> float | None:
        return mean_sdri(root / system, metric=metric)

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f} dB"

    lassnet, tag, cls = get("lassnet"), get("tag-queried"), get("class-conditioned")
    rows = [("LASS-Net SI-SDRi > 3 dB", fmt(lassnet), None if lassnet is None else lassnet > 3)]
    best = None if None in (tag, cls) else max(tag, cls)
    rows.append(("LASS-Net SI-SDRi above tag-queried and class-conditioned",
                 f"{fmt(lassnet)} vs {fmt(tag)} / {fmt(cls)}{note}",
                 None if lassnet is None or best is None else lassnet > best))
    drops = {m: None if None in (get("lassnet", m), get("lassnet@wrong-query", m))
             else get("lassnet", m) - get("lassnet@wrong-query", m) for m in ("sdri", "si_sdri")}
    rows.append(("wrong-query control costs LASS-Net >= 3 dB SI-SDRi (its SDRi drop shown too)",
                 " / ".join(f"{name} drop {fmt(drops[m])}" for m, name in (("si_sdri", "SI-SDRi"), ("sdri", "SDRi"))),
                 None if drops["si_sdri"] is None else drops["si_sdri"] >= 3))
    irm, mixture = get("oracle-irm", "sdri"), get("mixture", "sdri")
    others = [v for v in (get(s, "sdri") for s in ("lassnet", "tag-queried", "class-conditioned")) if v is not None]
    rows.append(("oracle-irm above all (SDRi)", f"{fmt(irm)} vs best model {fmt(max(others) if others else None)}",
                 None if irm is None or not others else irm > max(others)))
    rows.append(("mixture exactly 0 dB SDRi", fmt(mixture), None if mixture is None else mixture == 0.0))
    return rows


def unseen_bars(root: Path, suffix: str = "+test-unseen", note: str = "") -> list[tuple[str, str, bool | None]]:
    """The bars on the unseen-class split: classes no training split has (LASS-Net must beat the mixture in SI-SDRi,
    reach 5 dB SDRi, beat tag-queried, and lose >= 2 dB with a wrong caption)."""
    def get(system: str, metric: str) -> float | None:
        return mean_sdri(root / f"{system}{suffix}", metric=metric)

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f} dB"

    def check(value: float | None, ok) -> bool | None:
        return None if value is None else ok(value)

    sdri, si_sdri = get("lassnet", "sdri"), get("lassnet", "si_sdri")
    tag = {m: get("tag-queried", m) for m in ("sdri", "si_sdri")}
    wrong = {m: get("lassnet@wrong-query", m) for m in ("sdri", "si_sdri")}
    drop = {m: None if None in (get("lassnet", m), wrong[m]) else get("lassnet", m) - wrong[m]
            for m in ("sdri", "si_sdri")}
    above = None if None in (sdri, si_sdri, tag["sdri"], tag["si_sdri"]) else (
        sdri > tag["sdri"] and si_sdri > tag["si_sdri"])
    return [
        ("LASS-Net SI-SDRi > 0 dB", fmt(si_sdri), check(si_sdri, lambda v: v > 0)),
        ("LASS-Net SDRi >= 5 dB", fmt(sdri), check(sdri, lambda v: v >= 5)),
        ("LASS-Net above tag-queried (SDRi and SI-SDRi)",
         f"{fmt(sdri)} / {fmt(si_sdri)} vs {fmt(tag['sdri'])} / {fmt(tag['si_sdri'])}{note}", above),
        ("a wrong caption costs LASS-Net >= 2 dB (SDRi and SI-SDRi)",
         f"SDRi drop {fmt(drop['sdri'])}, SI-SDRi drop {fmt(drop['si_sdri'])}",
         None if None in drop.values() else min(drop.values()) >= 2),
    ]


def _table(rows: list[tuple[str, str, bool | None]]) -> None:
    print("| bar | measured | met |")
    print("|---|---|---|")
    for text, value, ok in rows:
        print(f"| {text} | {value} | {'n/a' if ok is None else ('yes' if ok else '**no**')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="leaderboards/results")
    parser.add_argument("--benchmark", default="synth")
    parser.add_argument("--logs", default="recipes/real/logs", help="the real-recordings fine-tuning logs")
    args = parser.parse_args()
    root = Path(args.results) / args.benchmark
    print(f"# Quality bars on the {args.benchmark} test set\n")
    print("Generated by `python recipes/synth/quality_bars.py` from the results of `recipes/synth/run.sh` "
          "(stage 3); the SDRi of each system is the mean over the test items.\n")
    _table(bars(root))
    real = Path(args.results) / "real"
    if real.is_dir():
        print("\n## On the real-recordings test set\n")
        summary = real / "lassnet" / "summary.json"
        n = json.loads(summary.read_text())["n_items"] if summary.is_file() else "the"
        print(f"The real-recordings bars, from the results of `recipes/real/run.sh` (stage 3) on the {n} test "
              "mixtures of the real-recordings benchmark's seen-class test split ([real-corpus.md](real-corpus.md)); "
              "means over the test items.\n")
        note = budget_note(fine_tuning_steps(Path(args.logs)))
        _table(real_bars(real, note))
        unseen = real / "lassnet+test-unseen" / "summary.json"
        if unseen.is_file():
            n = json.loads(unseen.read_text())["n_items"]
            print("\n## On the real-recordings unseen-class test set\n")
            print(f"The {n} mixtures of the `test-unseen` split, whose classes no training split has "
                  "([real-corpus.md](real-corpus.md)); means over the items.\n")
            _table(unseen_bars(real, note=note))


if __name__ == "__main__":
    main()
