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
* ``si_sdr`` has two conventions (:data:`SI_SDR_CONVENTIONS`), chosen per benchmark by its protocol (recorded in
  its dataset.json): lassbench's zero-mean one (also always available as ``si_sdr_zm``) and AudioSep's
  ``calculate_sisdr`` (AudioSep, DCASE 2024 and CLAPSep evaluators: no mean removal, float eps, no clipping).
* The zero-mean SI-SDR and ``bss_sdr`` have no natural power scale, so instead of an absolute floor they are clipped
  to ``±CAP_DB = 100 dB``: a perfect (or perfectly rescaled / filtered) estimate scores exactly 100 dB; when signal
  and residual are both exactly zero the ratio is defined as 0 dB. Never inf or NaN.
* ``*i`` metrics are ``metric(s, ŝ) − metric(s, mixture)``, the improvement over doing nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import scipy  # scipy.fft and scipy.linalg load on first use (bss_sdr only): ~0.3 s off every run's start-up
from threadpoolctl import threadpool_limits

SDR_EPS = 1e-10  # AudioSep utils.calculate_sdr: np.clip(mean power, a_min=1e-10)
CAP_DB = 100.0  # clip of the scale-invariant ratios, in dB
DEFAULT_FILTER_LENGTH = 512  # BSS-Eval v4 / mir_eval / torchmetrics distortion filter taps
_TIME_BLOCK = 5 << 15  # at most 163,840 samples per row cast to float64 at once (1.3 MB per signal, in cache)
_FFT_CHUNK_ROWS = 4  # rows transformed at once by bss_sdr: bounds the complex128 spectra in memory
_CORR_FFT = 8192  # bss_sdr block FFT size (for 512 lags): short enough to stay in cache, 6% overlap
_FFT_WORKERS = 1  # threaded FFTs stall when other processes load the cores (24.4 vs 17.9 ms per item, measured)


def sdr(reference, estimate):
    r"""Energy-ratio SDR: ``10·log10(max(P(s), ε) / max(P(s − ŝ), ε))`` with ``P(x) = mean(x²)``, ``ε = 1e-10``.

    Matches AudioSep's ``utils.calculate_sdr`` (also imported by the DCASE 2024 Task 9 ``dcase_evaluator.py``) to
    floating-point rounding; we accumulate in float64 where they compute in the input dtype. No distortion filter
    and no rescaling: a gain error counts as distortion. Perfect estimate: ``100 + 10·log10(P(s))`` dB (finite).
    """
    s, e = _as_pair(reference, estimate)
    plain = _Plain(s, [e])
    return _shape_out(plain.sdr(1), s.shape[:-1])


def sdri(reference, estimate, mixture):
    """SDR improvement ``sdr(s, ŝ) − sdr(s, mixture)`` as in AudioSep / DCASE (``sdri = sdr - sdr_no_sep``)."""
    s, e = _as_pair(reference, estimate)
    _, x = _as_pair(reference, mixture)
    plain = _Plain(s, [e, x])
    return _shape_out(plain.sdr(1) - plain.sdr(2), s.shape[:-1])


def si_sdr(reference, estimate, convention: str = "zero-mean"):
    r"""Scale-invariant SDR: with ``α = ⟨s, ŝ⟩ / ‖s‖²``, ``10·log10(‖α s‖² / ‖ŝ − α s‖²)``.

    ``convention`` (see :data:`SI_SDR_CONVENTIONS`):

    * ``"zero-mean"`` (lassbench's, also named ``si_sdr_zm``): each signal's mean removed first (Le Roux et al.
      2019, asteroid), the ratio clipped to ``±CAP_DB``;
    * ``"audiosep"``: AudioSep's ``utils.calculate_sisdr`` (also the DCASE 2024 Task 9 evaluator's) — no mean
      removal, ``eps = finfo(reference dtype).eps`` added to the projection's numerator and denominator and to both
      energies, no clipping: ``α = (eps + ⟨s, ŝ⟩) / (‖s‖² + eps)``, ``10·log10((eps + ‖αs‖²) / (eps + ‖ŝ − αs‖²))``.
      The same formula as torchmetrics' ``scale_invariant_signal_distortion_ratio(zero_mean=False)``.

    Invariant to rescaling ŝ (up to the eps terms).
    """
    s, e = _as_pair(reference, estimate)
    return _shape_out(_Plain(s, [e]).si_sdr(1, _checked_convention(convention)), s.shape[:-1])


