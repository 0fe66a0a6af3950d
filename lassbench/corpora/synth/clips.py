"""One synth clip: class, attributes, audio, captions and paraphrases, a pure function of (split, index, seed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lassbench.corpora.synth.captions import captions, paraphrases, pick
from lassbench.corpora.synth.classes import synth_class_table
from lassbench.corpora.synth.sounds import fades

SPLIT_SEED_CODES = {"train": 1, "val": 2, "test": 3}
_COMBOS = (("low", "slow"), ("high", "fast"), ("low", "fast"), ("high", "slow"))


@dataclass(frozen=True)
class SynthClip:
    source_id: str
    class_id: int
    audio: np.ndarray
    attributes: dict
    captions: list[str]
    paraphrases: list[str]


def generate_clip(split: str, index: int, *, sample_rate: int = 16000, duration: float = 4.0, seed: int = 0
                  ) -> SynthClip:
    """Clip ``index`` of ``split``: a pure function of its arguments (its RNG is seeded by all of them)."""
    classes = synth_class_table()
    class_id = index % len(classes)
    cls = classes[class_id]
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_SEED_CODES[split], index]))
    pitch, tempo = _COMBOS[(index // len(classes)) % len(_COMBOS)]
    # the draws below are in a fixed order: reordering them changes every clip
    attrs = {
        "pitch": pitch, "tempo": tempo,
        "rhythm": pick(rng, ("regular", "irregular")) if cls.has_rhythm else "continuous",
        "loudness": pick(rng, ("quiet", "loud")),
    }
    lo, hi = cls.pitch_range[pitch]
    attrs["pitch_hz"] = round(float(rng.uniform(lo, hi)), 2)
    lo, hi = cls.rate_range[tempo]
    attrs["rate_hz"] = round(float(rng.uniform(lo, hi)), 3)
    n = int(round(duration * sample_rate))
    audio = cls.generate(rng, attrs, sample_rate, n)
    peak = 0.25 if attrs["loudness"] == "quiet" else 0.8
    audio = fades(audio, sample_rate, 0.01) * peak / (np.abs(audio).max() + 1e-12)
    return SynthClip(
        source_id=f"synth-{split}-{index:05d}", class_id=class_id, audio=audio.astype(np.float32),
        attributes=attrs, captions=captions(rng, cls, attrs), paraphrases=paraphrases(rng, cls, attrs),
    )
