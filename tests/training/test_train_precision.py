"""``train --precision / --accumulate / --clip-grad / --tensorboard``: the GPU training essentials, run on CPU."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import sized_config
from lassbench.models.registry import build_model, read_checkpoint
from lassbench.models.resunet import BackboneConfig
from lassbench.train import TrainConfig, check_config, train
from lassbench.train_data import open_training_data
from lassbench.train_step import Precision, micro_batches, train_step

from support.tiny_benchmark import build_tiny_benchmark

# measured on this benchmark (2-core CPU, torch 2.13): bf16 with 2 micro-batches vs 1 batch of the same 4 examples,
# relative gradient difference 0.2%; float32 with 2 micro-batches vs 1: 1e-5
GRADIENT_TOLERANCE = {"32": 1e-4, "bf16": 1e-2, "16-mixed": 1e-2}


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    return build_tiny_benchmark(tmp_path_factory.mktemp("precision"))


@pytest.fixture(scope="module")
def tiny_model():
    config = sized_config("tiny")
    config.backbone = BackboneConfig(channels=[4, 8], cond_dim=16)
    torch.manual_seed(0)
    return build_model("lassnet", config)


def _gradient(model, batch, precision: str, accumulate: int, clip_grad: float = 0.0):
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    result = train_step(model, optimizer, batch, "cpu", accumulate=accumulate,
                        precision=Precision.of(precision, "cpu"), clip_grad=clip_grad)
    return result, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("precision", ["32", "bf16", "16-mixed"])
def test_two_micro_batches_give_the_loss_and_gradient_of_one_batch_twice_the_size(tiny_benchmark, tiny_model,
                                                                                 precision):
    batch = open_training_data(str(tiny_benchmark), seed=0).batch(0, 4, 8000)
    whole, whole_grad = _gradient(tiny_model, batch, precision, 1)
    split, split_grad = _gradient(tiny_model, batch, precision, 2)
    assert float(split) == pytest.approx(float(whole), rel=1e-5)
    assert float((split_grad - whole_grad).norm() / whole_grad.norm()) < GRADIENT_TOLERANCE[precision]


@pytest.mark.parametrize("precision", ["bf16", "16-mixed"])
def test_reduced_precision_gradients_stay_within_one_percent_of_float32(tiny_benchmark, tiny_model, precision):
    batch = open_training_data(str(tiny_benchmark), seed=0).batch(0, 4, 8000)
    _, reference = _gradient(tiny_model, batch, "32", 1)
    _, reduced = _gradient(tiny_model, batch, precision, 1)
    assert 0 < float((reduced - reference).norm() / reference.norm()) < 1e-2  # not float32 in disguise either


def test_micro_batches_are_consecutive_equal_slices_of_the_batch(tiny_benchmark):
    batch = open_training_data(str(tiny_benchmark), seed=0).batch(1, 6, 4000)
    parts = micro_batches(batch, 3)
    assert [len(p.queries) for p in parts] == [2, 2, 2]
    assert torch.equal(torch.cat([p.mixture for p in parts]), batch.mixture)
    assert sum((p.queries for p in parts), []) == batch.queries


def test_clipping_scales_the_gradient_to_the_given_norm_and_reports_the_norm_before(tiny_benchmark, tiny_model):
    batch = open_training_data(str(tiny_benchmark), seed=0).batch(0, 2, 4000)
    free, free_grad = _gradient(tiny_model, batch, "32", 1)
    clipped, clipped_grad = _gradient(tiny_model, batch, "32", 1, clip_grad=free.grad_norm / 10)
    assert clipped.grad_norm == pytest.approx(free.grad_norm)
    assert float(free_grad.norm()) == pytest.approx(free.grad_norm, rel=1e-5)
    assert float(clipped_grad.norm()) == pytest.approx(free.grad_norm / 10, rel=1e-4)


def _settings(bench, out, **kw) -> TrainConfig:
    settings = dict(model="lassnet", data=str(bench), out=str(out), steps=2, batch_size=2, segment_seconds=0.25,
                    val_every=100, val_items=2, checkpoint_every=1, channels=[4, 8], cond_dim=16, precision="bf16")
    settings.update(kw)
    return TrainConfig(**settings)


def _weights(path) -> torch.Tensor:
    state = read_checkpoint(path)["state_dict"]
    return torch.cat([v.float().flatten() for k, v in state.items() if not k.startswith("text_encoder.")])


def test_bf16_with_accumulate_2_trains_like_accumulate_1_with_twice_the_batch(tiny_benchmark, tmp_path):
    """Two optimiser steps on the same 4 examples per step; AdamW's first steps amplify a gradient's rounding to
    the size of the update where a gradient entry is near zero, hence the loose weight tolerance."""
    split = train(_settings(tiny_benchmark, tmp_path / "split", accumulate=2))
    whole = train(_settings(tiny_benchmark, tmp_path / "whole", batch_size=4))
    split_log, whole_log = (pd.read_csv(p.parent / "log.csv") for p in (split, whole))
    assert split_log["loss"].to_numpy() == pytest.approx(whole_log["loss"].to_numpy(), rel=2e-3)
    assert split_log["grad_norm"].to_numpy() == pytest.approx(whole_log["grad_norm"].to_numpy(), rel=2e-2)
    a, b = _weights(split), _weights(whole)
    assert float((a - b).norm() / b.norm()) < 1e-3
    single = train(_settings(tiny_benchmark, tmp_path / "half", batch_size=2))  # half the examples: another run
    assert float((_weights(single) - b).norm() / b.norm()) > 10 * float((a - b).norm() / b.norm())


def test_a_16_mixed_run_resumed_mid_way_continues_with_the_identical_losses_and_loss_scale(tiny_benchmark,
                                                                                             tmp_path):
    """To the tolerance of the float32 resume test (tests/training/test_train_run.py: relative 1e-5 on the losses)."""
    settings = dict(precision="16-mixed", accumulate=2, clip_grad=0.5, steps=3, checkpoint_every=2)
    full = train(_settings(tiny_benchmark, tmp_path / "full", **settings))
    train(_settings(tiny_benchmark, tmp_path / "part", **{**settings, "steps": 2}))
    part = train(_settings(tiny_benchmark, tmp_path / "part", **settings), resume=True)
    resumed, whole = (pd.read_csv(p.parent / "log.csv") for p in (part, full))
    assert resumed["step"].tolist() == [1, 2, 3]
    assert resumed["loss"].to_numpy() == pytest.approx(whole["loss"].to_numpy(), rel=1e-5)
    assert float((_weights(part) - _weights(full)).norm() / _weights(full).norm()) < 1e-5
    saved = read_checkpoint(full.parent / "last.pt")
    assert saved["scaler"]["scale"] == read_checkpoint(part.parent / "last.pt")["scaler"]["scale"]


def test_a_resume_with_another_precision_or_accumulation_is_refused(tiny_benchmark, tmp_path):
    train(_settings(tiny_benchmark, tmp_path / "run", steps=1))
    for change in ({"precision": "32"}, {"accumulate": 2}, {"clip_grad": 1.0}):
        with pytest.raises(LassbenchError, match="--resume with other settings"):
            train(_settings(tiny_benchmark, tmp_path / "run", steps=2, **change), resume=True)


@pytest.mark.parametrize(("change", "message"), [
    ({"precision": "fp8"}, "--precision fp8: one of 32, bf16, 16-mixed"),
    ({"accumulate": 0}, "--accumulate 0: must be at least 1"),
    ({"clip_grad": -1.0}, "--clip-grad -1.0: must be a non-negative number"),
])
def test_settings_that_cannot_train_are_refused_before_any_data_is_read(tmp_path, change, message):
    with pytest.raises(LassbenchError, match=message):
        check_config(TrainConfig(data=str(tmp_path / "absent"), **change))


def test_tensorboard_logging_writes_event_files_or_says_what_to_install(tiny_benchmark, tmp_path):
    config = _settings(tiny_benchmark, tmp_path / "tb", steps=1, tensorboard=True)
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(LassbenchError, match="pip install tensorboard"):
            check_config(config)  # before any data is read
        return
    train(config)
    assert list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_two_torchrun_processes_accumulating_2_micro_batches_train_like_one_process_with_the_whole_batch(
        tiny_benchmark, tmp_path):
    """2 processes x 2 micro-batches of 1 (gradients all-reduced once per step, DDP's no_sync on the first) vs 1
    process x 4: the same 4 examples per step."""
    import os
    import subprocess
    import sys

    from support.paths import DDP_TRAIN_WORKER

    script = str(DDP_TRAIN_WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script,
                    str(tiny_benchmark), str(tmp_path / "ddp"), "1", "0", "2"], env=env, check=True, timeout=600)
    subprocess.run([sys.executable, script, str(tiny_benchmark), str(tmp_path / "one"), "4", "0"], env=env,
                   check=True, timeout=600)
    ddp, one = (pd.read_csv(tmp_path / name / "log.csv") for name in ("ddp", "one"))
    assert ddp["loss"].to_numpy() == pytest.approx(one["loss"].to_numpy(), rel=1e-4)
    a, b = _weights(tmp_path / "ddp" / "model.pt"), _weights(tmp_path / "one" / "model.pt")
    assert float((a - b).norm() / b.norm()) < 1e-4