def si_sdri(reference, estimate, mixture, convention: str = "zero-mean"):
    """SI-SDR improvement ``si_sdr(s, ŝ) − si_sdr(s, mixture)`` under one ``convention``."""
    s, e = _as_pair(reference, estimate)
    _, x = _as_pair(reference, mixture)
    plain, convention = _Plain(s, [e, x]), _checked_convention(convention)
    return _shape_out(plain.si_sdr(1, convention) - plain.si_sdr(2, convention), s.shape[:-1])


def bss_sdr(reference, estimate, filter_length: int = DEFAULT_FILTER_LENGTH):
    r"""BSS-Eval (v3/v4) single-source SDR with a ``filter_length``-tap time-invariant distortion filter.

    ŝ is projected onto the span of ``s`` delayed by 0..L−1 samples: ``P ŝ = Σ_k c_k s[t−k]`` with ``R c = b``,
    ``R`` the Toeplitz autocorrelation of ``s`` and ``b`` the cross-correlation of ``s`` and ŝ (lags 0..L−1, computed
    with FFTs, no circular wrap). ``SDR = 10·log10(‖P ŝ‖² / (‖ŝ‖² − ‖P ŝ‖²))``, clipped to ``±CAP_DB``.

    Equals ``mir_eval.separation.bss_eval_sources`` (one source) and torchmetrics'
    ``signal_distortion_ratio(filter_length=512)`` — checked to 0.01 dB in tests/evaluation/test_metrics.py. The
    Toeplitz systems are solved by Levinson's recursion (scipy.linalg.solve_toeplitz), estimate and mixture together.
    """
    s, e = _as_pair(reference, estimate)
    return _shape_out(_bss_sdr_rows(_rows(s), [_rows(e)], filter_length)[0], s.shape[:-1])


def bss_sdri(reference, estimate, mixture, filter_length: int = DEFAULT_FILTER_LENGTH):
    """BSS-Eval SDR improvement ``bss_sdr(s, ŝ) − bss_sdr(s, mixture)`` (shares the reference's FFT and solve)."""
    s, e = _as_pair(reference, estimate)
    _, x = _as_pair(reference, mixture)
    est, mix = _bss_sdr_rows(_rows(s), [_rows(e), _rows(x)], filter_length)
    return _shape_out(est - mix, s.shape[:-1])


SI_SDR_CONVENTIONS: dict[str, str] = {
    "zero-mean": "scale-invariant SDR of the zero-mean signals, clipped to ±100 dB (lassbench; Le Roux et al. 2019)",
    "audiosep": "scale-invariant SDR, no mean removal, eps = finfo(dtype).eps added to the projection and to both "
                "energies, unclipped: AudioSep utils.calculate_sisdr (AudioSep, DCASE2024 evaluators), the same "
                "formula as torchmetrics scale_invariant_signal_distortion_ratio(zero_mean=False) (CLAPSep)",
}


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
        Metric("si_sdr", si_sdr, False, "absolute SI-SDR (AudioSep's 'SISDR' column); by protocol: "),
        Metric("si_sdri", si_sdri, True, "si_sdr(s, ŝ) - si_sdr(s, mixture); si_sdr by protocol: "),
        Metric("si_sdr_zm", si_sdr, False, SI_SDR_CONVENTIONS["zero-mean"]),
        Metric("si_sdri_zm", si_sdri, True, "si_sdr_zm(s, ŝ) - si_sdr_zm(s, mixture)"),
        Metric("bss_sdr", bss_sdr, False, "BSS-Eval SDR with a 512-tap distortion filter, as mir_eval "
               "bss_eval_sources / torchmetrics signal_distortion_ratio (CLAPSep's 'SDR')"),
        Metric("bss_sdri", bss_sdri, True, "bss_sdr(s, ŝ) - bss_sdr(s, mixture)"),
    )
}
DEFAULT_METRICS: tuple[str, ...] = ("sdr", "sdri", "si_sdr", "si_sdri")


