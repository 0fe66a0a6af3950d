"""A recording from a package made into the packaged corpus's 10 s clip, and described in words.

Where a short recording sits in its clip, and how often it repeats, is a fixed function of its name
(:func:`arrange`); what is audible in the clip is measured, not listened to (:func:`measure`); its captions are
the class's phrases plus what the measurements say, each in one of several phrasings, then the captions people
wrote for the class's sound (:func:`captions_for`). The same bytes give the same clip and captions on any machine.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

from lassbench.mixing import integrated_loudness

LANGUAGES = {"fr": "French", "ru": "Russian", "ro": "Romanian", "ca": "Catalan", "bg": "Bulgarian", "es": "Spanish",
             "be": "Belarusian", "el": "Greek", "da": "Danish", "lt": "Lithuanian", "nl": "Dutch", "ar": "Arabic",
             "cs": "Czech", "de": "German", "en": "English", "en_GB": "English", "he": "Hebrew", "hu": "Hungarian",
             "it": "Italian", "ja": "Japanese", "ko": "Korean", "ml": "Malayalam", "nb": "Norwegian", "nn": "Norwegian",
             "nds": "Low German", "pt": "Portuguese", "pt_BR": "Portuguese", "sl": "Slovenian", "sv": "Swedish",
             "tn": "Setswana", "uk": "Ukrainian", "zh_tw": "Chinese"}
CLIP_SECONDS = 10.0
REPEAT_BELOW_S = 3.0  # events shorter than this are repeated 1-3 times, as events in real 10 s clips often are
ACTIVE_FLOOR_DB = -40.0  # a 50 ms frame counts as active within 40 dB of the clip's loudest frame


def fixed_hash(text: str) -> int:
    """64 bits of SHA-256 of ``text``: every order and choice in the packaged corpus that must look arbitrary but
    stay the same on every machine (which files a class keeps, splits, placements, phrasings)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class Arrangement:
    offset_s: float
    repetitions: int
    gap_s: float


def arrange(source_seconds: float, seed_text: str) -> Arrangement:
    """Where a short recording sits in its 10 s clip (a fixed function of the file's name)."""
    h = fixed_hash(seed_text)
    if source_seconds >= CLIP_SECONDS:
        return Arrangement(0.0, 1, 0.0)
    reps = 1 + h % 3 if source_seconds < REPEAT_BELOW_S else 1
    gap = 0.4 + (h >> 8) % 1000 / 1000.0  # 0.4 .. 1.4 s between repetitions
    while reps > 1 and reps * source_seconds + (reps - 1) * gap > CLIP_SECONDS - 0.5:
        reps -= 1
    used = reps * source_seconds + (reps - 1) * gap
    room = max(0.0, CLIP_SECONDS - used)
    offset = round(room * ((h >> 20) % 1000) / 1000.0 * 0.6, 3)  # start within the first 60% of the free room
    return Arrangement(offset, reps, round(gap, 3))


def make_clip(audio: np.ndarray, sample_rate: int, arrangement: Arrangement) -> np.ndarray:
    n = int(round(CLIP_SECONDS * sample_rate))
    clip = np.zeros(n, dtype=np.float32)
    start = int(round(arrangement.offset_s * sample_rate))
    step = audio.shape[0] + int(round(arrangement.gap_s * sample_rate))
    for k in range(arrangement.repetitions):
        at = start + k * step
        part = audio[: max(0, n - at)]
        clip[at:at + part.shape[0]] += part
    peak = float(np.max(np.abs(clip))) if clip.size else 0.0
    return clip * (0.99 / peak) if peak > 0.99 else clip  # only ever scaled down, never normalised up


@dataclass(frozen=True)
class Measured:
    active_s: float
    loudness_lufs: float
    centroid_hz: float


def measure(clip: np.ndarray, sample_rate: int) -> Measured:
    """Listen-free description: seconds of activity, integrated loudness, spectral centroid of the active frames."""
    hop = int(0.05 * sample_rate)
    frames = clip[: clip.shape[0] // hop * hop].reshape(-1, hop)
    energy_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    active = energy_db > energy_db.max() + ACTIVE_FLOOR_DB
    spectrum = np.abs(np.fft.rfft(frames[active] * np.hanning(hop), axis=1)) ** 2
    freqs = np.fft.rfftfreq(hop, 1.0 / sample_rate)
    total = spectrum.sum()
    centroid = float((spectrum.sum(axis=0) * freqs).sum() / total) if total > 0 else 0.0
    return Measured(round(float(active.sum()) * 0.05, 2), integrated_loudness(clip, sample_rate), centroid)


# Several phrasings of each measured attribute: a clip's captions draw one per caption (a hash of the clip and the
# caption's place), so no attribute is always worded the same way
PHRASINGS = {
    "2": ("twice", "two times", "repeated twice"), "3": ("three times", "thrice", "repeated three times"),
    "briefly": ("briefly", "for a moment", "in one short burst"),
    "continuously": ("continuously", "without a break", "on and on"),
    "quietly": ("quietly", "softly", "faintly"), "loudly": ("loudly", "at high volume", "forcefully"),
    "deep": ("with a deep, booming tone", "low-pitched", "with a low rumble"),
    "bright": ("with a bright, hissy tone", "high-pitched", "with a sharp, bright timbre"),
    "silence": ("then silence", "then nothing more", "and then it is quiet"),
}


def captions_for(label: str, phrases: list[str], measured: Measured, arrangement: Arrangement, lang: str,
                 seed_text: str, human: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Several captions: the class phrases with what the measurements say is audible (each attribute in one of its
    ``PHRASINGS``), then the ``human`` captions (people's words for the class's sound, :mod:`human_captions`)."""
    language = f"in {LANGUAGES[lang]}" if lang in LANGUAGES else ""
    words = []
    if arrangement.repetitions > 1:
        words.append(str(arrangement.repetitions) if str(arrangement.repetitions) in PHRASINGS else
                     f"{arrangement.repetitions} times")
    if measured.active_s < 1.0 and arrangement.repetitions == 1:
        words.append("briefly")
    elif measured.active_s > 7.0:
        words.append("continuously")
    if math.isfinite(measured.loudness_lufs) and measured.loudness_lufs < -38:
        words.append("quietly")
    elif measured.loudness_lufs > -18:
        words.append("loudly")
    tone = "deep" if measured.centroid_hz < 300 else ("bright" if measured.centroid_hz > 5000 else "")

    def say(word: str, i: int) -> str:
        options = PHRASINGS.get(word, (word,))
        return options[fixed_hash(f"{seed_text}#{i}#{word}") % len(options)]

    start = fixed_hash(seed_text) % len(phrases)
    captions = []
    for i in range(len(phrases)):
        base = phrases[(start + i) % len(phrases)].format(lang=language).strip()
        base = re.sub(r"\s+", " ", base)
        extra = [say(word, i) for word in words[: 1 + i % 2]]
        caption = base + (f" {extra[0]}" if extra else "") + "".join(f", {word}" for word in extra[1:])
        if tone and i % 2 == 1:
            caption += f", {say(tone, i)}"
        if measured.active_s < 3.0 and i == len(phrases) - 1:
            caption += f", {say('silence', i)}"
        captions.append(caption[0].upper() + caption[1:])
    return captions + list(human)
