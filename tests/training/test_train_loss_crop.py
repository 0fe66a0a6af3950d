"""``train --crop active`` and ``--loss snr``: where an example's crop lies, and the thresholded SNR loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lassbench.errors import LassbenchError
from lassbench.train import TrainConfig, check_config, train
from lassbench.train_data import open_training_data
from lassbench.train_examples import _active_crop_offset
from lassbench.train_step import SNR_THRESHOLD, l1_loss, snr_loss

from support.tiny_benchmark import build_tiny_benchmark


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    return build_tiny_benchmark(tmp_path_factory.mktemp("loss-crop"))


def _burst(length: int, start: int, size: int) -> np.ndarray:
    signal = np.zeros(length, dtype=np.float32)
    signal[start:start + size] = np.sin(np.arange(size) * 0.3).astype(np.float32)
    return signal


def test_an_active_crop_holds_the_targets_only_sound_in_each_of_200_draws():
    length, segment, start, size = 160_000, 32_000, 120_000, 4_000  # 0.25 s of sound in 10 s, crops of 2 s
    target = _burst(length, start, size)
    for index in range(200):
        offset = _active_crop_offset(target, segment, np.random.default_rng([0, index, 7]))
        assert 0 <= offset <= length - segment
        assert np.abs(target[offset:offset + segment]).max() > 0.5, offset


def test_active_crops_spread_the_sound_over_the_crop_and_are_a_function_of_the_generator():
    length, segment = 160_000, 32_000
    target = _burst(length, 80_000, 2_000)
    offsets = [_active_crop_offset(target, segment, np.random.default_rng([0, i, 7])) for i in range(300)]
    assert offsets == [_active_crop_offset(target, segment, np.random.default_rng([0, i, 7])) for i in range(300)]
    where = [80_000 - offset for offset in offsets]  # the sound's place inside its crop
    assert min(where) < segment * 0.1 and max(where) > segment * 0.8  # not always centred


def test_a_silent_or_short_target_falls_back_to_a_uniform_crop():
    rng = lambda: np.random.default_rng([3, 1, 7])  # noqa: E731
    silent = np.zeros(50_000, dtype=np.float32)
    uniform = int(rng().integers(0, 50_000 - 8_000 + 1))
    assert _active_crop_offset(silent, 8_000, rng()) == uniform
    assert _active_crop_offset(np.ones(6_000, dtype=np.float32), 8_000, rng()) == 0


def test_uniform_crops_of_a_real_like_corpus_often_miss_the_target_and_active_ones_never(tiny_benchmark,
                                                                                          monkeypatch):
    """The patched reader turns every clip of tiny_benchmark into one short burst in silence."""
    import lassbench.train_examples as td

    data = {crop: open_training_data(str(tiny_benchmark), seed=0, crop=crop) for crop in ("uniform", "active")}
    length = next(iter(data["uniform"].source.frames.values()))
    burst_at = length // 2

    def short(audio):  # (some synth clips pause: the burst is written, not kept)
        return _burst(len(audio), burst_at, 400)

    real_read = td.read_audio
    monkeypatch.setattr(td, "read_audio", lambda *a, **k: (short(real_read(*a, **k)[0]), k.get("sample_rate")))
    monkeypatch.setattr(td, "read_audio_range",
                        lambda path, start, frames, **k: short(real_read(path, **k)[0])[start:start + frames])
    heard = {}
    for crop, source in data.items():
        batch = source.batch(0, 16, length // 4)
        heard[crop] = float((batch.target.square().sum(-1) > 0).float().mean())
    assert heard["active"] == 1.0
    assert heard["uniform"] < 0.75


def test_snr_loss_is_the_negative_snr_capped_at_30_db():
    torch.manual_seed(0)
    target = torch.randn(3, 1000)
    mixture = target + torch.randn(3, 1000)
    estimate = target + 0.1 * torch.randn(3, 1000)
    snr = 10 * torch.log10(target.square().sum(-1) / (target - estimate).square().sum(-1))
    capped = -10 * torch.log10(1 / (10 ** (-snr / 10) + SNR_THRESHOLD))
    assert float(snr_loss(estimate, target, mixture)) == pytest.approx(float(capped.mean()), abs=1e-4)
    assert float(snr_loss(target, target, mixture)) == pytest.approx(-30.0, abs=1e-4)  # perfect: -30 dB, not -inf
    # the level counts (unlike SI-SDR): half the target is 6 dB worse than the target
    assert float(snr_loss(0.5 * target, target, mixture)) == pytest.approx(10 * math.log10(0.25 + SNR_THRESHOLD),
                                                                          abs=1e-4)


def test_snr_loss_weighs_a_quiet_example_like_a_loud_one_and_l1_does_not():
    torch.manual_seed(1)
    target = torch.randn(1, 1000)
    mixture = target + torch.randn(1, 1000)
    estimate = target + 0.3 * torch.randn(1, 1000)
    quiet = 1e-3
    assert float(snr_loss(quiet * estimate, quiet * target, quiet * mixture)) == pytest.approx(
        float(snr_loss(estimate, target, mixture)), abs=1e-3)
    assert float(l1_loss(quiet * estimate, quiet * target, quiet * mixture)) < 2e-3 * float(
        l1_loss(estimate, target, mixture))


def test_snr_loss_of_a_silent_target_is_the_estimates_level_against_the_mixture():
    mixture = torch.ones(1, 100)
    silent = torch.zeros(1, 100)
    assert float(snr_loss(silent, silent, mixture)) == pytest.approx(-30.0, abs=1e-4)  # said nothing: best
    assert float(snr_loss(mixture, silent, mixture)) == pytest.approx(10 * math.log10(1 + SNR_THRESHOLD), abs=1e-4)
    estimate = torch.full((1, 100), 0.5, requires_grad=True)
    snr_loss(estimate, silent, mixture).backward()
    assert torch.isfinite(estimate.grad).all() and (estimate.grad > 0).all()  # pushes the output down


def test_unknown_loss_or_crop_is_refused_before_any_data_is_read(tmp_path):
    with pytest.raises(LassbenchError, match="--loss l2"):
        check_config(TrainConfig(data=str(tmp_path), loss="l2"))
    with pytest.raises(LassbenchError, match="--crop middle"):
        check_config(TrainConfig(data=str(tmp_path), crop="middle"))
    with pytest.raises(LassbenchError, match="unknown crop 'middle'"):
        open_training_data(str(tmp_path), crop="middle")


def test_a_resume_with_another_loss_is_refused(tiny_benchmark, tmp_path):
    settings = dict(model="lassnet", data=str(tiny_benchmark), out=str(tmp_path / "run"), steps=2, batch_size=2,
                    segment_seconds=0.5, val_every=2, val_items=2, checkpoint_every=2, channels=[4, 8], cond_dim=16,
                    loss="snr", crop="active")
    train(TrainConfig(**settings))
    with pytest.raises(LassbenchError, match="--loss 'snr' -> 'l1'"):
        train(TrainConfig(**{**settings, "loss": "l1", "steps": 4}), resume=True)


def test_an_active_remix_crop_cuts_every_source_at_the_offset_drawn_on_the_target(tiny_benchmark, monkeypatch):
    """The target is read whole to find its sound, the others by range: all must be cut at one offset."""
    import lassbench.protocols.lassbench as protocol
    from lassbench.audio import read_audio, read_audio_range

    data = open_training_data(str(tiny_benchmark), seed=0, crop="active")
    seen = []
    real_render = protocol.render
    monkeypatch.setattr(protocol, "render", lambda spec, crops, loudness: seen.append((spec, crops))
                        or real_render(spec, crops, loudness))
    segment = 6000
    for index in range(8):
        data.source.example(index, segment)
        spec, crops = seen[-1]
        path = data.source.paths[spec.target_id]
        length = data.source.frames[spec.target_id]
        whole = read_audio(path, sample_rate=data.sample_rate)[0][:length]
        offset = _active_crop_offset(whole, segment, np.random.default_rng([0, index, 7]))
        for sid, crop in crops.items():
            expected = read_audio_range(data.source.paths[sid], offset, len(crop), sample_rate=data.sample_rate)
            assert np.array_equal(crop[:len(expected)], expected), (index, sid)


def test_active_crops_are_the_same_with_loader_workers(tiny_benchmark):
    data = open_training_data(str(tiny_benchmark), seed=0, crop="active")
    serial, parallel = next(data.batches(3, 4, 4, 6000)), next(data.batches(3, 4, 4, 6000, workers=2))
    assert torch.equal(serial.target, parallel.target) and torch.equal(serial.mixture, parallel.mixture)


def test_resuming_a_run_saved_before_loss_and_crop_existed_with_other_values_is_refused(tiny_benchmark, tmp_path):
    settings = dict(model="lassnet", data=str(tiny_benchmark), out=str(tmp_path / "run"), steps=2, batch_size=2,
                    segment_seconds=0.5, val_every=2, val_items=2, checkpoint_every=2, channels=[4, 8], cond_dim=16)
    train(TrainConfig(**settings))
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    for key in ("loss", "crop"):
        del state["train_config"][key]  # as lassbench wrote it before the options existed
    torch.save(state, tmp_path / "run" / "last.pt")
    with pytest.raises(LassbenchError, match="--loss 'l1' -> 'snr'"):
        train(TrainConfig(**{**settings, "loss": "snr", "steps": 4}), resume=True)
    train(TrainConfig(**{**settings, "steps": 4}), resume=True)  # the defaults it did train with: accepted


def test_snr_loss_of_an_all_zero_example_is_finite_with_finite_gradients():
    estimate = torch.zeros(2, 100, requires_grad=True)
    zeros = torch.zeros(2, 100)
    loss = snr_loss(estimate, zeros, zeros)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(estimate.grad).all()
    half = snr_loss(torch.randn(1, 100).half(), torch.randn(1, 100).half() * 200, torch.randn(1, 100).half() * 200)
    assert torch.isfinite(half)  # float16 inputs: the power sums are taken in float32
