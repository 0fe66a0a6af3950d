import math

import numpy as np
import pyloudnorm
import pytest

from lassbench.errors import LassbenchError
from lassbench.mixing import ItemSpec, fit_length, integrated_loudness, render

SR = 16000


def _noise(seed: int, seconds: float = 3.0, level: float = 0.1, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * sr)) * level
    return x * (0.3 + np.abs(np.sin(np.linspace(0, 7, x.shape[0]))))  # not stationary: gating matters


def _tone(freq: float, seconds: float = 3.0, level: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return level * np.sin(2 * np.pi * freq * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)


def _spec(rule: str, snrs, **kwargs) -> ItemSpec:
    ids = tuple(f"n{k}" for k in range(len(snrs)))
    return ItemSpec(item_id="x", split="test", target_id="t", interferer_ids=ids, query="q", captions=("q",),
                    labels=(), rule=rule, snr_db=tuple(snrs), **kwargs)


@pytest.mark.parametrize("sr,seconds", [(16000, 3.0), (32000, 10.0), (44100, 0.5), (22050, 1.37)])
def test_integrated_loudness_equals_pyloudnorm(sr, seconds):
    x = _noise(1, seconds, sr=sr)
    x[: x.shape[0] // 4] = 0.0
    assert integrated_loudness(x, sr) == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(x), abs=1e-9)


def test_silence_has_minus_infinite_loudness():
    assert integrated_loudness(np.zeros(SR), SR) == -math.inf


def test_audio_shorter_than_the_gating_block_is_rejected():
    with pytest.raises(LassbenchError, match="0.4 s loudness gate"):
        integrated_loudness(np.ones(int(0.39 * SR)) * 0.1, SR)


def test_loudness_rule_hits_the_requested_target_loudness_and_snr():
    audio = {"t": _tone(440.0), "n0": _noise(2)}
    loudness = {k: integrated_loudness(v, SR) for k, v in audio.items()}
    item = render(_spec("loudness", [3.7], target_lufs=-27.0), audio, loudness)
    meter = pyloudnorm.Meter(SR)
    target_lufs = meter.integrated_loudness(item.target.astype(np.float64))
    noise_lufs = meter.integrated_loudness(item.interferers[0].astype(np.float64))
    assert item.gain == 1.0
    assert target_lufs == pytest.approx(-27.0, abs=0.1)
    assert target_lufs - noise_lufs == pytest.approx(3.7, abs=0.1)
    assert item.snr_db == pytest.approx(3.7)


def test_loudness_rule_applies_one_recorded_gain_when_the_mixture_would_clip():
    audio = {"t": _tone(440.0), "n0": _noise(2), "n1": _noise(3)}
    loudness = {k: integrated_loudness(v, SR) for k, v in audio.items()}
    item = render(_spec("loudness", [-2.0, 1.0], target_lufs=-3.0), audio, loudness)
    assert item.gain < 1.0
    assert np.abs(item.mixture).max() == pytest.approx(0.99, abs=1e-6)
    shift = 20 * math.log10(item.gain)
    measured = pyloudnorm.Meter(SR).integrated_loudness(item.target.astype(np.float64))
    assert item.target_lufs == pytest.approx(-3.0 + shift)
    assert measured == pytest.approx(item.target_lufs, abs=0.1)
    assert item.interferer_lufs == pytest.approx([-1.0 + shift, -4.0 + shift])


def test_mixture_is_the_sum_of_the_written_parts_for_every_rule():
    audio = {"t": _tone(440.0), "n0": _noise(2), "n1": _noise(3)}
    loudness = {k: integrated_loudness(v, SR) for k, v in audio.items()}
    for rule, extra in [("loudness", {"target_lufs": -20.0}), ("energy_snr", {}), ("peak_snr", {}),
                        ("energy_gain", {"mix_db": 4.0})]:
        item = render(_spec(rule, [0.0, 5.0], **extra), audio, loudness)
        np.testing.assert_allclose(item.mixture, item.target + sum(item.interferers), atol=1e-6)


def test_energy_snr_rule_matches_the_dcase_formula():
    target, noise = _tone(300.0, level=0.1), _noise(4)
    item = render(_spec("energy_snr", [6.0]), {"t": target, "n0": noise})
    scale = np.sqrt(np.mean(target**2) / 10 ** (6.0 / 10) / np.mean(noise**2))
    expected = target + scale * noise
    assert np.abs(expected).max() <= 1.0 and item.gain == 1.0
    np.testing.assert_allclose(item.mixture, expected, atol=1e-6)
    assert item.snr_db == 6.0


def test_energy_snr_rule_declips_target_and_mixture_to_0_9():
    target, noise = _tone(300.0, level=0.9), _noise(4)
    item = render(_spec("energy_snr", [-10.0]), {"t": target, "n0": noise})
    scale = np.sqrt(np.mean(target**2) / 10 ** (-10.0 / 10) / np.mean(noise**2))
    mixture = target + scale * noise
    factor = 0.9 / np.abs(mixture).max()
    np.testing.assert_allclose(item.mixture, mixture * factor, atol=1e-6)
    np.testing.assert_allclose(item.target, target * factor, atol=1e-6)
    assert item.gain == pytest.approx(factor)


def test_peak_snr_rule_peak_normalises_then_scales_the_mixture_to_peak_one():
    target, noise = _tone(300.0, level=0.2), _noise(5)
    item = render(_spec("peak_snr", [0.0]), {"t": target, "n0": noise})
    mixture = target / np.abs(target).max() + noise / np.abs(noise).max()
    np.testing.assert_allclose(item.mixture, mixture / np.abs(mixture).max(), atol=1e-6)
    assert np.abs(item.mixture).max() == pytest.approx(1.0)
    assert np.abs(item.target).max() == pytest.approx(np.abs(item.interferers[0]).max(), rel=1e-6)


def test_peak_snr_rule_scales_by_the_largest_peak_when_the_clips_cancel():
    # voicefixer's unify_energy divides by max(|mixture|, |noise|, |target|): where the two clips cancel at their
    # peaks the mixture stays below 1 and the target is not pushed above 1
    target = np.array([1.0, 0.3, -0.2, 0.1] * 2000)
    noise = np.array([-1.0, 0.3, 0.2, -0.1] * 2000)
    item = render(_spec("peak_snr", [0.0]), {"t": target, "n0": noise})
    assert item.gain == pytest.approx(1.0)
    np.testing.assert_allclose(item.target, target, atol=1e-7)
    np.testing.assert_allclose(item.interferers[0], noise, atol=1e-7)
    np.testing.assert_allclose(item.mixture, target + noise, atol=1e-7)
    assert np.abs(item.mixture).max() == pytest.approx(0.6)


def test_energy_gain_rule_realises_minus_the_gain_as_energy_snr():
    target, noise = _tone(300.0, level=0.1), _noise(6, level=0.05)
    item = render(_spec("energy_gain", [7.0], mix_db=-4.0), {"t": target, "n0": noise})
    assert item.snr_db == pytest.approx(4.0, abs=1e-6)


def test_interferers_are_cropped_or_padded_to_the_target_length():
    audio = {"t": _tone(300.0, seconds=2.0), "n0": _noise(7, seconds=3.0), "n1": _noise(8, seconds=1.0)}
    item = render(_spec("energy_snr", [0.0, 0.0]), audio)
    assert [x.shape[0] for x in item.interferers] == [2 * SR, 2 * SR]
    assert fit_length(np.ones(3), 5).tolist() == [1, 1, 1, 0, 0]


def test_loudness_rule_refuses_a_silent_source():
    audio = {"t": _tone(300.0), "n0": np.zeros(3 * SR)}
    with pytest.raises(LassbenchError, match="silent"):
        render(_spec("loudness", [0.0], target_lufs=-23.0), audio, {"t": -20.0, "n0": -math.inf})


def test_unknown_rule_and_missing_audio_are_errors():
    with pytest.raises(LassbenchError, match="unknown mixing rule"):
        _spec("median", [0.0])
    with pytest.raises(LassbenchError, match="no audio for source"):
        render(_spec("energy_snr", [0.0]), {"t": _tone(300.0)})
