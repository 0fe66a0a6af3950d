"""How each synth class sounds: one generator per class, a pure function of its random stream and attributes.

A generator ``(rng, a, sample_rate, n)`` returns ``n`` samples at any scale (``clips.generate_clip`` normalises the
level); the attributes ``a`` hold ``pitch``, ``tempo``, ``rhythm`` and the drawn ``pitch_hz`` and ``rate_hz``.
:data:`GENERATORS` maps a class key of ``classes.json`` to its generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Generator = Callable[[np.random.Generator, dict, int, int], np.ndarray]


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


def fades(x: np.ndarray, sr: int, seconds: float = 0.005) -> np.ndarray:
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


def _sosfilt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    # scipy.signal takes a second to import; a warm cache (every `run` on the default benchmark) never filters
    from scipy import signal

    return signal.sosfilt(sos, x)


def _bandpass(x: np.ndarray, lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    """Band-pass between ``lo`` and ``hi`` Hz: ``order`` cascaded biquads centred on their geometric mean."""
    hi = min(hi, 0.45 * sr)
    centre = np.sqrt(max(lo, 20.0) * hi)
    sos = np.repeat(_biquad("bandpass", centre, centre / max(hi - lo, 1.0), sr), order, axis=0)
    return _sosfilt(sos, x)


def _lowpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    return _sosfilt(np.repeat(_biquad("lowpass", cutoff, 0.7071, sr), order, axis=0), x)


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


def siren(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    t = _time(n, sr)
    freq = a["pitch_hz"] * (1 + 0.3 * np.sin(2 * np.pi * a["rate_hz"] * t + rng.uniform(0, 2 * np.pi)))
    return _partials(_harmonic_phase(freq, sr), 1.3 * a["pitch_hz"], sr, [1.0, 0.35, 0.15])


def alarm(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    beep_len = int(0.5 * sr / a["rate_hz"])
    t = _time(beep_len, sr)
    tone = _partials(2 * np.pi * a["pitch_hz"] * t, a["pitch_hz"], sr, [1.0, 0, 1 / 3, 0, 1 / 5])
    return _place(n, _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular"), fades(tone, sr))


def bell(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    length = int(min(1.5, 3.0 / a["rate_hz"]) * sr)
    t = _time(length, sr)
    tau = 0.9 if a["pitch"] == "low" else 0.45
    stroke = np.zeros(length)
    for ratio, weight in [(1.0, 1.0), (2.0, 0.6), (2.76, 0.5), (4.07, 0.3), (5.4, 0.25)]:
        if ratio * a["pitch_hz"] < 0.45 * sr:
            stroke += weight * np.sin(2 * np.pi * ratio * a["pitch_hz"] * t) * np.exp(-t * ratio ** 0.5 / tau)
    onsets = _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular")
    return _place(n, onsets, fades(stroke, sr, 0.002), rng.uniform(0.7, 1.0, len(onsets)))


def engine(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    t = _time(n, sr)
    # slow: a steady idle; fast: the engine revs up and down at rate_hz
    depth = 0.05 if a["tempo"] == "slow" else 0.45
    freq = a["pitch_hz"] * (1 + depth * (0.5 + 0.5 * np.sin(2 * np.pi * a["rate_hz"] * t - np.pi / 2)))
    tone = _partials(_harmonic_phase(freq, sr), 1.5 * a["pitch_hz"], sr, [1 / k for k in range(1, 9)])
    rumble = _lowpass(rng.standard_normal(n), 4 * a["pitch_hz"], sr)
    return tone + 0.3 * rumble / (np.abs(rumble).max() + 1e-12)


def rain(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    lo, hi = (300.0, 1500.0) if a["pitch"] == "low" else (2500.0, 7000.0)
    bed = _bandpass(rng.standard_normal(n), lo, hi, sr)
    bed /= np.abs(bed).max() + 1e-12
    drop_len = int(0.004 * sr)
    drop = _bandpass(rng.standard_normal(drop_len), lo, hi, sr) * np.exp(-np.arange(drop_len) / (0.001 * sr))
    onsets = np.sort(rng.integers(0, n, int(a["rate_hz"] * n / sr)))
    drops = _place(n, onsets, drop / (np.abs(drop).max() + 1e-12), rng.uniform(0.1, 0.4, len(onsets)))
    return (0.3 if a["tempo"] == "slow" else 0.6) * bed + drops


def wind(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    howl = _bandpass(rng.standard_normal(n), 0.8 * a["pitch_hz"], 1.25 * a["pitch_hz"], sr)
    return howl * (0.15 + _smooth_random(rng, n, sr, a["rate_hz"]))


def bird(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    length = int(rng.uniform(0.05, 0.09) * sr)
    t = _time(length, sr)
    f_start, f_end = 1.5 * a["pitch_hz"], a["pitch_hz"]
    freq = f_start + (f_end - f_start) * t / t[-1]
    chirp = np.sin(_harmonic_phase(freq, sr)) * np.hanning(length)
    return _place(n, _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular"), chirp)


def drums(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
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


def piano(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
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
        notes[step] = fades(note, sr, 0.003)
    out = np.zeros(n + length)
    for pos, step in zip(onsets, steps, strict=True):
        out[pos:pos + length] += notes[step]
    return out[:n]


def whistle(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
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


def typing(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    length = int(0.1 * sr)
    t = _time(length, sr)
    # a damped key resonance rather than a bare impulse: clicks stay recognisable with a moderate crest factor
    click = _bandpass(rng.standard_normal(length), 0.8 * a["pitch_hz"], 1.25 * a["pitch_hz"], sr) * np.exp(-t / 0.025)
    click /= np.abs(click).max() + 1e-12
    onsets = _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular")
    return _place(n, onsets, click, rng.uniform(0.5, 1.0, len(onsets)))


_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410], [300, 870, 2240]])


def speech(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
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
        voiced = sum(w * _sosfilt(sos, stretch) for sos, w in zip(vowel, (1.0, 0.5, 0.25), strict=True))
        out[start:start + len(stretch)] = voiced * envelope[:len(stretch)]
    return out


def dog(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    length = int(rng.uniform(0.12, 0.2) * sr)
    t = _time(length, sr)
    freq = a["pitch_hz"] * (1.3 - 0.5 * t / t[-1])
    bark = _partials(_harmonic_phase(freq, sr), 1.3 * a["pitch_hz"], sr, [1.0, 0.7, 0.5, 0.3, 0.2])
    bark = bark + 0.3 * rng.standard_normal(length)
    bark = _bandpass(bark, 0.5 * a["pitch_hz"], 6 * a["pitch_hz"], sr) * np.hanning(length)
    onsets = _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular")
    return _place(n, onsets, bark / (np.abs(bark).max() + 1e-12), rng.uniform(0.7, 1.0, len(onsets)))


def clock(rng: np.random.Generator, a: dict, sr: int, n: int) -> np.ndarray:
    length = int(0.06 * sr)
    t = _time(length, sr)
    tick = np.sin(2 * np.pi * a["pitch_hz"] * t) * np.exp(-t / 0.012)
    return _place(n, _onsets(rng, a["rate_hz"], n, sr, a["rhythm"] == "irregular"), tick)


GENERATORS: dict[str, Generator] = {
    "siren": siren,
    "alarm": alarm,
    "bell": bell,
    "engine": engine,
    "rain": rain,
    "wind": wind,
    "bird": bird,
    "drums": drums,
    "piano": piano,
    "whistle": whistle,
    "typing": typing,
    "speech": speech,
    "dog": dog,
    "clock": clock,
}
