"""The synth class table: each class's generator, pitch and rate ranges and caption words (``classes.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lassbench.corpora.synth.sounds import GENERATORS, Generator

CLASS_TABLE = Path(__file__).with_name("classes.json")


@dataclass(frozen=True)
class SynthClass:
    """One sound class: how it sounds (``generate``) and the words that describe it."""

    key: str
    label: str
    generate: Generator
    pitch_range: dict[str, tuple[float, float]]
    rate_range: dict[str, tuple[float, float]]
    nouns: tuple[str, ...]
    events: tuple[str, ...]
    verbs: dict[str, tuple[str, ...]]
    nouns_b: tuple[str, ...]
    verbs_b: dict[str, tuple[str, ...]]
    has_rhythm: bool = True


@lru_cache(maxsize=1)
def synth_class_table() -> tuple[SynthClass, ...]:
    """Every class, in class-id order (the order of ``classes.json``)."""
    return tuple(_synth_class(entry) for entry in json.loads(CLASS_TABLE.read_text(encoding="utf-8"))["classes"])


def synth_classes() -> list[str]:
    """The class vocabulary, in class-id order (labels as they appear first in the ``labels`` column)."""
    return [c.label for c in synth_class_table()]


def _synth_class(entry: dict) -> SynthClass:
    return SynthClass(
        key=entry["key"], label=entry["label"], generate=GENERATORS[entry["key"]],
        pitch_range=_ranges(entry["pitch_hz"]), rate_range=_ranges(entry["rate_hz"]),
        nouns=tuple(entry["nouns"]), events=tuple(entry["events"]), verbs=_words(entry["verbs"]),
        nouns_b=tuple(entry["paraphrase_nouns"]), verbs_b=_words(entry["paraphrase_verbs"]),
        has_rhythm=entry["rhythm"],
    )


def _ranges(table: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    return {name: (low, high) for name, (low, high) in table.items()}


def _words(table: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {name: tuple(words) for name, words in table.items()}