def definition(name: str, convention: str = "zero-mean") -> str:
    """What metric ``name`` means under an SI-SDR ``convention`` (the text summary.json records)."""
    text = METRICS[name].definition
    return text + SI_SDR_CONVENTIONS[_checked_convention(convention)] if name in ("si_sdr", "si_sdri") else text


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
                    filter_length: int = DEFAULT_FILTER_LENGTH, convention: str = "zero-mean") -> dict[str, np.ndarray]:
    """Several metrics of one batch in as few passes as possible (each base quantity is computed once).

    ``convention`` is the SI-SDR definition of the ``si_sdr``/``si_sdri`` columns (:data:`SI_SDR_CONVENTIONS`;
    ``si_sdr_zm`` is always zero-mean). Returns ``{name: float64 array of shape (...)}`` (numpy scalars for 1-D
    input).
    """
    names = resolve_metrics(list(metrics))
    convention = _checked_convention(convention)
    s, e = _as_pair(reference, estimate)
    x = None if mixture is None else _as_pair(reference, mixture)[1]
    if x is None and any(METRICS[n].needs_mixture for n in names):
        needing = [n for n in names if METRICS[n].needs_mixture]
        raise ValueError(f"metric(s) {', '.join(needing)} need the mixture")
    signals = [e] if x is None else [e, x]
    stems = {_stem(n) for n in names}
    plain = _Plain(s, signals, sums="si_sdr_zm" in stems or ("si_sdr" in stems and convention == "zero-mean"))
    bss = _bss_sdr_rows(_rows(s), [_rows(v) for v in signals], filter_length) if "bss_sdr" in stems else []

    def base(stem: str, k: int) -> np.ndarray:  # metric ``stem`` of signal k (1 = estimate, 2 = mixture)
        if stem == "bss_sdr":
            return bss[k - 1]
        if stem == "sdr":
            return plain.sdr(k)
        return plain.si_sdr(k, "zero-mean" if stem == "si_sdr_zm" else convention)

    out = {}
    for name in names:
        stem = _stem(name)
        value = base(stem, 1) - base(stem, 2) if METRICS[name].needs_mixture else base(stem, 1)
        out[name] = _shape_out(value, s.shape[:-1])
    return out


def _stem(name: str) -> str:
    """The base metric an improvement metric subtracts: ``si_sdri_zm`` -> ``si_sdr_zm``."""
    return name.replace("sdri", "sdr")


def _checked_convention(convention: str) -> str:
    if convention not in SI_SDR_CONVENTIONS:
        raise ValueError(f"unknown SI-SDR convention {convention!r}; known: {', '.join(SI_SDR_CONVENTIONS)}")
    return convention


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


class _Plain:
    """sdr and si_sdr of several signals against one reference batch, from one float64 pass over the samples.

    Inner products ``⟨s, x_k⟩``, energies ``‖x_k‖²`` and (for zero-mean) sums ``Σ x_k`` give every plain metric
    by algebra — ``‖x − αs‖² = ‖x‖² − 2α⟨s, x⟩ + α²‖s‖²`` — without materialising error signals. That identity
    cancels catastrophically when the residual is tiny next to the energies (an estimate within ~40 dB of the
    scaled reference, or a signal that is mostly DC): such rows are recomputed directly from the samples in
    float64, so every row keeps ~1e-9 dB of the direct formula while typical rows cost a single pass.
    """

    def __init__(self, s: np.ndarray, others: list[np.ndarray], sums: bool = True):
        self.s, self.others = _rows(s), [_rows(o) for o in others]
        self.n = s.shape[-1]
        # AudioSep: eps = np.finfo(ref.dtype).eps, so float32 audio gets float32's eps
        self.eps = float(np.finfo(s.dtype).eps) if np.issubdtype(s.dtype, np.floating) else _F64_EPS
        self.cross, self.energy, self.total = _inner_products(self.s, self.others, sums)

    def sdr(self, k: int) -> np.ndarray:
        """sdr of signal ``k`` (1-based: 1 = first of ``others``) against the reference."""
        ss, se, ee = self.energy[:, 0], self.cross[:, k], self.energy[:, k]
        residual = np.maximum(ss - 2.0 * se + ee, 0.0)
        for row in np.flatnonzero(residual < _CANCELLATION * (ss + ee)):
            residual[row] = _residual_energy(self.s[row], self.others[k - 1][row], 1.0)
        # AudioSep clips the *mean* powers (not sums) at 1e-10, so the floor does not depend on the clip length.
        return 10.0 * np.log10(np.maximum(ss / self.n, SDR_EPS) / np.maximum(residual / self.n, SDR_EPS))

    def si_sdr(self, k: int, convention: str) -> np.ndarray:
        if convention == "audiosep":
            return self._si_sdr_audiosep(k)
        return self._si_sdr_zero_mean(k)

    def _si_sdr_audiosep(self, k: int) -> np.ndarray:
        ss, se, ee, eps = self.energy[:, 0], self.cross[:, k], self.energy[:, k], self.eps
        alpha = (eps + se) / (ss + eps)
        residual = np.maximum(ee - 2.0 * alpha * se + alpha**2 * ss, 0.0)
        for row in np.flatnonzero(residual < _CANCELLATION * ee):
            residual[row] = _residual_energy(self.s[row], self.others[k - 1][row], alpha[row])
        return 10.0 * np.log10((eps + alpha**2 * ss) / (eps + residual))

    def _si_sdr_zero_mean(self, k: int) -> np.ndarray:
        n, s_sum, e_sum = self.n, self.total[:, 0], self.total[:, k]
        ss, se, ee = self.energy[:, 0], self.cross[:, k], self.energy[:, k]
        # Σ(s−s̄)(ŝ−ŝ̄) = Σsŝ − Σs·Σŝ/n: no second pass over the samples
        ssc, sec, eec = ss - s_sum**2 / n, se - s_sum * e_sum / n, ee - e_sum**2 / n
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(ssc > 0, sec / np.where(ssc > 0, ssc, 1.0), 0.0)  # silent s: no projection
        target, residual = alpha * sec, np.maximum(eec - alpha * sec, 0.0)  # ‖αs‖², ‖ŝ − αs‖² by Pythagoras
        rough = (ssc < _CANCELLATION * ss) | (eec < _CANCELLATION * ee) | (residual < _CANCELLATION * eec)
        for row in np.flatnonzero(rough):
            target[row], residual[row] = _zero_mean_direct(self.s[row], self.others[k - 1][row], s_sum[row] / n,
                                                           e_sum[row] / n)
        return _clipped_db(target, residual)


