"""Figures in README.md and docs/ match the committed files or the commands they come from, and the pages speak to
users (no issue numbers, cache paths through $LASSBENCH_CACHE).

The leaderboards and quality bars are generated; these tables are copied, so they are checked here: a retrained
checkpoint or a rerun recipe that is not carried into the prose fails the suite instead of leaving stale numbers.
A paragraph of figures that commands print sits between ``<!-- figures: NAME.json -->`` markers: the script in
docs/figures/ that runs the commands writes NAME.json and the paragraph, the fast tests check that the page says
what the JSON holds, and a slow test reruns the commands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from support.command_helpers import load_script
from support.paths import REPO

RESULTS = REPO / "leaderboards" / "results" / "synth"
LOGS = REPO / "recipes" / "synth" / "logs"


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
    rows = _markdown_table((REPO / "README.md").read_text(), "| system | query | SDRi")
    assert len(rows) >= 5
    for system, _query, sdri, si_sdri in rows:
        name = re.sub(r"\s*\(reference\)$", "", system)
        assert float(sdri) == pytest.approx(_mean(name, "sdri"), abs=0.005), name
        assert float(si_sdri) == pytest.approx(_mean(name, "si_sdri"), abs=0.005), name


@pytest.mark.skipif(not (RESULTS.parent / "real").is_dir(), reason="no committed real-recordings results")
def test_readme_real_recordings_table_matches_the_committed_summaries():
    rows = _markdown_table((REPO / "README.md").read_text(), "| system on real recordings | query | SDRi")
    assert len(rows) >= 4
    for system, _query, sdri, si_sdri in rows:
        name = re.sub(r"\s*\(reference\)$", "", system)
        summary = json.loads((RESULTS.parent / "real" / name / "summary.json").read_text())["metrics"]
        assert float(sdri) == pytest.approx(summary["sdri"]["mean"], abs=0.005), name
        assert float(si_sdri) == pytest.approx(summary["si_sdri"]["mean"], abs=0.005), name


CURVE_MODELS = ("lassnet", "tag-queried", "class-conditioned")


def _curve_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(model columns, rows) of every table headed ``| step | MODEL | ...`` with only model columns."""
    lines = text.splitlines()
    tables = []
    for index, line in enumerate(lines):
        columns = [cell.strip() for cell in line.strip().strip("|").split("|")][1:]
        if line.startswith("| step |") and set(columns) <= set(CURVE_MODELS):
            tables.append((columns, _markdown_table("\n".join(lines[index:]), "| step |")))
    return tables


@pytest.mark.parametrize("page, logs", [("performance.md", LOGS),
                                        ("real-corpus.md", REPO / "recipes" / "real" / "logs")])
def test_training_curves_match_the_committed_logs(page, logs):
    if not logs.is_dir():
        pytest.skip("no committed training logs")
    tables = _curve_tables((REPO / "docs" / page).read_text())
    assert sorted(model for columns, _rows in tables for model in columns) == sorted(CURVE_MODELS)
    for columns, rows in tables:
        curves = {m: pd.read_csv(logs / f"{m}.csv").dropna(subset=["val_sdri"]).set_index("step")["val_sdri"]
                  for m in columns}
        for model in columns:  # every validation the log holds, in order
            assert [int(row[0]) for row in rows] == list(curves[model].index), model
        for step, *values in rows:
            for model, value in zip(columns, values, strict=True):
                assert float(value) == pytest.approx(curves[model][int(step)], abs=0.005), (model, step)


USER_PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _worked_example():
    return load_script(REPO / "docs" / "figures" / "worked_example.py")


@pytest.mark.parametrize("page", USER_PAGES, ids=[p.name for p in USER_PAGES])
def test_user_pages_name_no_issue_numbers(page):
    """Readers cannot look up this project's tracker: the pages say what holds, not which ticket asked for it."""
    found = re.findall(r"\bissues?\s+#?\d+", page.read_text(), flags=re.IGNORECASE)
    assert not found, f"{page.name}: {found}"


@pytest.mark.parametrize("page", USER_PAGES, ids=[p.name for p in USER_PAGES])
def test_cache_paths_are_shown_through_lassbench_cache(page):
    """A command that spells ~/.cache/lassbench fails for everyone who set LASSBENCH_CACHE; only the default may."""
    text = page.read_text()
    for match in re.finditer(r"~/\.cache/lassbench", text):
        before = text[max(0, match.start() - 20):match.start()]
        assert "default" in before, f"{page.name}: {text[match.start() - 60:match.end() + 40]!r}"


def test_the_worked_example_paragraph_says_what_its_figures_file_holds():
    module = _worked_example()
    page = module.PAGE.read_text()
    figures = json.loads(module.FIGURES.read_text())
    assert module.render_page(page, figures) == page, "rerun: python docs/figures/worked_example.py"


@pytest.mark.slow
def test_the_worked_example_figures_are_what_its_commands_print(tmp_path):
    """The README's way to find the benchmark honours LASSBENCH_CACHE; on that benchmark the worked example's
    commands print the committed figures (all but the time, which is the machine's)."""
    module = _worked_example()
    line = next(row for row in (REPO / "README.md").read_text().splitlines() if row.startswith("BENCH=$("))
    printed = subprocess.run(["bash", "-c", f'{line}\necho "$BENCH"'], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    assert Path(printed).is_relative_to(os.environ["LASSBENCH_CACHE"]) and (Path(printed) / "manifest.csv").is_file()
    fresh = module.measure(tmp_path, printed)
    committed = json.loads(module.FIGURES.read_text())
    assert sorted(fresh) == sorted(committed)
    for name, value in committed.items():
        if name in module.TIMED:
            continue
        if isinstance(value, float):
            assert fresh[name] == pytest.approx(value, abs=0.005), name
        else:
            assert fresh[name] == value, name
