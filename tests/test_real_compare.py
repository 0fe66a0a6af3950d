"""recipes/real/compare.py: the paired differences and per-class means quoted in docs/real-corpus.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from support.paths import REPO


def _results(root: Path, system: str, scores: list[float], classes: list[str]) -> None:
    (root / system).mkdir(parents=True)
    pd.DataFrame({"item": [f"test-{i}" for i in range(len(scores))], "si_sdri": scores, "sdri": scores,
                  "si_sdr": scores, "labels": [json.dumps([c]) for c in classes]}).to_csv(
        root / system / "per_item.csv", index=False)


def test_paired_differences_and_per_class_means(tmp_path):
    classes = ["Speech", "Speech", "Drum", "Drum"]
    _results(tmp_path, "a", [3.0, 5.0, 1.0, 7.0], classes)
    _results(tmp_path, "b", [1.0, 1.0, 1.0, 1.0], classes)
    out = subprocess.run([sys.executable, str(REPO / "recipes" / "real" / "compare.py"), "--results", str(tmp_path),
                          "a", "b"], capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("| b |")).split("|")
    assert row[2].strip() == "3.00"  # (2 + 4 + 0 + 6) / 4
    low, high = (float(v) for v in row[3].strip(" []").split(","))
    assert 0.0 <= low < 3.0 < high <= 6.0  # bootstrap means of {2, 4, 0, 6} lie in [0, 6]
    assert row[4].strip() == "3"  # the item at 1.0 vs 1.0 is not a win
    assert "| Speech | 4.0 | 1.0 | 2 |" in out and "| Drum | 4.0 | 1.0 | 2 |" in out


def test_systems_scored_on_different_items_are_refused_in_one_line(tmp_path):
    _results(tmp_path, "a", [1.0, 2.0], ["Speech", "Drum"])
    _results(tmp_path, "b", [1.0], ["Speech"])
    done = subprocess.run([sys.executable, str(REPO / "recipes" / "real" / "compare.py"), "--results", str(tmp_path),
                           "a", "b"], capture_output=True, text=True)
    assert done.returncode != 0 and done.stderr.strip().startswith("error: ") and "different items" in done.stderr


def test_items_are_split_by_whether_the_target_dominates_the_mixture(tmp_path):
    classes = ["Water"] * 4
    _results(tmp_path, "model", [-6.0, 2.0, 4.0, -1.0], classes)
    _results(tmp_path, "mix", [3.0, 1.0, -2.0, -4.0], classes)  # the target dominates items 0 and 1
    out = subprocess.run([sys.executable, str(REPO / "recipes" / "real" / "compare.py"), "--results", str(tmp_path),
                          "--mixture", "mix", "model"], capture_output=True, text=True, check=True).stdout
    assert "| target dominates | 2 | -2.00 | -2.00 | 50% |" in out  # (-6 + 2) / 2; one of two improves
    assert "| target does not | 2 | 1.50 | 1.50 | 50% |" in out
    assert "| all items | 4 | -0.25 | -0.25 | 50% |" in out
