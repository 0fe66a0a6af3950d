"""Captions and paraphrases of a synth clip: templates that always name its pitch and its tempo.

Captions draw from the ``*_A`` word sets and the class's ``nouns`` / ``events`` / ``verbs``; paraphrases from the
``*_B`` sets and the class's ``nouns_b`` / ``verbs_b``, words no caption uses (for query-robustness studies).
"""

from __future__ import annotations

import numpy as np

from lassbench.corpora.synth.classes import SynthClass

PITCH_A = {"low": ("low-pitched", "low", "deep"), "high": ("high-pitched", "high", "shrill")}
TEMPO_ADJ_A = {"slow": ("slow", "slowly repeating", "unrushed"), "fast": ("fast", "rapid", "quick")}
TEMPO_PHRASE_A = {"slow": ("at a slow pace", "slowly"), "fast": ("at a fast pace", "quickly")}
RHYTHM_A = {"regular": "in a steady rhythm", "irregular": "at irregular intervals"}
PITCH_B = {"low": ("deep-toned", "bass-heavy", "low-register"), "high": ("piercing", "treble-heavy", "high-register")}
TEMPO_B = {"slow": ("unhurried", "leisurely"), "fast": ("hurried", "brisk")}


def pick(rng: np.random.Generator, options) -> str:
    """One of ``options``, drawn from ``rng``."""
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def captions(rng: np.random.Generator, cls: SynthClass, attrs: dict) -> list[str]:
    p, s = attrs["pitch"], attrs["tempo"]
    if cls.key == "rain":  # rain has no pitch: its "pitch" is the colour of the noise
        pitch_words = {"low": ("dull", "muffled", "low"), "high": ("hissing", "bright", "high")}[p]
    else:
        pitch_words = PITCH_A[p]

    nouns = cls.nouns
    if cls.key == "speech":  # a low voice reads as a man's, a high one as a woman's or a child's
        nouns = ("man", "male voice", "man's voice") if p == "low" else ("woman", "female voice", "child")

    def one(template: int) -> str:
        pw, noun, verb = pick(rng, pitch_words), pick(rng, nouns), pick(rng, cls.verbs[s])
        if template == 0:
            return f"{_article(pw)} {pw} {noun} {verb}"
        if template == 1:
            return f"{pick(rng, TEMPO_ADJ_A[s])} {pw} {pick(rng, cls.events)}"
        if template == 2:
            return f"{_article(noun)} {noun} {verb} with {_article(pw)} {pw} tone".capitalize()
        if template == 3:
            short = pw.removesuffix("-pitched")
            return f"{pick(rng, TEMPO_ADJ_A[s])} {pick(rng, cls.events)}, {short} in pitch"
        if template == 4:
            return f"{pw} {noun} sounds {pick(rng, TEMPO_PHRASE_A[s])}"
        return f"{_article(pw)} {pw} {noun} {verb} {RHYTHM_A[attrs['rhythm']]}"

    templates = [0, 1, 2, 3, 4] + ([5] if cls.has_rhythm else [])
    chosen = rng.permutation(templates)[:5]
    return [one(int(k)) for k in chosen]


def paraphrases(rng: np.random.Generator, cls: SynthClass, attrs: dict) -> list[str]:
    pb, tb = pick(rng, PITCH_B[attrs["pitch"]]), pick(rng, TEMPO_B[attrs["tempo"]])
    noun = pick(rng, cls.nouns_b)
    verb = pick(rng, cls.verbs_b[attrs["tempo"]])
    return [
        f"the sound of {_article(noun)} {noun} that is {pb} and {tb}",
        f"{_article(tb)} {tb}, {pb} {noun} can be heard",
        f"there is {_article(noun)} {noun} {verb}, {pb} in character",
    ]