_CANCELLATION = 1e-4  # residual / energy below which the algebraic residual loses digits: recompute it directly
_F64_EPS = float(np.finfo(np.float64).eps)


def _inner_products(s: np.ndarray, others: list[np.ndarray], sums: bool):
    """``cross[r, k] = ⟨s, x_k⟩``, ``energy[r, k] = ‖x_k‖²``, ``total[r, k] = Σ x_k`` (``x_0 = s``), float64.

    Each row is cast once, one time block at a time, into a reused float64 buffer (fresh float64 copies of every
    row cost page faults that dominated the time), then a few BLAS calls read it from cache. Only the products
    the metrics need are formed (no estimate × mixture term). BLAS runs single-threaded here: OpenBLAS threads
    its dot products, and on a loaded machine those threads wait on each other (5-50x slower, measured).
    """
    signals = [s, *others]
    rows, n = s.shape
    count = len(signals)
    cross, energy, total = (np.zeros((rows, count)) for _ in range(3))
    # equal blocks: 10 s at 32 kHz is 2 x 160,000 samples, not 131,072 + 131,072 + 57,856 (6-10% faster, measured)
    block = max(1, -(-n // max(1, -(-n // _TIME_BLOCK))))
    buffer = np.empty((count, block))
    spans = [(start, min(start + block, n)) for start in range(0, n, block)]
    views = [buffer[:, : stop - start] for start, stop in spans]  # made once: per-block Python work is ~7% of it
    with threadpool_limits(1, user_api="blas"):
        for row in range(rows):
            row_cross, row_energy, row_total = [0.0] * count, [0.0] * count, [0.0] * count
            samples = [x[row] for x in signals]
            for (start, stop), view in zip(spans, views, strict=True):
                for i in range(count):
                    np.copyto(view[i], samples[i][start:stop])  # a product of two float32 samples is exact in float64
                reference = view[0]
                # one dot per signal, never a matrix product: gemv may round rows by different kernels, and an
                # estimate equal to the mixture must score exactly the mixture's value (SDRi exactly 0)
                for i in range(count):
                    v = view[i]
                    row_cross[i] += float(v @ reference)
                    if i:
                        row_energy[i] += float(v @ v)
                    if sums:  # numpy's SIMD loop while the block is in cache (a (k, n) .sum() was slower)
                        row_total[i] += float(np.einsum("i->", v))
            cross[row], energy[row], total[row] = row_cross, row_energy, row_total
    energy[:, 0] = cross[:, 0]
    return cross, energy, total


def _dot(a: np.ndarray, b: np.ndarray) -> np.floating:
    """Σ a·b of two 1-D float64 arrays with numpy's own SIMD loop. Not BLAS: OpenBLAS threads its dot, and on a
    loaded machine (other processes on the cores) those threads wait on each other — 5-50x slower, measured."""
    return np.einsum("i,i->", a, b)


def _residual_energy(s: np.ndarray, x: np.ndarray, alpha: float) -> float:
    """``‖x − α s‖²`` summed directly in float64, block by block."""
    total = 0.0
    for start in range(0, s.size, _TIME_BLOCK):
        d = x[start : start + _TIME_BLOCK].astype(np.float64) - alpha * s[start : start + _TIME_BLOCK]
        total += float(_dot(d, d))
    return total


def _zero_mean_direct(s: np.ndarray, x: np.ndarray, s_mean: float, x_mean: float) -> tuple[float, float]:
    """``(‖αs̃‖², ‖x̃ − αs̃‖²)`` of the mean-removed signals, summed directly in float64 (two passes)."""
    ss = sx = 0.0
    for start in range(0, s.size, _TIME_BLOCK):
        a = s[start : start + _TIME_BLOCK].astype(np.float64) - s_mean
        b = x[start : start + _TIME_BLOCK].astype(np.float64) - x_mean
        ss, sx = ss + float(_dot(a, a)), sx + float(_dot(a, b))
    alpha = sx / ss if ss > 0 else 0.0
    residual = 0.0
    for start in range(0, s.size, _TIME_BLOCK):
        a = s[start : start + _TIME_BLOCK].astype(np.float64) - s_mean
        d = (x[start : start + _TIME_BLOCK].astype(np.float64) - x_mean) - alpha * a
        residual += float(_dot(d, d))
    return alpha * sx, residual


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
    scratch: dict[str, np.ndarray] = {}  # zero-padded buffers reused by every chunk: no fresh pages to fault in
    for start in range(0, n_rows, _FFT_CHUNK_ROWS):
        rows = slice(start, start + _FFT_CHUNK_ROWS)
        auto[rows], cross[rows], total[rows] = _correlations(s[rows], [e[rows] for e in estimates], length,
                                                             scratch)
    silent = auto[:, 0] <= 0
    auto[silent, 0] = 1.0  # no projection exists onto a silent reference; solve a dummy system, zero its result
    cross[silent] = 0.0
    filters = _toeplitz_solve(auto, cross)
    projected = np.maximum(np.einsum("brl,brl->br", cross, filters), 0.0)  # ‖P ŝ‖² = bᵀ R⁻¹ b
    # ‖ŝ − P ŝ‖² = ‖ŝ‖² − ‖P ŝ‖² (orthogonal projection), as torchmetrics' coh / (1 − coh)
    return [_clipped_db(projected[:, k], np.maximum(total[:, k] - projected[:, k], 0.0))
            for k in range(len(estimates))]


def _correlations(
    s: np.ndarray, estimates: list[np.ndarray], length: int, scratch: dict[str, np.ndarray] | None = None
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
    scratch = {} if scratch is None else scratch

    def reused(key: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        """A buffer kept in ``scratch``, zero-initialised once (callers only ever write where they wrote before)."""
        if key not in scratch or scratch[key].shape[1:] != shape[1:] or len(scratch[key]) < shape[0]:
            scratch[key] = np.zeros(shape, dtype)
        return scratch[key][: shape[0]]

    blocks = reused("blocks", (rows, n_blocks, n_fft))
    _cut_into_blocks(s, blocks, block)  # straight from the float32 rows: one cast, no padded copy
    spectra = _rfft_into(blocks, reused("reference spectra", (rows, n_blocks, n_fft // 2 + 1), np.complex128))
    auto = _block_autocorrelation(blocks[:, :, :block], spectra, n_fft, length)
    np.conjugate(spectra, out=spectra)  # in place: no fresh 11 MB per chunk
    e_spectra = reused("estimate spectra", spectra.shape, np.complex128)
    cross, totals = [], []
    for k, e in enumerate(estimates):
        padded = reused(f"estimate{k}", (rows, n_blocks * block + n_fft))
        padded[:, :n] = e  # the tail beyond n stays zero
        windows = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::block][:, :n_blocks]
        summed = np.einsum("bjf,bjf->bf", _rfft_into(windows, e_spectra), spectra)
        cross.append(scipy.fft.irfft(summed, n=n_fft, axis=-1)[:, :length])
        totals.append(np.einsum("ij,ij->i", padded, padded))
    return auto, np.stack(cross, axis=1), np.stack(totals, axis=1)


def _cut_into_blocks(s: np.ndarray, blocks: np.ndarray, block: int) -> None:
    """Row ``r``'s samples ``[jM, (j+1)M)`` into ``blocks[r, j, :M]`` (``M = block``); the rest of each block is
    zero (the last block's unused samples are zeroed here: the buffer is reused across chunks)."""
    rows, n = s.shape
    full = n // block
    blocks[:, :full, :block] = s[:, : full * block].reshape(rows, full, block)
    if full < blocks.shape[1]:
        tail = n - full * block
        blocks[:, full, :tail] = s[:, full * block :]
        blocks[:, full, tail:block] = 0.0


def _rfft_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Real FFT of the last axis into ``out``: numpy >= 2 writes there (a fresh complex output per chunk cost ~10%
    of bss_sdr, measured); older numpy returns a new array, copied."""
    try:
        return np.fft.rfft(x, axis=-1, out=out)
    except TypeError:  # numpy < 2: no ``out``
        out[...] = scipy.fft.rfft(x, axis=-1, workers=_FFT_WORKERS)
        return out


def _block_autocorrelation(blocks: np.ndarray, spectra: np.ndarray, n_fft: int, length: int) -> np.ndarray:
    """Autocorrelation (lags ``< length``) of the signal cut into ``blocks`` ``(rows, j, M)``, from their spectra.

    ``Σ_j |S_j|²`` gives each block's own linear autocorrelation (``N ≥ M + length − 1``: no wrap); the pairs that
    straddle a boundary only involve the last ``length − 1`` samples of block ``j`` and the first ``length − 1`` of
    block ``j + 1``, correlated with short FFTs. That replaces a full pass of window FFTs over the reference.
    """
    rows, _, size = blocks.shape
    pairs = spectra.view(np.float64)  # |S|² = re² + im²: a real product, half the work of S·conj(S)
    within = np.einsum("bjf,bjf->bf", pairs, pairs).reshape(rows, -1, 2).sum(axis=-1)
    auto = scipy.fft.irfft(within, n=n_fft, axis=-1)[:, :length]
    tail = length - 1
    if tail == 0 or blocks.shape[1] < 2:
        return auto
    n_short = 1 << (2 * tail - 1).bit_length()  # ≥ 2·tail: negative lags do not wrap onto positive ones
    tails = scipy.fft.rfft(blocks[:, :-1, size - tail :], n=n_short, axis=-1, workers=_FFT_WORKERS)
    heads = scipy.fft.rfft(blocks[:, 1:, :tail], n=n_short, axis=-1, workers=_FFT_WORKERS)
    straddling = scipy.fft.irfft(np.einsum("bjf,bjf->bf", np.conj(tails), heads), n=n_short, axis=-1)
    # straddling[m] = Σ_u tail[u]·head[u + m]; lag k pairs tail[u] with head[u + k − (length − 1)]
    return auto + straddling[:, (np.arange(length) - tail) % n_short]


def _toeplitz_solve(r: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Solve ``T(r) x = y`` for symmetric positive-semidefinite Toeplitz ``T(r)`` (first column ``r``), per item.

    ``r``: ``(B, L)``; ``y``: ``(B, R, L)`` (R right-hand sides sharing a matrix). scipy's compiled Levinson
    recursion, O(L²) instead of LU's O(L³): 1.4-1.6 ms per item at L = 512, 3x faster than the same recursion
    vectorised over a batch of 32 in numpy (measured; one Python step per order cost more than the arithmetic).
    Levinson is unstable when ``T`` is near-singular (a reference that is a pure tone spans few dimensions): its
    answer is checked by one Toeplitz product and, where it does not solve the system, replaced by the
    minimum-norm least-squares solution, whose ``bᵀx`` is still the energy of the projection.
    """
    out = np.empty(y.shape)
    for b in range(r.shape[0]):
        try:
            out[b] = scipy.linalg.solve_toeplitz(r[b], y[b].T).T
            solved = _solves(r[b], out[b], y[b])
        except np.linalg.LinAlgError:  # a singular leading minor stops Levinson
            solved = False
        if not solved:
            out[b] = np.linalg.lstsq(scipy.linalg.toeplitz(r[b]), y[b].T, rcond=None)[0].T
    return out


def _solves(r: np.ndarray, x: np.ndarray, y: np.ndarray, tolerance: float = 1e-6) -> bool:
    """Whether ``x`` (``(R, L)``) solves ``T(r) xᵀ = yᵀ`` to ``tolerance`` relative to ``y``'s norm."""
    if not np.all(np.isfinite(x)):
        return False
    residual = scipy.linalg.matmul_toeplitz(r, x.T) - y.T
    return bool(np.linalg.norm(residual) <= tolerance * max(np.linalg.norm(y), np.finfo(np.float64).tiny))
