"""Figures written by hand into README.md, docs/benchmarks.md and docs/real-corpus.md match the committed files they
come from.

The leaderboards and quality bars are generated; these tables are copied, so they are checked here: a retrained
checkpoint or a rerun recipe that is not carried into the prose fails the suite instead of leaving stale numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "leaderboards" / "results" / "synth"
LOGS = ROOT / "recipes" / "synth" / "logs"


def _markdown_table(text: str, header_start: str) -> list[list[str]]:
    """Rows (cells stripped) of the first table whose header line starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _mean(system: str, metric: str) -> float:
    summary = json.loads((RESULTS / system / "summary.json").read_text())
    return summary["metrics"][metric]["mean"]


@pytest.mark.skipif(not RESULTS.is_dir(), reason="no committed synth results")
def test_readme_results_table_matches_the_committed_summaries():
    rows = _markdown_table((ROOT / "README.md").read_text(), "| system | query | SDRi")
    assert len(rows) >= 5
    for system, _query, sdri, si_sdri in rows:
        name = re.sub(r"\s*\(reference\)$", "", system)
        assert float(sdri) == pytest.approx(_mean(name, "sdri"), abs=0.005), name
        assert float(si_sdri) == pytest.approx(_mean(name, "si_sdri"), abs=0.005), name


@pytest.mark.skipif(not (RESULTS.parent / "real").is_dir(), reason="no committed real-recordings results")
def test_readme_real_recordings_table_matches_the_committed_summaries():
    rows = _markdown_table((ROOT / "README.md").read_text(), "| system on real recordings | query | SDRi")
    assert len(rows) >= 4
    for system, _query, sdri, si_sdri in rows:
        name = re.sub(r"\s*\(reference\)$", "", system)
        summary = json.loads((RESULTS.parent / "real" / name / "summary.json").read_text())["metrics"]
        assert float(sdri) == pytest.approx(summary["sdri"]["mean"], abs=0.005), name
        assert float(si_sdri) == pytest.approx(summary["si_sdri"]["mean"], abs=0.005), name


@pytest.mark.parametrize("page, logs", [("benchmarks.md", LOGS),
                                        ("real-corpus.md", ROOT / "recipes" / "real" / "logs")])
def test_training_curves_match_the_committed_logs(page, logs):
    if not logs.is_dir():
        pytest.skip("no committed training logs")
    rows = _markdown_table((ROOT / "docs" / page).read_text(), "| step | lassnet | tag-queried")
    models = ["lassnet", "tag-queried", "class-conditioned"]
    curves = {m: pd.read_csv(logs / f"{m}.csv").dropna(subset=["val_sdri"]).set_index("step")["val_sdri"]
              for m in models}
    assert [int(row[0]) for row in rows] == list(curves["lassnet"].index)
    for step, *values in rows:
        for model, value in zip(models, values, strict=True):
            assert float(value) == pytest.approx(curves[model][int(step)], abs=0.005), (model, step)
