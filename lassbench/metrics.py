"""Separation metrics: pure, batched functions over the last (time) axis.

Every function takes ``reference`` and ``estimate`` (and ``mixture`` for the improvement metrics) as numpy arrays or
torch tensors of identical shape ``(..., time)`` and scores each leading index separately. Sums are accumulated in
float64 whatever the input dtype. The result is a numpy float64 array of shape ``(...)``; for 1-D input it is a
``numpy.float64`` scalar (a subclass of Python ``float``).

Conventions (see ``docs/metrics.md`` for the derivations and the published evaluators each one matches):

* ``sdr`` is the *plain energy-ratio* SDR of the AudioSep and DCASE 2024 Task 9 evaluators, **not** BSS-Eval's SDR.
  Like AudioSep's ``calculate_sdr`` it floors both mean powers at ``SDR_EPS = 1e-10`` before the ratio, so it is
  always finite: a perfect estimate scores ``10·log10(max(mean(s²), 1e-10) / 1e-10)``, i.e. ``100 dB +
  10·log10(mean(s²))`` — at most 100 dB for any reference within [-1, 1].
* The scale-invariant ratios (``si_sdr``, ``bss_sdr``) have no natural power scale, so instead of an absolute floor
  they are clipped to ``±CAP_DB = 100 dB``: a perfect (or perfectly rescaled / filtered) estimate scores exactly
  100 dB; when signal and residual are both exactly zero the ratio is defined as 0 dB. Never inf or NaN.
* ``*i`` metrics are ``metric(s, ŝ) − metric(s, mixture)``, the improvement over doing nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import scipy.fft

SDR_EPS = 1e-10  # AudioSep utils.calculate_sdr: np.clip(mean power, a_min=1e-10)
CAP_DB = 100.0  # clip of the scale-invariant ratios, in dB
DEFAULT_FILTER_LENGTH = 512  # BSS-Eval v4 / mir_eval / torchmetrics distortion filter taps
_TIME_BLOCK = 65536  # samples per row cast to float64 at once by _gram: 4 x 512 KB stays in cache
_FFT_CHUNK_ROWS = 4  # rows transformed at once by bss_sdr: bounds the complex128 spectra in memory
_CORR_FFT = 8192  # bss_sdr block FFT size (for 512 lags): short enough to stay in cache, 6% overlap


def sdr(reference, estimate):
    r"""Energy-ratio SDR: ``10·log10(max(P(s), ε) / max(P(s − ŝ), ε))`` with ``P(x) = mean(x²)``, ``ε = 1e-10``.

    Matches AudioSep's ``utils.calculate_sdr`` (also imported by the DCASE 2024 Task 9 ``dcase_evaluator.py``) to
    floating-point rounding; we accumulate in float64 where they compute in the input dtype. No distortion filter
    and no rescaling: a gain error counts as distortion. Perfect estimate: ``100 + 10·log10(P(s))`` dB (finite).
    """
    s, e = _as_pair(reference, estimate)
    return _shape_out(_sdr_from_gram(_gram(s, [e]), s.shape[-1], 1), s.shape[:-1])


def sdri(reference, estimate, mixture):
    """SDR improvement ``sdr(s, ŝ) − sdr(s, mixture)`` as in AudioSep / DCASE (``sdri = sdr - sdr_no_sep``)."""
    s, e = _as_pair(reference, estimate)
    _, x = _as_pair(reference, mixture)
    g, n = _gram(s, [e, x]), s.shape[-1]
    gain = _sdr_from_gram(g, n, 1) - _sdr_from_gram(g, n, 2)
    return _shape_out(gain, s.shape[:-1])


def si_sdr(reference, estimate, zero_mean: bool = True):
    r"""Scale-invariant SDR (Le Roux et al. 2019): with ``α = ⟨s, ŝ⟩ / ‖s‖²``,
    ``10·log10(‖α s‖² / ‖ŝ − α s‖²)``, clipped to ``±CAP_DB``.

    ``zero_mean=True`` (default) removes each signal's mean first (asteroid, the SI-SDR paper).
    ``zero_mean=False`` is the projection AudioSep's ``calculate_sisdr`` uses (its ``eps = finfo.eps`` terms shift
    the value by far less than 1e-6 dB on real audio) and torchmetrics' default. Invariant to rescaling ŝ.
    """
    s, e = _as_pair(reference, estimate)
    return _shape_out(_si_sdr_from_gram(_gram(s, [e]), s.shape[-1], 1, zero_mean), s.shape[:-1])


def si_sdri(reference, estimate, mixture, zero_mean: bool = True):
    """SI-SDR improvement ``si_sdr(s, ŝ) − si_sdr(s, mixture)``."""
    s, e = _as_pair(reference, estimate)
    _, x = _as_pair(reference, mixture)
    g, n = _gram(s, [e, x]), s.shape[-1]
    gain = _si_sdr_from_gram(g, n, 1, zero_mean) - _si_sdr_from_gram(g, n, 2, zero_mean)
    return _shape_out(gain, s.shape[:-1])


def bss_sdr(reference, estimate, filter_length: int = DEFAULT_FILTER_LENGTH):
    r"""BSS-Eval (v3/v4) single-source SDR with a ``filter_length``-tap time-invariant distortion filter.

    ŝ is projected onto the span of ``s`` delayed by 0..L−1 samples: ``P ŝ = Σ_k c_k s[t−k]`` with ``R c = b``,
    ``R`` the Toeplitz autocorrelation of ``s`` and ``b`` the cross-correlation of ``s`` and ŝ (lags 0..L−1, computed
    with FFTs, no circular wrap). ``SDR = 10·log10(‖P ŝ‖² / (‖ŝ‖² − ‖P ŝ‖²))``, clipped to ``±CAP_DB``.

    Equals ``mir_eval.separation.bss_eval_sources`` (one source) and torchmetrics'
    ``signal_distortion_ratio(filter_length=512)`` — checked to 0.01 dB in tests/test_metrics.py. The Toeplitz
    systems of a whole batch are solved together by a vectorised Levinson recursion.
    """
    s, e = _as_pair(reference, estimate)
    return _shape_out(_bss_sdr_rows(_rows(s), [_rows(e)], filter_length)[0], s.shape[:-1])


def bss_sdri(reference, estimate, mixture, filter_length: int = DEFAULT_FILTER_LENGTH):
    """BSS-Eval SDR improvement ``bss_sdr(s, ŝ) − bss_sdr(s, mixture)`` (shares the reference's FFT and solve)."""
    s, e = _as_pair(reference, estimate)
    _, x = _as_pair(reference, mixture)
    est, mix = _bss_sdr_rows(_rows(s), [_rows(e), _rows(x)], filter_length)
    return _shape_out(est - mix, s.shape[:-1])


@dataclass(frozen=True)
class Metric:
    """A registered metric: how to call it and what it means (written into summary.json)."""

    name: str
    function: Callable
    needs_mixture: bool
    definition: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("sdr", sdr, False, "energy ratio 10log10(|s|^2/|s-ŝ|^2), mean powers floored at 1e-10, "
               "as AudioSep/DCASE2024 evaluators"),
        Metric("sdri", sdri, True, "sdr(s, ŝ) - sdr(s, mixture), as AudioSep/DCASE2024 evaluators"),
        Metric("si_sdr", si_sdr, False, "scale-invariant SDR (zero-mean), clipped to ±100 dB; absolute, as "
               "AudioSep's 'SISDR' column"),
        Metric("si_sdri", si_sdri, True, "si_sdr(s, ŝ) - si_sdr(s, mixture)"),
        Metric("bss_sdr", bss_sdr, False, "BSS-Eval SDR with a 512-tap distortion filter, as mir_eval "
               "bss_eval_sources / torchmetrics signal_distortion_ratio (CLAPSep's 'SDR')"),
        Metric("bss_sdri", bss_sdri, True, "bss_sdr(s, ŝ) - bss_sdr(s, mixture)"),
    )
}
DEFAULT_METRICS: tuple[str, ...] = ("sdr", "sdri", "si_sdr", "si_sdri")


