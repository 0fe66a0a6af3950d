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
    nouns_b: tuple[str, ...]  # paraphrases' words: never in a caption
    verbs_b: dict[str, tuple[str, ...]]
    has_rhythm: bool = True  # False: a continuous sound, no onsets to make regular or irregular


@lru_cache(maxsize=1)
def synth_class_table() -> tuple[SynthClass, ...]:
    """Every class, in class-id order (the order of ``classes.json``)."""
    return tuple(_synth_class(entry) for entry in json.loads(CLASS_TABLE.read_text(encoding="utf-8"))["classes"])


def synth_classes() -> list[str]:
    """The class vocabulary, in class-id order (labels as they appear first in the ``labels`` column)."""
    return [c.label for c in synth_class_table()]


def _synth_class(entry: dict) -> SynthClass:
    lists = {name: tuple(entry[name]) for name in ("nouns", "events", "nouns_b")}
    tables = {name: {key: tuple(values) for key, values in entry[name].items()}  # per pitch or per tempo
              for name in ("pitch_range", "rate_range", "verbs", "verbs_b")}
    return SynthClass(key=entry["key"], label=entry["label"], generate=GENERATORS[entry["key"]],
                      has_rhythm=entry["has_rhythm"], **lists, **tables)
