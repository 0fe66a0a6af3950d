"""The tiny SAM Audio judge folder the official code scored (tests/golden/published/make_sam_audio_judge_golden.py):
config.json, checkpoint.pt of seeded weights in the recorded layout, and the word-level ModernBERT tokenizer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from . import published_fixtures as fx

sys.path.insert(0, str(fx.GOLDEN))
from make_sam_audio_judge_golden import write_modernbert_tokenizer  # noqa: E402

LAYOUT = json.loads((fx.GOLDEN / "sam-audio-judge-layout.json").read_text())


def judge_state() -> dict[str, torch.Tensor]:
    return fx.seeded_state(LAYOUT["checkpoint"])


def make_tiny_judge(folder: Path, state: dict[str, torch.Tensor] | None = None, config: dict | None = None) -> Path:
    """The judge folder as the release ships it (``state`` / ``config`` replace the recorded ones)."""
    write_modernbert_tokenizer(folder)
    (folder / "config.json").write_text(json.dumps(LAYOUT["config"] if config is None else config))
    torch.save(judge_state() if state is None else state, folder / "checkpoint.pt")
    return folder