def resolve_metrics(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """Metric names from a comma-separated string or an iterable; ``None`` gives the defaults.

    Raises ``ValueError`` naming the unknown metric(s) and the known ones.
    """
    if names is None:
        return DEFAULT_METRICS
    if isinstance(names, str):
        names = names.split(",")
    resolved = tuple(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    unknown = [n for n in resolved if n not in METRICS]
    if unknown or not resolved:
        raise ValueError(
            f"unknown metric(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(METRICS)}"
        )
    return resolved


def compute_metrics(reference, estimate, mixture=None, metrics: Iterable[str] = DEFAULT_METRICS,
                    filter_length: int = DEFAULT_FILTER_LENGTH) -> dict[str, np.ndarray]:
    """Several metrics of one batch in as few passes as possible (each base quantity is computed once).

    Returns ``{name: float64 array of shape (...)}`` (numpy scalars for 1-D input).
    """
    names = resolve_metrics(list(metrics))
    s, e = _as_pair(reference, estimate)
    x = None if mixture is None else _as_pair(reference, mixture)[1]
    if x is None and any(METRICS[n].needs_mixture for n in names):
        needing = [n for n in names if METRICS[n].needs_mixture]
        raise ValueError(f"metric(s) {', '.join(needing)} need the mixture")
    base = _BaseValues(s, e, x, filter_length)
    out = {}
    for name in names:
        stem = name[:-1] if METRICS[name].needs_mixture else name
        value = base.get(stem, "estimate")
        if METRICS[name].needs_mixture:
            value = value - base.get(stem, "mixture")
        out[name] = _shape_out(value, s.shape[:-1])
    return out


class _BaseValues:
    """Lazily computed sdr / si_sdr / bss_sdr of the estimate and of the mixture, each at most once."""

    def __init__(self, s: np.ndarray, e: np.ndarray, x: np.ndarray | None, filter_length: int):
        self._s, self._filter_length = s, filter_length
        self._which = {"estimate": 1, "mixture": 2} if x is not None else {"estimate": 1}
        self._signals = [e] if x is None else [e, x]
        self._gram: np.ndarray | None = None
        self._bss: dict[str, np.ndarray] = {}

    def get(self, stem: str, which: str) -> np.ndarray:
        if stem == "bss_sdr":
            if not self._bss:
                values = _bss_sdr_rows(_rows(self._s), [_rows(x) for x in self._signals], self._filter_length)
                self._bss = dict(zip(self._which, values, strict=True))
            return self._bss[which]
        if self._gram is None:  # one pass over reference, estimate and mixture serves all plain metrics
            self._gram = _gram(self._s, self._signals)
        n, k = self._s.shape[-1], self._which[which]
        if stem == "sdr":
            return _sdr_from_gram(self._gram, n, k)
        return _si_sdr_from_gram(self._gram, n, k, zero_mean=True)


# --- shared pieces -------------------------------------------------------------------------------------------


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_pair(reference, estimate) -> tuple[np.ndarray, np.ndarray]:
    s, e = _to_numpy(reference), _to_numpy(estimate)
    if s.shape != e.shape:
        raise ValueError(f"reference shape {s.shape} != estimate shape {e.shape}")
    if s.ndim == 0 or s.shape[-1] == 0:
        raise ValueError(f"signals need a non-empty time axis, got shape {s.shape}")
    return s, e


def _rows(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, x.shape[-1])


def _shape_out(values: np.ndarray, lead_shape: tuple[int, ...]):
    out = np.asarray(values, dtype=np.float64).reshape(lead_shape)
    return out[()] if out.ndim == 0 else out  # 1-D input -> numpy.float64 scalar


def _gram(s: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """Per-row float64 Gram matrix of ``[s, *others, (zero rows), ones]``: ``G[r, i, j] = Σ_t x_i[t] x_j[t]``.

    One pass over the samples yields every energy and inner product the plain metrics need (the ones row gives
    the sums used for zero-mean). Each row is cast to float64 one time block at a time into a small reused buffer:
    the products stay in cache instead of materialising float64 copies of the whole batch, and one BLAS call per
    block does all the multiply-adds.
    """
    signals = [_rows(s)] + [_rows(o) for o in others]
    n_rows, n = signals[0].shape
    size = max(4, len(signals) + 1)  # OpenBLAS is oddly slow for 3-row products; a zero row is free
    block = min(n, _TIME_BLOCK)
    buffer = np.zeros((size, block))
    out = np.zeros((n_rows, size, size))
    for row in range(n_rows):
        for start in range(0, n, block):
            stop = min(start + block, n)
            width = stop - start
            for i, signal in enumerate(signals):
                buffer[i, :width] = signal[row, start:stop]
            if width < block:  # the last, shorter block of a row: stale samples must not count
                buffer[:, width:] = 0.0
            buffer[-1, :width] = 1.0
            out[row] += buffer @ buffer.T
    return out


def _sdr_from_gram(g: np.ndarray, n: int, k: int) -> np.ndarray:
    """sdr of signal ``k`` of the Gram against the reference (index 0)."""
    # AudioSep clips the *mean* powers (not sums) at 1e-10, so the floor does not depend on the clip length.
    # ‖s − ŝ‖² = ‖s‖² − 2⟨s, ŝ⟩ + ‖ŝ‖²: rounding is ~1e-16·‖s‖², far below the floor and below 1e-6 dB up to
    # ~80 dB SDR (tests compare with a direct float64 computation).
    residual = np.maximum(g[:, 0, 0] - 2.0 * g[:, 0, k] + g[:, k, k], 0.0)
    signal = np.maximum(g[:, 0, 0] / n, SDR_EPS)
    return 10.0 * np.log10(signal / np.maximum(residual / n, SDR_EPS))


def _si_sdr_from_gram(g: np.ndarray, n: int, k: int, zero_mean: bool) -> np.ndarray:
    """si_sdr of signal ``k`` of the Gram against the reference (index 0)."""
    ss, se, ee = g[:, 0, 0], g[:, 0, k], g[:, k, k]
    if zero_mean:  # Σ(s−s̄)(ŝ−ŝ̄) = Σsŝ − Σs·Σŝ/n: no second pass over the samples
        s_sum, e_sum = g[:, 0, -1], g[:, k, -1]  # the last Gram row is the all-ones signal
        ss, se, ee = ss - s_sum**2 / n, se - s_sum * e_sum / n, ee - e_sum**2 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.where(ss > 0, se**2 / np.where(ss > 0, ss, 1.0), 0.0)  # ‖αs‖², α = se/ss; silent s: 0
    residual = np.maximum(ee - target, 0.0)  # ‖ŝ − αs‖² by Pythagoras; rounding can dip below 0
    return _clipped_db(target, residual)


def _clipped_db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``10·log10(num/den)`` clipped to ±CAP_DB; 0/0 is 0 dB. Finite for any non-negative input."""
    tiny = np.finfo(np.float64).tiny
    ratio = 10.0 * (np.log10(np.maximum(num, tiny)) - np.log10(np.maximum(den, tiny)))
    return np.clip(ratio, -CAP_DB, CAP_DB)


# --- BSS-Eval SDR ----------------------------------------------------------------------------------------------


def _bss_sdr_rows(s: np.ndarray, estimates: list[np.ndarray], filter_length: int) -> list[np.ndarray]:
    """BSS SDR of each estimate in ``estimates`` (all ``(rows, n)``) against reference rows ``s``."""
    if filter_length < 1:
        raise ValueError(f"filter_length must be >= 1, got {filter_length}")
    n_rows = s.shape[0]
    length = filter_length  # as mir_eval, even when longer than the signal (shifts past its end still count)
    auto = np.empty((n_rows, length))
    cross = np.empty((n_rows, len(estimates), length))
    total = np.empty((n_rows, len(estimates)))
    for start in range(0, n_rows, _FFT_CHUNK_ROWS):
        rows = slice(start, start + _FFT_CHUNK_ROWS)
        auto[rows], cross[rows], total[rows] = _correlations(s[rows], [e[rows] for e in estimates], length)
    silent = auto[:, 0] <= 0
    auto[silent, 0] = 1.0  # no projection exists onto a silent reference; solve a dummy system, zero its result
    cross[silent] = 0.0
    filters = _levinson_solve(auto, cross)
    projected = np.maximum(np.einsum("brl,brl->br", cross, filters), 0.0)  # ‖P ŝ‖² = bᵀ R⁻¹ b
    # ‖ŝ − P ŝ‖² = ‖ŝ‖² − ‖P ŝ‖² (orthogonal projection), as torchmetrics' coh / (1 − coh)
    return [_clipped_db(projected[:, k], np.maximum(total[:, k] - projected[:, k], 0.0))
            for k in range(len(estimates))]


def _correlations(
    s: np.ndarray, estimates: list[np.ndarray], length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Autocorrelation ``r[k] = Σ_t s[t] s[t+k]``, cross-correlations ``b[k] = Σ_t s[t] ŝ[t+k]`` (lags
    ``k < length``) and energies ``‖ŝ‖²``, all float64.

    Block-wise in the frequency domain rather than one FFT of the whole signal: cut ``s`` into blocks of
    ``M = N − length + 1`` samples zero-padded to ``N``, and take from ŝ the overlapping windows ``ŝ[jM : jM+N]``.
    Block ``j`` correlates with window ``j`` without wrap-around for every lag ``< length`` (``M − 1 + length − 1 <
    N``), and summing the products of spectra over blocks before one short inverse FFT gives the full linear
    correlation. Short, cache-friendly FFTs, and each estimate costs a single forward pass over ~1.07x its length
    (mir_eval and torchmetrics pad to twice the length and do two long transforms per signal).
    """
    rows, n = s.shape
    n_fft = max(_CORR_FFT, 1 << (4 * length - 1).bit_length())
    block = n_fft - length + 1
    n_blocks = -(-n // block)
    workers = os.cpu_count() or 1

    def padded(x: np.ndarray) -> np.ndarray:
        out = np.zeros((rows, n_blocks * block + n_fft))
        out[:, :n] = x
        return out

    def window_spectra(x_padded: np.ndarray) -> np.ndarray:
        windows = np.lib.stride_tricks.sliding_window_view(x_padded, n_fft, axis=-1)[:, ::block][:, :n_blocks]
        return scipy.fft.rfft(windows, axis=-1, workers=workers)

    s_padded = padded(s)
    blocks = np.zeros((rows, n_blocks, n_fft))
    blocks[:, :, :block] = s_padded[:, : n_blocks * block].reshape(rows, n_blocks, block)
    s_conj = np.conj(scipy.fft.rfft(blocks, axis=-1, workers=workers))

    def correlate(spectra: np.ndarray) -> np.ndarray:
        summed = np.einsum("bjf,bjf->bf", spectra, s_conj)
        return scipy.fft.irfft(summed, n=n_fft, axis=-1)[:, :length]

    auto = correlate(window_spectra(s_padded))
    cross, totals = [], []
    for e in estimates:
        e_padded = padded(e)
        cross.append(correlate(window_spectra(e_padded)))
        totals.append(np.einsum("ij,ij->i", e_padded, e_padded))
    return auto, np.stack(cross, axis=1), np.stack(totals, axis=1)


def _levinson_solve(r: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Solve ``T(r) x = y`` for symmetric positive-definite Toeplitz ``T(r)`` (first column ``r``), batched.

    ``r``: ``(B, L)``; ``y``: ``(B, R, L)`` (R right-hand sides sharing a matrix). Levinson's recursion grows the
    solution one order at a time with the forward vector ``f`` (``T f = e₁``; by symmetry the backward vector is
    ``f`` reversed): O(L²) per system instead of LU's O(L³), and every step is vectorised over the batch.
    """
    batch, length = r.shape
    f = np.zeros((batch, length))
    x = np.zeros(y.shape)
    f[:, 0] = 1.0 / r[:, 0]
    x[:, :, 0] = y[:, :, 0] / r[:, :1]
    for k in range(1, length):
        lags = r[:, k:0:-1]  # r[k], r[k-1], ..., r[1]: row k of T against the first k unknowns
        err_f = np.einsum("bi,bi->b", f[:, :k], lags)
        backward = f[:, k - 1 :: -1]  # order-k backward vector: the forward vector reversed
        new_f = np.zeros((batch, k + 1))
        new_f[:, :k] = f[:, :k]
        new_f[:, 1:] -= err_f[:, None] * backward
        new_f /= (1.0 - err_f**2)[:, None]
        f[:, : k + 1] = new_f
        err_x = np.einsum("bri,bi->br", x[:, :, :k], lags)
        x[:, :, : k + 1] += (y[:, :, k] - err_x)[:, :, None] * new_f[:, None, ::-1]
    return x
