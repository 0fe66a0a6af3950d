"""``synth``: the embedded, procedurally generated corpus every command can use offline.

:func:`synth_corpus` generates (once, then reuses from the cache) a set of captioned clips in the source-manifest
format of :mod:`lassbench.manifests`, with three splits drawn from disjoint seeds. Every clip belongs to one of the
classes listed by :func:`synth_classes` and has attributes that are *audible*:

* ``pitch``: ``low`` or ``high`` — class-specific, non-overlapping ranges (e.g. an alarm beeps at 250-400 Hz or
  1.5-2.8 kHz). The gap (lowest high pitch / highest low pitch) is 3.3-4.3x for seven classes and 1.54-2.78x for six
  (Speech 1.54, Bird 1.75, Dog 1.75, Engine 2.0, Whistle 2.25, Typing 2.78); Rain has no pitch (its noise band is
  300-1500 Hz vs 2.5-7 kHz);
* ``tempo``: ``slow`` or ``fast`` — the event / modulation rate; the gap (lowest fast / highest slow rate) is 3.0-5.3x
  for six classes and 1.67-2.8x for eight (Drums 1.67, Typing 2.25, Speech 2.29, Piano 2.4, Dog 2.5, Alarm 2.73,
  Bell 2.78, Bird 2.8) — ratios of the ``pitch_range`` / ``rate_range`` bounds in the class table below;
* ``rhythm``: ``regular`` or ``irregular`` onsets for event classes, ``continuous`` for the others (Siren, Engine,
  Rain, Wind, Speech);
* ``loudness``: ``quiet`` or ``loud`` — the clip's level (a loudness-normalising protocol removes it in mixtures,
  so captions never mention it).

Clip ``i`` of a split has class ``i % n_classes`` and pitch/tempo combination ``(i // n_classes) % 4``, so every
split holds every class with every combination: *attribute-contrast pairs* (same class, another pitch or tempo)
exist in each split, and only the words of a query can tell such a pair apart.

Columns added to the source-manifest schema:

* ``attributes``: JSON object (``pitch, tempo, rhythm, loudness`` plus the drawn ``pitch_hz`` and ``rate_hz``);
* ``paraphrases``: JSON list of 3 captions from templates and wordings never used in ``captions`` (for
  query-robustness studies);
* ``class_id``: the index of the clip's class in :func:`synth_classes`.

Captions always name the pitch and the tempo ("a high-pitched alarm beeps rapidly", "slow low bell strokes").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
from filelock import FileLock
from scipy import signal

from lassbench.audio import TEMP_MARK, sha1_file, sweep_stale_temps, temp_prefix, write_audio
from lassbench.errors import LassbenchError
from lassbench.manifests import write_manifest_csv
from lassbench.paths import cache_dir
from lassbench.pools import process_pool

# Caches made before the key was the generator's digest (v1-...): their code is unknown, so they are never reused.
SYNTH_VERSION = "v2"
# temp folders of those versions: .<root name>.<8 random>; removed once this old (no PID to check)
_LEGACY_TEMP = re.compile(r"^\.v1-.+\.[a-z0-9_]{8}$")
_LEGACY_TEMP_AGE = 3600.0
SPLIT_SEED_CODES = {"train": 1, "val": 2, "test": 3}
DEFAULT_CLIPS = {"train": 1200, "val": 150, "test": 200}
_COMBOS = (("low", "slow"), ("high", "fast"), ("low", "fast"), ("high", "slow"))

Generator = Callable[[np.random.Generator, dict, int, int], np.ndarray]


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


# ----------------------------------------------------------------------------------------------- signal helpers


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _onsets(rng: np.random.Generator, rate: float, n: int, sr: int, irregular: bool) -> np.ndarray:
    """Sample positions of events at ``rate`` per second; irregular ones jitter by up to 40% of the period."""
    period = sr / rate
    count = int(n / period) + 2
    positions = rng.uniform(0, 0.5) * period + np.arange(count) * period
    if irregular:
        positions = positions + rng.uniform(-0.4, 0.4, count) * period
    positions = np.sort(positions.astype(int))
    return positions[(positions >= 0) & (positions < n)]


def _place(n: int, onsets: np.ndarray, kernel: np.ndarray, amps: np.ndarray | None = None) -> np.ndarray:
    out = np.zeros(n + len(kernel))
    amps = np.ones(len(onsets)) if amps is None else amps
    for pos, amp in zip(onsets, amps, strict=True):
        out[pos:pos + len(kernel)] += amp * kernel
    return out[:n]


def _fades(x: np.ndarray, sr: int, seconds: float = 0.005) -> np.ndarray:
    k = max(1, min(len(x) // 2, int(sr * seconds)))
    ramp = np.linspace(0.0, 1.0, k)
    x = x.copy()
    x[:k] *= ramp
    x[-k:] *= ramp[::-1]
    return x


def _biquad(kind: str, freq: float, q: float, sr: int) -> np.ndarray:
    """One RBJ-cookbook biquad as an ``sos`` row: designing it by formula is ~100x cheaper than ``butter``."""
    w0 = 2 * np.pi * min(freq, 0.45 * sr) / sr
    alpha, cos = np.sin(w0) / (2 * q), np.cos(w0)
    if kind == "bandpass":
        b = [alpha, 0.0, -alpha]
    else:  # lowpass
        b = [(1 - cos) / 2, 1 - cos, (1 - cos) / 2]
    a = [1 + alpha, -2 * cos, 1 - alpha]
    return np.array([[*(np.array(b) / a[0]), 1.0, a[1] / a[0], a[2] / a[0]]])


def _bandpass(x: np.ndarray, lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    """Band-pass between ``lo`` and ``hi`` Hz: ``order`` cascaded biquads centred on their geometric mean."""
    hi = min(hi, 0.45 * sr)
    centre = np.sqrt(max(lo, 20.0) * hi)
    sos = np.repeat(_biquad("bandpass", centre, centre / max(hi - lo, 1.0), sr), order, axis=0)
    return signal.sosfilt(sos, x)


def _lowpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    return signal.sosfilt(np.repeat(_biquad("lowpass", cutoff, 0.7071, sr), order, axis=0), x)


def _smooth_random(rng: np.random.Generator, n: int, sr: int, rate: float) -> np.ndarray:
    """A smooth positive envelope varying at about ``rate`` Hz (sum of a few random sinusoids), in [0, 1]."""
    t = _time(n, sr)
    env = sum(
        rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * rate * rng.uniform(0.6, 1.4) * t + rng.uniform(0, 2 * np.pi))
        for _ in range(3)
    )
    env = env - env.min()
    return env / (env.max() + 1e-12)


def _harmonic_phase(freq: np.ndarray, sr: int) -> np.ndarray:
    return 2 * np.pi * np.cumsum(freq) / sr


def _partials(phase: np.ndarray, freq_max: float, sr: int, weights: list[float]) -> np.ndarray:
    """Harmonics of ``phase`` with ``weights``, dropping those that would alias."""
    out = np.zeros_like(phase)
    for k, w in enumerate(weights, start=1):
        if k * freq_max < 0.45 * sr:
            out += w * np.sin(k * phase)
    return out


# ------------------------------------------------------------------------------------------------- generators


def _siren(rng, a, sr, n):
    t = _time(n, sr)
    freq = a["pitch_hz"] * (1 + 0.3 * np.sin(2 * np.pi * a["rate_hz"] * t + rng.uniform(0, 2 * np.pi)))
    return _partials(_harmonic_phase(freq, sr), 1.3 * a["pitch_hz"], sr, [1.0, 0.35, 0.15])


def _alarm(rng, a, sr, n):
    beep_len = int(0.5 * sr / a["rate_hz"])
    t = _time(beep_len, sr)
    tone = _partials(2 * np.pi * a["pitch_hz"] * t, a["pitch_hz"], sr, [1.0, 0, 1 / 3, 0, 1 / 5])
    return _place(n, _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular"), _fades(tone, sr))


def _bell(rng, a, sr, n):
    length = int(min(1.5, 3.0 / a["rate_hz"]) * sr)
    t = _time(length, sr)
    tau = 0.9 if a["pitch"] == "low" else 0.45
    stroke = np.zeros(length)
    for ratio, weight in [(1.0, 1.0), (2.0, 0.6), (2.76, 0.5), (4.07, 0.3), (5.4, 0.25)]:
        if ratio * a["pitch_hz"] < 0.45 * sr:
            stroke += weight * np.sin(2 * np.pi * ratio * a["pitch_hz"] * t) * np.exp(-t * ratio ** 0.5 / tau)
    onsets = _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular")
    return _place(n, onsets, _fades(stroke, sr, 0.002), rng.uniform(0.7, 1.0, len(onsets)))


def _engine(rng, a, sr, n):
    t = _time(n, sr)
    # slow: a steady idle; fast: the engine revs up and down at rate_hz
    depth = 0.05 if a["tempo"] == "slow" else 0.45
    freq = a["pitch_hz"] * (1 + depth * (0.5 + 0.5 * np.sin(2 * np.pi * a["rate_hz"] * t - np.pi / 2)))
    tone = _partials(_harmonic_phase(freq, sr), 1.5 * a["pitch_hz"], sr, [1 / k for k in range(1, 9)])
    rumble = _lowpass(rng.standard_normal(n), 4 * a["pitch_hz"], sr)
    return tone + 0.3 * rumble / (np.abs(rumble).max() + 1e-12)


def _rain(rng, a, sr, n):
    lo, hi = (300.0, 1500.0) if a["pitch"] == "low" else (2500.0, 7000.0)
    bed = _bandpass(rng.standard_normal(n), lo, hi, sr)
    bed /= np.abs(bed).max() + 1e-12
    drop_len = int(0.004 * sr)
    drop = _bandpass(rng.standard_normal(drop_len), lo, hi, sr) * np.exp(-np.arange(drop_len) / (0.001 * sr))
    onsets = np.sort(rng.integers(0, n, int(a["rate_hz"] * n / sr)))
    drops = _place(n, onsets, drop / (np.abs(drop).max() + 1e-12), rng.uniform(0.1, 0.4, len(onsets)))
    return (0.3 if a["tempo"] == "slow" else 0.6) * bed + drops


def _wind(rng, a, sr, n):
    howl = _bandpass(rng.standard_normal(n), 0.8 * a["pitch_hz"], 1.25 * a["pitch_hz"], sr)
    return howl * (0.15 + _smooth_random(rng, n, sr, a["rate_hz"]))


def _bird(rng, a, sr, n):
    length = int(rng.uniform(0.05, 0.09) * sr)
    t = _time(length, sr)
    f_start, f_end = 1.5 * a["pitch_hz"], a["pitch_hz"]
    freq = f_start + (f_end - f_start) * t / t[-1]
    chirp = np.sin(_harmonic_phase(freq, sr)) * np.hanning(length)
    return _place(n, _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular"), chirp)


def _drums(rng, a, sr, n):
    step = sr * 60.0 / a["rate_hz"] / 2  # eighth notes at rate_hz beats per minute
    hit_len = int(0.25 * sr)
    t = _time(hit_len, sr)
    f0 = a["pitch_hz"]
    tom = np.sin(_harmonic_phase(f0 * (1 + 1.5 * np.exp(-t / 0.02)), sr)) * np.exp(-t / 0.08)
    snare = _bandpass(rng.standard_normal(hit_len), 1000, 5000, sr) * np.exp(-t / 0.05)
    hat = _bandpass(rng.standard_normal(hit_len), 0.6 * sr / 2, 0.95 * sr / 2, sr) * np.exp(-t / 0.015)
    steps = np.arange(int(n / step) + 1)
    positions = (steps * step).astype(int)
    if a["rhythm"] == "irregular":
        positions = positions + (rng.uniform(-0.3, 0.3, len(steps)) * step).astype(int)
    positions = np.clip(positions, 0, n - 1)
    toms = steps % 4 == 0
    if a["rhythm"] == "irregular":
        toms = rng.uniform(size=len(steps)) < 0.3
    out = _place(n, positions[toms], tom)
    out += 0.6 * _place(n, positions[steps % 4 == 2], snare / (np.abs(snare).max() + 1e-12))
    out += 0.25 * _place(n, positions, hat / (np.abs(hat).max() + 1e-12))
    return out


def _piano(rng, a, sr, n):
    onsets = _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular")
    steps = rng.choice(np.array([0, 2, 4, 7, 9, 12]), len(onsets))  # a pentatonic melody
    length = int(min(1.2, 2.5 / a["rate_hz"]) * sr)
    t = _time(length, sr)
    tau = 0.8 if a["pitch"] == "low" else 0.35
    decays = [k ** -1.5 * np.exp(-t * k ** 0.5 / tau) for k in range(1, 9)]
    notes = {}
    for step in np.unique(steps):  # one kernel per distinct note: the melody reuses them
        f0 = a["pitch_hz"] * 2 ** (step / 12)
        note = sum(
            decays[k - 1] * np.sin(2 * np.pi * k * f0 * (1 + 0.0004 * k * k) * t)
            for k in range(1, 9) if k * f0 < 0.45 * sr
        )
        notes[step] = _fades(note, sr, 0.003)
    out = np.zeros(n + length)
    for pos, step in zip(onsets, steps, strict=True):
        out[pos:pos + length] += notes[step]
    return out[:n]


def _whistle(rng, a, sr, n):
    notes = _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular")
    levels = 2 ** (rng.choice([0, 2, 4, 5, 7, 9], len(notes) + 1) / 12)
    track = np.full(n, levels[0])
    for k, pos in enumerate(notes):
        track[pos:] = levels[k + 1]
    track = _lowpass(track - track[0], 30.0, sr) + track[0]  # glide between notes
    t = _time(n, sr)
    freq = a["pitch_hz"] * track * (1 + 0.012 * np.sin(2 * np.pi * 5.5 * t))
    breath = _bandpass(rng.standard_normal(n), 0.9 * a["pitch_hz"], 1.2 * a["pitch_hz"], sr)
    return np.sin(_harmonic_phase(freq, sr)) + 0.05 * breath / (np.abs(breath).max() + 1e-12)


def _typing(rng, a, sr, n):
    length = int(0.1 * sr)
    t = _time(length, sr)
    # a damped key resonance rather than a bare impulse: clicks stay recognisable with a moderate crest factor
    click = _bandpass(rng.standard_normal(length), 0.8 * a["pitch_hz"], 1.25 * a["pitch_hz"], sr) * np.exp(-t / 0.025)
    click /= np.abs(click).max() + 1e-12
    onsets = _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular")
    return _place(n, onsets, click, rng.uniform(0.5, 1.0, len(onsets)))


_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410], [300, 870, 2240]])


def _speech(rng, a, sr, n):
    t = _time(n, sr)
    f0 = a["pitch_hz"] * (1 + 0.12 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi)))
    glottal = np.diff(np.floor(np.cumsum(f0) / sr), prepend=0.0)  # one impulse per pitch period
    glottal = _lowpass(glottal, 3000, sr)
    # each syllable is one vowel: filter only its own stretch through that vowel's three formants
    filters = [[_biquad("bandpass", f, 5.0, sr) for f in formants] for formants in _VOWELS]
    syllable = int(sr / a["rate_hz"])
    out = np.zeros(n)
    envelope = np.sin(np.pi * np.arange(syllable) / syllable) ** 0.7
    for start in range(0, n, syllable):
        if rng.uniform() < 0.15:  # a pause between words
            continue
        stretch = glottal[start:start + syllable]
        vowel = filters[int(rng.integers(len(_VOWELS)))]
        voiced = sum(w * signal.sosfilt(sos, stretch) for sos, w in zip(vowel, (1.0, 0.5, 0.25), strict=True))
        out[start:start + len(stretch)] = voiced * envelope[:len(stretch)]
    return out


def _dog(rng, a, sr, n):
    length = int(rng.uniform(0.12, 0.2) * sr)
    t = _time(length, sr)
    freq = a["pitch_hz"] * (1.3 - 0.5 * t / t[-1])
    bark = _partials(_harmonic_phase(freq, sr), 1.3 * a["pitch_hz"], sr, [1.0, 0.7, 0.5, 0.3, 0.2])
    bark = bark + 0.3 * rng.standard_normal(length)
    bark = _bandpass(bark, 0.5 * a["pitch_hz"], 6 * a["pitch_hz"], sr) * np.hanning(length)
    onsets = _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular")
    return _place(n, onsets, bark / (np.abs(bark).max() + 1e-12), rng.uniform(0.7, 1.0, len(onsets)))


def _clock(rng, a, sr, n):
    length = int(0.06 * sr)
    t = _time(length, sr)
    tick = np.sin(2 * np.pi * a["pitch_hz"] * t) * np.exp(-t / 0.012)
    return _place(n, _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular"), tick)


def _cls(key, label, gen, low, high, slow, fast, nouns, events, vslow, vfast, nouns_b, bslow, bfast, rhythm=True):
    return SynthClass(
        key=key, label=label, generate=gen, pitch_range={"low": low, "high": high},
        rate_range={"slow": slow, "fast": fast}, nouns=nouns, events=events,
        verbs={"slow": vslow, "fast": vfast}, nouns_b=nouns_b, verbs_b={"slow": bslow, "fast": bfast},
        has_rhythm=rhythm,
    )


def _classes() -> tuple[SynthClass, ...]:
    return (
        _cls("siren", "Siren", _siren, (250, 380), (1300, 2200), (0.25, 0.45), (1.6, 2.6),
             ("siren", "emergency siren", "police siren"), ("siren wails", "siren sweeps"),
             ("wails slowly", "rises and falls slowly"), ("wails rapidly", "warbles quickly", "yelps fast"),
             ("emergency vehicle signal", "wailing warning device"),
             ("cycling up and down at a leisurely pace",), ("cycling up and down in quick succession",), False),
        _cls("alarm", "Alarm", _alarm, (250, 400), (1500, 2800), (1.5, 2.2), (6.0, 8.0),
             ("alarm", "alarm clock", "beeping alarm"), ("alarm beeps", "beeps"),
             ("beeps slowly", "beeps at a slow pace"), ("beeps rapidly", "beeps quickly", "beeps fast"),
             ("electronic buzzer", "warning beeper"),
             ("pulsing with long gaps",), ("pulsing in quick bursts",)),
        _cls("bell", "Bell", _bell, (180, 350), (1200, 2200), (0.65, 0.9), (2.5, 3.5),
             ("bell", "church bell", "ringing bell"), ("bell strokes", "bell chimes"),
             ("rings slowly", "tolls slowly"), ("rings rapidly", "chimes quickly", "rings fast"),
             ("metal chime", "struck metallic gong"),
             ("struck at long intervals",), ("struck again and again in quick succession",)),
        _cls("engine", "Engine", _engine, (30, 55), (110, 180), (0.15, 0.3), (0.9, 1.3),
             ("engine", "car engine", "motor"), ("engine hum", "motor drone"),
             ("idles slowly", "hums steadily at a slow pace"), ("revs quickly", "revs up and down fast"),
             ("running combustion motor", "vehicle powerplant"),
             ("ticking over calmly",), ("being throttled up and down briskly",), False),
        _cls("rain", "Rain", _rain, (0, 0), (0, 0), (8, 15), (80, 150),
             ("rain", "rainfall", "rain shower"), ("rain drops", "raindrops"),
             ("falls lightly and slowly", "patters sparsely"), ("pours down fast", "falls heavily and quickly"),
             ("downpour of water droplets", "precipitation on a surface"),
             ("with only scattered droplets",), ("with a dense torrent of droplets",), False),
        _cls("wind", "Wind", _wind, (250, 450), (1500, 2500), (0.15, 0.3), (1.2, 2.0),
             ("wind", "gusting wind", "howling wind"), ("wind gusts", "gusts of wind"),
             ("blows in slow gusts", "gusts slowly"), ("gusts rapidly", "blows in fast gusts"),
             ("moving air current", "breeze through the trees"),
             ("swelling and fading gently",), ("swelling and fading restlessly",), False),
        _cls("bird", "Bird", _bird, (1300, 2000), (3500, 5500), (1.5, 2.5), (7.0, 10.0),
             ("bird", "songbird", "small bird"), ("bird chirps", "chirps"),
             ("chirps slowly", "tweets slowly"), ("chirps rapidly", "tweets quickly", "chirps fast"),
             ("feathered creature", "little songster"),
             ("calling with long pauses",), ("calling in a rapid trill",)),
        _cls("drums", "Drums", _drums, (50, 90), (300, 500), (70, 90), (150, 180),
             ("drum", "drum kit", "drummer"), ("drum beats", "drum hits"),
             ("plays a slow beat", "beats slowly"), ("plays a fast beat", "beats rapidly"),
             ("percussion set", "set of skins"),
             ("keeping a relaxed groove",), ("keeping a driving groove",)),
        _cls("piano", "Piano", _piano, (110, 260), (880, 1760), (1.5, 2.5), (6.0, 8.0),
             ("piano", "piano melody", "keyboard instrument"), ("piano notes", "piano tones"),
             ("plays slowly", "plays a slow melody"), ("plays quickly", "plays a fast melody"),
             ("acoustic keyboard", "struck-string instrument"),
             ("picking out a tune gently",), ("running through a tune briskly",)),
        _cls("whistle", "Whistle", _whistle, (500, 800), (1800, 3000), (0.7, 1.1), (4.0, 6.0),
             ("whistle", "person whistling", "whistled tune"), ("whistled notes", "whistles"),
             ("whistles slowly", "whistles a slow tune"), ("whistles quickly", "whistles a fast tune"),
             ("puckered-lip melody", "mouth-blown tune"),
             ("drawn out in long notes",), ("in short lively notes",)),
        _cls("typing", "Typing", _typing, (300, 900), (2500, 5000), (2.0, 4.0), (9.0, 13.0),
             ("keyboard", "computer keyboard", "person typing"), ("keyboard clicks", "key clicks"),
             ("clicks slowly", "is typed on slowly"), ("clicks rapidly", "is typed on quickly"),
             ("set of keys being pressed", "typewriter-like keys"),
             ("pressed one key at a time",), ("hammered in a flurry",)),
        _cls("speech", "Speech", _speech, (90, 130), (200, 280), (2.5, 3.5), (8.0, 11.0),
             ("person", "voice", "speaker"), ("speech", "talking"),
             ("speaks slowly", "talks slowly"), ("speaks quickly", "talks fast", "chatters rapidly"),
             ("human voice", "someone's words"),
             ("in a drawn-out manner",), ("in a hurried manner",), False),
        _cls("dog", "Dog", _dog, (250, 400), (700, 1000), (0.8, 1.2), (3.0, 4.0),
             ("dog", "barking dog", "puppy"), ("dog barks", "barks"),
             ("barks slowly", "barks now and then"), ("barks rapidly", "barks quickly"),
             ("canine", "hound"),
             ("yapping with long pauses",), ("yapping in a rapid series",)),
        _cls("clock", "Clock", _clock, (400, 700), (3000, 4500), (0.9, 1.2), (4.0, 5.0),
             ("clock", "ticking clock", "wall clock"), ("clock ticks", "ticks"),
             ("ticks slowly", "ticks at a slow pace"), ("ticks rapidly", "ticks quickly"),
             ("timepiece mechanism", "clockwork"),
             ("counting the seconds calmly",), ("counting off in a hurried patter",)),
    )


def synth_classes() -> list[str]:
    """The class vocabulary, in class-id order (labels as they appear first in the ``labels`` column)."""
    return [c.label for c in _classes()]


# --------------------------------------------------------------------------------------------------- captions

_PITCH_A = {"low": ("low-pitched", "low", "deep"), "high": ("high-pitched", "high", "shrill")}
_TEMPO_ADJ_A = {"slow": ("slow", "slowly repeating", "unrushed"), "fast": ("fast", "rapid", "quick")}
_TEMPO_PHRASE_A = {"slow": ("at a slow pace", "slowly"), "fast": ("at a fast pace", "quickly")}
_RHYTHM_A = {"regular": "in a steady rhythm", "irregular": "at irregular intervals"}
_PITCH_B = {"low": ("deep-toned", "bass-heavy", "low-register"), "high": ("piercing", "treble-heavy", "high-register")}
_TEMPO_B = {"slow": ("unhurried", "leisurely"), "fast": ("hurried", "brisk")}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _captions(rng: np.random.Generator, cls: SynthClass, attrs: dict) -> list[str]:
    p, s = attrs["pitch"], attrs["tempo"]
    if cls.key == "rain":  # rain has no pitch: its "pitch" is the colour of the noise
        pitch_words = {"low": ("dull", "muffled", "low"), "high": ("hissing", "bright", "high")}[p]
    else:
        pitch_words = _PITCH_A[p]

    nouns = cls.nouns
    if cls.key == "speech":  # a low voice reads as a man's, a high one as a woman's or a child's
        nouns = ("man", "male voice", "man's voice") if p == "low" else ("woman", "female voice", "child")

    def one(template: int) -> str:
        pw, noun, verb = _pick(rng, pitch_words), _pick(rng, nouns), _pick(rng, cls.verbs[s])
        if template == 0:
            return f"{_article(pw)} {pw} {noun} {verb}"
        if template == 1:
            return f"{_pick(rng, _TEMPO_ADJ_A[s])} {pw} {_pick(rng, cls.events)}"
        if template == 2:
            return f"{_article(noun)} {noun} {verb} with {_article(pw)} {pw} tone".capitalize()
        if template == 3:
            short = pw.removesuffix("-pitched")
            return f"{_pick(rng, _TEMPO_ADJ_A[s])} {_pick(rng, cls.events)}, {short} in pitch"
        if template == 4:
            return f"{pw} {noun} sounds {_pick(rng, _TEMPO_PHRASE_A[s])}"
        return f"{_article(pw)} {pw} {noun} {verb} {_RHYTHM_A[attrs['rhythm']]}"

    templates = [0, 1, 2, 3, 4] + ([5] if cls.has_rhythm else [])
    chosen = rng.permutation(templates)[:5]
    return [one(int(k)) for k in chosen]


def _paraphrases(rng: np.random.Generator, cls: SynthClass, attrs: dict) -> list[str]:
    pb, tb = _pick(rng, _PITCH_B[attrs["pitch"]]), _pick(rng, _TEMPO_B[attrs["tempo"]])
    noun = _pick(rng, cls.nouns_b)
    verb = _pick(rng, cls.verbs_b[attrs["tempo"]])
    return [
        f"the sound of {_article(noun)} {noun} that is {pb} and {tb}",
        f"{_article(tb)} {tb}, {pb} {noun} can be heard",
        f"there is {_article(noun)} {noun} {verb}, {pb} in character",
    ]


# ------------------------------------------------------------------------------------------------------ clips


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
    classes = _classes()
    class_id = index % len(classes)
    cls = classes[class_id]
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_SEED_CODES[split], index]))
    pitch, tempo = _COMBOS[(index // len(classes)) % len(_COMBOS)]
    attrs = {
        "pitch": pitch, "tempo": tempo,
        "rhythm": _pick(rng, ("regular", "irregular")) if cls.has_rhythm else "continuous",
        "loudness": _pick(rng, ("quiet", "loud")),
    }
    lo, hi = cls.pitch_range[pitch]
    attrs["pitch_hz"] = round(float(rng.uniform(lo, hi)), 2)
    lo, hi = cls.rate_range[tempo]
    attrs["rate_hz"] = round(float(rng.uniform(lo, hi)), 3)
    n = int(round(duration * sample_rate))
    audio = cls.generate(rng, attrs, sample_rate, n)
    peak = 0.25 if attrs["loudness"] == "quiet" else 0.8
    audio = _fades(audio, sample_rate, 0.01) * peak / (np.abs(audio).max() + 1e-12)
    return SynthClip(
        source_id=f"synth-{split}-{index:05d}", class_id=class_id, audio=audio.astype(np.float32),
        attributes=attrs, captions=_captions(rng, cls, attrs), paraphrases=_paraphrases(rng, cls, attrs),
    )


def synth_corpus(
    root: str | Path | None = None,
    *,
    sample_rate: int = 16000,
    duration: float = 4.0,
    seed: int = 0,
    clips: dict[str, int] | None = None,
    progress: bool | None = None,
) -> Path:
    """Path to the source manifest of the synth corpus, generating it first when absent (a progress bar on stderr
    while it does: ``progress`` True or False, or None for only when stderr is a terminal).

    ``root`` defaults to ``cache_dir()/synth/<key>``, the key naming the generator's digest
    (:func:`generator_digest`: this module's code and the numpy / scipy versions) and the parameters, so a cache
    made by other code is never reused. Generation writes into a temporary folder named after this process, renamed
    onto ``root`` at the end: a killed run leaves nothing that looks finished, and the next run removes the folder
    of a process that no longer exists. A file lock beside ``root`` makes a second first run wait for the one
    generating, then reuse its corpus. ``clips`` maps split -> number of clips (default 1200 / 150 / 200).
    """
    clips = dict(DEFAULT_CLIPS if clips is None else clips)
    unknown = sorted(set(clips) - set(SPLIT_SEED_CODES))
    if unknown:
        raise LassbenchError(f"synth corpus: unknown split(s) {', '.join(unknown)}; use train, val, test")
    if root is None:
        root = cache_dir() / "synth" / corpus_key(sample_rate=sample_rate, duration=duration, seed=seed, clips=clips)
    root = Path(root)
    manifest = root / "manifest.csv"
    if manifest.is_file():
        return manifest
    root.parent.mkdir(parents=True, exist_ok=True)
    # a second first run waits for the one generating, then reuses its corpus
    with FileLock(root.parent / f"{root.name}.lock"):
        if manifest.is_file():
            return manifest
        _sweep_debris(root.parent)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(root), suffix=TEMP_MARK, dir=root.parent))
        try:
            _generate_into(tmp, sample_rate=sample_rate, duration=duration, seed=seed, clips=clips,
                           progress=progress)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def corpus_key(*, sample_rate: int = 16000, duration: float = 4.0, seed: int = 0,
               clips: dict[str, int] | None = None) -> str:
    """The cache folder name of a corpus: generator digest and parameters."""
    clips = dict(DEFAULT_CLIPS if clips is None else clips)
    counts = "-".join(str(clips.get(s, 0)) for s in SPLIT_SEED_CODES)
    return f"{SYNTH_VERSION}-{generator_digest()}-sr{sample_rate}-d{duration:g}-seed{seed}-n{counts}"


@lru_cache(maxsize=1)
def generator_digest() -> str:
    """12 hex digits of SHA-1 over what decides the clips: this module's source and the numpy / scipy versions
    (their random streams and filters). Any edit of this file, even a comment, makes a new cache: a stale one
    cannot be reused by mistake, which is how committed results once came from audio the code no longer made."""
    digest = hashlib.sha1(Path(__file__).read_bytes())
    digest.update(f"\nnumpy {np.__version__}\nscipy {scipy.__version__}\n".encode())
    return digest.hexdigest()[:12]


def _sweep_debris(folder: Path) -> None:
    """Remove temp folders of killed generations: those of dead processes, and unmarked ones of old versions."""
    sweep_stale_temps(folder)
    now = time.time()
    for entry in folder.glob(".v1-*"):
        try:
            old = now - entry.lstat().st_mtime > _LEGACY_TEMP_AGE
        except FileNotFoundError:
            continue
        if old and entry.is_dir() and _LEGACY_TEMP.match(entry.name):
            shutil.rmtree(entry, ignore_errors=True)


def _generate_into(folder: Path, *, sample_rate: int, duration: float, seed: int, clips: dict[str, int],
                   progress: bool | None = None) -> None:
    from tqdm import tqdm

    jobs = [(split, start, min(start + _CHUNK, count)) for split, count in clips.items()
            for start in range(0, count, _CHUNK)]
    work = partial(_generate_chunk, folder, sample_rate=sample_rate, duration=duration, seed=seed)
    workers = min(len(jobs), os.cpu_count() or 1)
    bar = tqdm(total=sum(clips.values()), desc="generating the synth corpus", unit="clip", file=sys.stderr,
               leave=False, disable=None if progress is None else not progress)
    chunks = []
    with bar, process_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        # ~7 ms per clip: worth both cores for the default 1,550 clips; workers die with this process
        for chunk in (pool.map(work, jobs) if pool else map(work, jobs)):
            chunks.append(chunk)
            bar.update(len(chunk))
    write_manifest_csv(pd.DataFrame([row for chunk in chunks for row in chunk]), folder / "manifest.csv")


_CHUNK = 100


def _generate_chunk(folder: Path, job: tuple[str, int, int], *, sample_rate: int, duration: float, seed: int
                    ) -> list[dict]:
    split, start, stop = job
    classes = _classes()
    rows = []
    for index in range(start, stop):
        clip = generate_clip(split, index, sample_rate=sample_rate, duration=duration, seed=seed)
        rel = f"audio/{clip.source_id}.wav"
        write_audio(folder / rel, clip.audio, sample_rate, subtype="PCM_16")
        rows.append({
            "source_id": clip.source_id, "path": rel, "captions": clip.captions,
            "labels": [classes[clip.class_id].label], "split": split, "sample_rate": sample_rate,
            "num_samples": len(clip.audio), "duration": len(clip.audio) / sample_rate,
            "sha1": sha1_file(folder / rel), "attributes": json.dumps(clip.attributes, sort_keys=True),
            "paraphrases": clip.paraphrases, "class_id": clip.class_id,
        })
    return rows
