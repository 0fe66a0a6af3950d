"""lassbench.metrics against float64 references written here, mir_eval and torchmetrics, plus properties."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import butter, lfilter

from lassbench import metrics
from lassbench.summary import declared_si_sdr_convention


def reference_sdr(s: np.ndarray, e: np.ndarray) -> float:
    """AudioSep utils.calculate_sdr semantics, in float64."""
    s, e = s.astype(np.float64), e.astype(np.float64)
    return 10 * np.log10(max(np.mean(s**2), 1e-10) / max(np.mean((e - s) ** 2), 1e-10))


def reference_si_sdr(s: np.ndarray, e: np.ndarray, zero_mean: bool = True) -> float:
    s, e = s.astype(np.float64), e.astype(np.float64)
    if zero_mean:
        s, e = s - s.mean(), e - e.mean()
    target = (s @ e) / (s @ s) * s
    return 10 * np.log10(np.sum(target**2) / np.sum((e - target) ** 2))


def signals(kind: str, n: int, rng: np.random.Generator, sample_rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """A (reference, estimate) pair: white noise, low-passed noise, or a tone plus noise."""
    t = np.arange(n) / sample_rate
    if kind == "white":
        s = rng.standard_normal(n) * 0.1
    elif kind == "filtered":
        b, a = butter(4, 0.05)
        s = lfilter(b, a, rng.standard_normal(n))
    else:
        s = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(n)
    e = lfilter([0.9, 0.2, -0.05], [1.0], s) + 0.05 * rng.standard_normal(n) * np.std(s)
    return s.astype(np.float32), e.astype(np.float32)


@pytest.mark.parametrize("kind", ["white", "filtered", "tone"])
def test_sdr_and_si_sdr_equal_a_float64_reference_to_a_micro_decibel(kind):
    rng = np.random.default_rng(1)
    s, e = signals(kind, 48000, rng)
    assert metrics.sdr(s, e) == pytest.approx(reference_sdr(s, e), abs=1e-6)
    assert metrics.si_sdr(s, e) == pytest.approx(reference_si_sdr(s, e), abs=1e-6)
    assert metrics.si_sdr(s, e, "audiosep") == pytest.approx(reference_si_sdr(s, e, False), abs=1e-6)


def test_batched_input_scores_each_row_like_the_single_item_call():
    rng = np.random.default_rng(2)
    pairs = [signals(kind, 8000, rng) for kind in ("white", "filtered", "tone", "white")]
    s = np.stack([p[0] for p in pairs]).reshape(2, 2, -1)
    e = np.stack([p[1] for p in pairs]).reshape(2, 2, -1)
    batched = metrics.si_sdr(s, e)
    assert batched.shape == (2, 2) and batched.dtype == np.float64
    singles = np.array([metrics.si_sdr(a, b) for a, b in pairs]).reshape(2, 2)
    np.testing.assert_allclose(batched, singles, atol=1e-9)


def test_torch_tensors_are_accepted_and_give_numpy_floats():
    rng = np.random.default_rng(3)
    s, e = signals("white", 4000, rng)
    value = metrics.sdr(torch.from_numpy(s), torch.from_numpy(e))
    assert isinstance(value, float) and value == pytest.approx(reference_sdr(s, e), abs=1e-6)


def audiosep_si_sdr(s: np.ndarray, e: np.ndarray) -> float:
    """AudioSep utils.calculate_sisdr's formula, written independently here, every sum in float64."""
    eps = np.finfo(s.dtype).eps  # of the input dtype, as AudioSep
    s, e = s.astype(np.float64), e.astype(np.float64)
    a = (eps + s @ e) / (s @ s + eps)
    return 10 * np.log10((eps + np.sum((a * s) ** 2)) / (eps + np.sum((e - a * s) ** 2)))


