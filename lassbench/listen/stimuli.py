"""Stimuli of a MUSHRA-style test (ITU-R BS.1534-3): hidden reference, low-pass anchors, loudness matching, fades.

Per trial (one benchmark item) the conditions are the hidden reference (the target itself), the two anchors the
Recommendation makes mandatory (§5.1: the target low-passed at 3.5 kHz, "low anchor", and at 7 kHz, "mid-range
anchor"), the unprocessed mixture (what a system that separates nothing returns) and each system's estimate.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from lassbench.errors import LassbenchError
from lassbench.mixing import integrated_loudness

REFERENCE = "reference"
HIDDEN_REFERENCE = "hidden_reference"
LOW_ANCHOR = "anchor_3.5k"
MID_ANCHOR = "anchor_7k"
MIXTURE = "mixture"
FIXED_CONDITIONS = (HIDDEN_REFERENCE, LOW_ANCHOR, MID_ANCHOR, MIXTURE)
ANCHOR_CUTOFFS = {LOW_ANCHOR: 3500.0, MID_ANCHOR: 7000.0}
FADE_SECONDS = 0.005  # BS.1534-3 §5.3: 5 ms raised-cosine fades at the start and end of each stimulus
PEAK_LIMIT = 0.99
# BS.1534-3 §5.1 mask for the 3.5 kHz anchor: ripple <= ±0.1 dB to 3.5 kHz, >= 25 dB down at 4 kHz, >= 50 dB at
# 4.5 kHz. Designed one-way for half of each (zero-phase filtering applies the filter twice), scaled for 7 kHz.
_RIPPLE_DB, _STOP_DB, _STOP_RATIO = 0.045, 30.0, 4000.0 / 3500.0  # 0.09 dB two-way: margin under 0.1


def anchor_sos(cutoff_hz: float, sample_rate: int) -> np.ndarray | None:
    """The one-way elliptic low-pass (second-order sections); ``None`` when the cutoff is at or above Nyquist."""
    stop = cutoff_hz * _STOP_RATIO
    if stop >= sample_rate / 2:
        return None
    order, edge = signal.ellipord(cutoff_hz, stop, _RIPPLE_DB, _STOP_DB, fs=sample_rate)
    return signal.ellip(order, _RIPPLE_DB, _STOP_DB, edge, btype="low", output="sos", fs=sample_rate)


def low_pass(x: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """Zero-phase low-pass (the filter run forwards and backwards: no delay against the other stimuli)."""
    sos = anchor_sos(cutoff_hz, sample_rate)
    if sos is None:
        needed = 2 * cutoff_hz * _STOP_RATIO
        raise LassbenchError(f"a {cutoff_hz:g} Hz low-pass needs a sample rate above {needed:g} Hz")
    return signal.sosfiltfilt(sos, np.asarray(x, dtype=np.float64)).astype(np.float32)


def fade(x: np.ndarray, sample_rate: int, seconds: float = FADE_SECONDS) -> np.ndarray:
    """Raised-cosine fade-in and fade-out (no click when a stimulus starts or stops)."""
    n = min(int(round(seconds * sample_rate)), x.size // 2)
    out = np.asarray(x, dtype=np.float32).copy()
    if n > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


def trial_stimuli(target: np.ndarray, mixture: np.ndarray, estimates: dict[str, np.ndarray], sample_rate: int,
                  *, loudness_lufs: float, max_seconds: float | None, where: str) -> tuple[dict, dict]:
    """``({condition: signal}, {condition: {"lufs_in", "gain_db"}})`` for one trial, the open reference included
    (the mid-range anchor only where the rate leaves something above 7 kHz to remove).

    Every stimulus is cut to ``max_seconds`` (the Recommendation asks for about 10 s), faded, and brought to
    ``loudness_lufs`` (BS.1770 integrated loudness) so that level is not what listeners rate; when that would clip,
    the whole trial is turned down together, so stimuli stay matched. Silent stimuli stay silent.
    """
    if anchor_sos(ANCHOR_CUTOFFS[LOW_ANCHOR], sample_rate) is None:
        raise LassbenchError(f"{where}: {sample_rate} Hz audio has nothing above 3.5 kHz to remove: the low-pass "
                             "anchors need a sample rate above 8 kHz")
    length = target.size if max_seconds is None else min(target.size, int(max_seconds * sample_rate))
    raw = {REFERENCE: target, HIDDEN_REFERENCE: target, MIXTURE: mixture, **estimates}
    cut = {name: _fit(np.asarray(x, dtype=np.float32).reshape(-1), length) for name, x in raw.items()}
    for anchor, cutoff in ANCHOR_CUTOFFS.items():
        if anchor_sos(cutoff, sample_rate) is not None:  # at 16 kHz there is nothing above 7 kHz to cut: no mid anchor
            cut[anchor] = low_pass(cut[REFERENCE], cutoff, sample_rate)
    stimuli, levels = {}, {}
    for name, x in cut.items():
        x = fade(x, sample_rate)
        lufs = _loudness(x, sample_rate, f"{where} ({name})")
        gain_db = 0.0 if math.isinf(lufs) else loudness_lufs - lufs
        stimuli[name] = x * np.float32(10 ** (gain_db / 20))
        levels[name] = {"lufs_in": None if math.isinf(lufs) else round(lufs, 3), "gain_db": gain_db}
    peak = max(float(np.max(np.abs(x))) for x in stimuli.values())
    if peak > PEAK_LIMIT:
        trim = PEAK_LIMIT / peak
        stimuli = {name: x * np.float32(trim) for name, x in stimuli.items()}
        for level in levels.values():
            level["gain_db"] += 20 * math.log10(trim)
    for level in levels.values():
        level["gain_db"] = round(level["gain_db"], 3)
    return stimuli, levels


def _fit(x: np.ndarray, length: int) -> np.ndarray:
    return x[:length] if x.size >= length else np.pad(x, (0, length - x.size))


def _loudness(x: np.ndarray, sample_rate: int, where: str) -> float:
    try:
        return integrated_loudness(x, sample_rate)
    except LassbenchError as exc:
        raise LassbenchError(f"{where}: {exc}") from exc
