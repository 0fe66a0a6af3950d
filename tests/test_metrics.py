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
    assert metrics.si_sdr(s, e, zero_mean=False) == pytest.approx(reference_si_sdr(s, e, False), abs=1e-6)


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


def test_si_sdr_with_zero_mean_false_matches_audioseps_calculate_sisdr_formula():
    rng = np.random.default_rng(4)
    s, e = signals("filtered", 16000, rng)
    eps = np.finfo(s.dtype).eps  # AudioSep: eps of the input dtype added to every term
    a = (eps + s @ e) / (s @ s + eps)
    audiosep = 10 * np.log10((eps + np.sum((a * s) ** 2)) / (eps + np.sum((e - a * s) ** 2)))
    assert metrics.si_sdr(s, e, zero_mean=False) == pytest.approx(audiosep, abs=1e-3)


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