def golden_signals(n: int = 16000, rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form signals (no RNG), the inputs of the committed golden values below."""
    t = np.arange(n) / rate
    s = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t + 0.3)
    return s, 0.05 * np.sin(2 * np.pi * 3000 * t) * np.cos(2 * np.pi * 3 * t)


# AudioSep 944583f utils.calculate_sisdr, run once on golden_signals() (float32 inputs, as librosa loads them);
# the function itself is not in this repository.
GOLDEN_AUDIOSEP_SI_SDR = {
    "estimate_with_dc": (lambda s, w: (s, 0.8 * s + w + 0.01), 21.071971893310547),
    "target_plus_dc": (lambda s, w: (s, s + 0.01), 31.613521575927734),
    "scaled_with_dc": (lambda s, w: (s, 0.5 * s + 0.02), 19.57241439819336),
    "silent_estimate": (lambda s, w: (s, 0 * s), 0.0),
    "offset_reference": (lambda s, w: (s + 0.05, s + w), 16.65016746520996),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_AUDIOSEP_SI_SDR))
def test_audiosep_si_sdr_equals_audioseps_own_calculate_sisdr_on_dc_offsets(case):
    make, official = GOLDEN_AUDIOSEP_SI_SDR[case]
    s, e = (x.astype(np.float32) for x in make(*golden_signals()))
    assert metrics.si_sdr(s, e, "audiosep") == pytest.approx(official, abs=1e-4)  # theirs sums in float32
    assert metrics.si_sdr(s, e, "audiosep") == pytest.approx(audiosep_si_sdr(s, e), abs=1e-6)


def test_audiosep_si_sdr_differs_from_the_zero_mean_one_where_the_estimate_has_a_dc_offset():
    s, _ = golden_signals()
    s = s.astype(np.float32)
    assert metrics.si_sdr(s, s + np.float32(0.01)) == metrics.CAP_DB  # zero-mean: the offset vanishes
    assert metrics.si_sdr(s, s + np.float32(0.01), "audiosep") == pytest.approx(31.6135, abs=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_audiosep_si_sdr_equals_an_independent_float64_implementation_on_batches(dtype):
    rng = np.random.default_rng(4)
    pairs = [signals(kind, 16000, rng) for kind in ("white", "filtered", "tone")]
    s = np.stack([p[0] for p in pairs]).astype(dtype)
    e = (np.stack([p[1] for p in pairs]) + rng.uniform(-0.05, 0.05, (3, 1))).astype(dtype)  # DC offsets
    expected = [audiosep_si_sdr(a, b) for a, b in zip(s, e, strict=True)]
    np.testing.assert_allclose(metrics.si_sdr(s, e, "audiosep"), expected, atol=1e-6)


def test_audiosep_si_sdr_is_torchmetrics_scale_invariant_sdr_without_zero_mean():
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    rng = np.random.default_rng(9)
    s, e = signals("filtered", 32000, rng)
    e = e + np.float32(0.02)
    theirs = scale_invariant_signal_distortion_ratio(torch.from_numpy(e).double(), torch.from_numpy(s).double(),
                                                     zero_mean=False)
    # torchmetrics takes eps from its own (here float64) dtype; AudioSep's float32 eps shifts ~1e-10 dB on this pair
    assert metrics.si_sdr(s, e, "audiosep") == pytest.approx(float(theirs), abs=1e-6)


def test_the_si_sdr_columns_follow_the_convention_and_si_sdr_zm_stays_zero_mean():
    rng = np.random.default_rng(10)
    s, e = signals("tone", 8000, rng)
    e = e + np.float32(0.03)
    x = s + rng.standard_normal(s.size).astype(np.float32) * 0.2
    names = ["si_sdr", "si_sdri", "si_sdr_zm", "si_sdri_zm"]
    zm = metrics.compute_metrics(s, e, x, names)
    audiosep = metrics.compute_metrics(s, e, x, names, convention="audiosep")
    assert zm["si_sdr"] == pytest.approx(reference_si_sdr(s, e), abs=1e-6)
    assert audiosep["si_sdr"] == pytest.approx(audiosep_si_sdr(s, e), abs=1e-6)
    assert audiosep["si_sdri"] == pytest.approx(audiosep_si_sdr(s, e) - audiosep_si_sdr(s, x), abs=1e-6)
    for values in (zm, audiosep):
        assert values["si_sdr_zm"] == pytest.approx(reference_si_sdr(s, e), abs=1e-6)
        assert values["si_sdri_zm"] == pytest.approx(reference_si_sdr(s, e) - reference_si_sdr(s, x), abs=1e-6)
    assert abs(audiosep["si_sdr"] - zm["si_sdr"]) > 0.01
    assert declared_si_sdr_convention("dcase2024") == "audiosep"
    assert declared_si_sdr_convention("lassnet") == "zero-mean"
    with pytest.raises(ValueError, match="unknown SI-SDR convention"):
        metrics.si_sdr(s, e, "nope")


@pytest.mark.parametrize("noise", [1e-3, 1e-4, 1e-5, 1e-7])
def test_near_perfect_estimates_keep_a_micro_decibel_where_the_algebra_would_cancel(noise):
    rng = np.random.default_rng(11)
    s, _ = signals("filtered", 48000, rng)
    e = (s + noise * rng.standard_normal(s.size)).astype(np.float32)
    scaled = (0.7 * s + noise * rng.standard_normal(s.size)).astype(np.float32)
    dc = (s + 5.0).astype(np.float32), (s + 5.0 + noise * rng.standard_normal(s.size)).astype(np.float32)
    assert metrics.sdr(s, e) == pytest.approx(reference_sdr(s, e), abs=1e-6)
    capped = min(reference_si_sdr(s, scaled), metrics.CAP_DB)  # the zero-mean convention's ±100 dB clip
    assert metrics.si_sdr(s, scaled) == pytest.approx(capped, abs=1e-6)
    assert metrics.si_sdr(s, scaled, "audiosep") == pytest.approx(audiosep_si_sdr(s, scaled), abs=1e-6)
    mostly_dc = min(reference_si_sdr(*dc), metrics.CAP_DB)
    assert metrics.si_sdr(*dc) == pytest.approx(mostly_dc, abs=1e-6)  # its sums cancel in the algebra


def test_improvement_metrics_subtract_the_mixture_score():
    rng = np.random.default_rng(5)
    s, e = signals("white", 8000, rng)
    x = s + rng.standard_normal(s.size).astype(np.float32) * 0.1
    assert metrics.sdri(s, e, x) == pytest.approx(reference_sdr(s, e) - reference_sdr(s, x), abs=1e-6)
    assert metrics.si_sdri(s, e, x) == pytest.approx(reference_si_sdr(s, e) - reference_si_sdr(s, x), abs=1e-6)


def test_compute_metrics_gives_the_same_numbers_as_the_separate_functions():
    rng = np.random.default_rng(6)
    pairs = [signals("filtered", 6000, rng) for _ in range(3)]
    s, e = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    x = s + 0.3 * rng.standard_normal(s.shape).astype(np.float32)
    together = metrics.compute_metrics(s, e, x, list(metrics.METRICS))
    assert set(together) == set(metrics.METRICS)
    np.testing.assert_allclose(together["sdri"], metrics.sdri(s, e, x), atol=1e-9)
    np.testing.assert_allclose(together["si_sdr"], metrics.si_sdr(s, e), atol=1e-9)
    np.testing.assert_allclose(together["bss_sdri"], metrics.bss_sdri(s, e, x), atol=1e-9)


def test_unknown_metric_names_are_rejected_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown metric.*nope.*known: sdr"):
        metrics.resolve_metrics("sdr,nope")
    assert metrics.resolve_metrics(" SDR, si_sdr ,sdr") == ("sdr", "si_sdr")


def _mir_eval_sdr(s: np.ndarray, e: np.ndarray) -> float:
    from mir_eval.separation import bss_eval_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in mir_eval 0.8
        return float(bss_eval_sources(s[None].astype(np.float64), e[None].astype(np.float64))[0][0])


def _torchmetrics_sdr(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    from torchmetrics.functional.audio import signal_distortion_ratio

    return signal_distortion_ratio(torch.from_numpy(e).double(), torch.from_numpy(s).double()).numpy()


@pytest.mark.parametrize("sample_rate,kind", [(16000, "filtered"), (32000, "tone")])
def test_bss_sdr_equals_mir_eval_and_torchmetrics_on_ten_second_clips(sample_rate, kind):
    rng = np.random.default_rng(sample_rate)
    s, e = signals(kind, 10 * sample_rate, rng, sample_rate)
    ours = metrics.bss_sdr(s, e)
    assert ours == pytest.approx(_mir_eval_sdr(s, e), abs=0.01)
    assert ours == pytest.approx(float(_torchmetrics_sdr(s, e)), abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("sample_rate", [16000, 32000])
def test_bss_sdr_batch_equals_mir_eval_and_torchmetrics_on_several_clips(sample_rate):
    rng = np.random.default_rng(7)
    pairs = [signals(kind, 10 * sample_rate, rng, sample_rate) for kind in ("white", "filtered", "tone", "filtered")]
    s, e = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    ours = metrics.bss_sdr(s, e)
    np.testing.assert_allclose(ours, [_mir_eval_sdr(a, b) for a, b in pairs], atol=0.01)
    np.testing.assert_allclose(ours, _torchmetrics_sdr(s, e), atol=0.01)


@pytest.mark.parametrize("n", [300, 511, 4000, 8193])
def test_bss_sdr_equals_mir_eval_on_short_and_block_boundary_lengths(n):
    rng = np.random.default_rng(n)
    s, e = signals("filtered", n, rng)
    assert metrics.bss_sdr(s, e) == pytest.approx(_mir_eval_sdr(s, e), abs=0.01)


def test_bss_sdr_ignores_a_short_filter_applied_to_the_reference():
    rng = np.random.default_rng(8)
    s = rng.standard_normal(8000)
    filtered = lfilter([1.0, 0.5, 0.25], [1.0], s)  # a distortion inside the 512-tap filter span
    assert metrics.bss_sdr(s, filtered) > 40  # only the truncated filter tail at the very end is "error"
    assert metrics.sdr(s, filtered) < 10


audio = st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=64, max_size=400).filter(
    lambda x: np.sum(np.square(x)) > 1e-3
)


@settings(max_examples=40, deadline=None)
@given(audio, st.integers(0, 2**32 - 1), st.floats(0.01, 100))
def test_si_sdr_is_invariant_to_scaling_the_estimate(reference, seed, scale):
    s = np.array(reference)
    e = s + np.random.default_rng(seed).uniform(-0.5, 0.5, s.size)
    assert metrics.si_sdr(s, scale * e) == pytest.approx(metrics.si_sdr(s, e), abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(audio, st.integers(0, 2**32 - 1))
def test_the_mixture_itself_improves_nothing(reference, seed):
    s = np.array(reference)
    x = s + np.random.default_rng(seed).uniform(-1, 1, s.size)
    result = metrics.compute_metrics(s, x, x, list(metrics.METRICS), filter_length=16)
    for name in ("sdri", "si_sdri", "bss_sdri"):
        assert result[name] == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(audio)
def test_a_perfect_estimate_scores_the_documented_finite_cap(reference):
    s = np.array(reference)
    power = max(np.mean(s**2), metrics.SDR_EPS)
    assert metrics.sdr(s, s) == pytest.approx(10 * np.log10(power / metrics.SDR_EPS), rel=1e-12)
    assert metrics.sdr(s, s) <= 100.0  # any reference within [-1, 1]
    assert metrics.si_sdr(s, s) == metrics.CAP_DB
    assert metrics.bss_sdr(s, s, filter_length=16) == metrics.CAP_DB


def test_silent_signals_give_finite_values_not_nan():
    zeros, ones = np.zeros(1000), np.ones(1000)
    for value in (metrics.sdr(zeros, ones), metrics.si_sdr(zeros, ones), metrics.bss_sdr(zeros, ones),
                  metrics.si_sdr(zeros, zeros), metrics.si_sdr(ones, zeros)):
        assert np.isfinite(value)


def test_bss_batches_across_reused_chunk_buffers_score_each_row_like_a_single_call():
    rng = np.random.default_rng(13)
    pairs = [signals(kind, 9000, rng) for kind in ("white", "filtered", "tone") * 3][:7]  # 2 chunks, the last short
    s, e = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    x = s + 0.5 * rng.standard_normal(s.shape).astype(np.float32)
    batched = metrics.compute_metrics(s, e, x, ["bss_sdr", "bss_sdri"])
    singles = [metrics.compute_metrics(a, b, c, ["bss_sdr", "bss_sdri"]) for a, b, c in zip(s, e, x, strict=True)]
    np.testing.assert_allclose(batched["bss_sdr"], [v["bss_sdr"] for v in singles], atol=1e-9)
    np.testing.assert_allclose(batched["bss_sdri"], [v["bss_sdri"] for v in singles], atol=1e-9)


def _projection_sdr_by_svd(reference: np.ndarray, estimate: np.ndarray, taps: int = 512) -> float:
    """BSS-Eval SDR from first principles: the estimate projected by SVD least squares onto the span of the
    reference's ``taps`` delayed copies (no normal equations, so no squared condition number)."""
    n = len(reference)
    delayed = np.zeros((n + taps - 1, taps))
    for k in range(taps):
        delayed[k : k + n, k] = reference
    padded = np.concatenate([estimate.astype(np.float64), np.zeros(taps - 1)])
    projection = delayed @ np.linalg.lstsq(delayed, padded, rcond=None)[0]
    residual = padded - projection
    return float(10 * np.log10(projection @ projection / (residual @ residual)))


def test_bss_sdr_stays_right_when_the_reference_is_a_pure_tone():
    # A tone spans few dimensions: the 512-tap Toeplitz system is near-singular and Levinson's recursion broke
    # down (-100 dB where the projection gives 7.5 dB); mir_eval's LU solve breaks down too (0.1 dB here).
    rate = 16000
    t = np.arange(2 * rate) / rate
    envelope = np.exp(-((t - 1) ** 2) / 0.1)
    reference = (np.sin(2 * np.pi * 440 * t) * envelope).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(len(t)) * envelope
    estimate = (reference + 0.3 * noise).astype(np.float32)
    expected = _projection_sdr_by_svd(reference.astype(np.float64), estimate)
    assert abs(float(metrics.bss_sdr(reference, estimate)) - expected) < 0.1
    from torchmetrics.functional.audio import signal_distortion_ratio

    torch_value = signal_distortion_ratio(torch.from_numpy(estimate).double(), torch.from_numpy(reference).double())
    assert abs(float(metrics.bss_sdr(reference, estimate)) - float(torch_value)) < 0.1
