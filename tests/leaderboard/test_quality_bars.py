"""The quality-bars page is what recipes/synth/quality_bars.py prints from the committed results, and it says when
the shipped models were fine-tuned for different numbers of steps (a comparison between them is then uneven)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.command_helpers import load_script
from support.paths import REPO

SCRIPT = REPO / "recipes" / "synth" / "quality_bars.py"


@pytest.mark.skipif(not (REPO / "leaderboards" / "results" / "synth").is_dir(), reason="no committed results")
def test_the_committed_quality_bars_page_is_what_the_script_prints():
    printed = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, capture_output=True, text=True, check=True)
    assert printed.stdout == (REPO / "docs" / "quality-bars.md").read_text()


def test_unequal_fine_tuning_is_named_and_equal_fine_tuning_is_silent(tmp_path):
    script = load_script(SCRIPT)
    for model, steps in (("lassnet", 3000), ("tag-queried", 1300), ("class-conditioned", 1300)):
        rows = "".join(f"{step},0,\n" for step in range(1, steps + 1))
        (tmp_path / f"{model}.csv").write_text("step,loss,val_sdri\n" + rows)
    steps = script.fine_tuning_steps(tmp_path)
    assert steps == {"lassnet": 3000, "tag-queried": 1300, "class-conditioned": 1300}
    note = script.budget_note(steps)
    assert "unequal fine-tuning" in note and "lassnet 3000 steps" in note and "tag-queried 1300 steps" in note
    assert script.budget_note({"lassnet": 1300, "tag-queried": 1300, "class-conditioned": 1300}) == ""
