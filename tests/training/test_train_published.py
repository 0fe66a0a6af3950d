"""Fine-tuning the published AudioSep family from an official-layout checkpoint (seeded,
tests/support/published_fixtures.py) by the official recipe, and writing the result back in that layout."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch
from lassbench.models.published.loading import load_published
from lassbench.train import TrainConfig, train
from lassbench.train_data import TrainBatch, open_training_data, segment_mix
from lassbench.train_published import FineTunedSystem, official_optimizer, save_official
from lassbench.train_step import train_step

from support import published_fixtures as fx
from support.paths import GOLDEN

GOLDEN_MIXER = GOLDEN / "train" / "audiosep-segment-mixer.npz"


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    """A 32 kHz benchmark whose captions fit the seeded RoBERTa's 38 positions, its tokenizer and a seeded
    audiosep checkpoint in the released Lightning layout."""
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus

    root = tmp_path_factory.mktemp("published-train")
    sources = synth_corpus(root / "synth", duration=1.5, clips={"train": 8, "val": 4, "test": 2})
    table = pd.read_csv(sources)
    table["captions"] = [json.dumps([json.loads(labels)[0].lower()]) for labels in table["labels"]]
    table.to_csv(sources, index=False)
    bench = root / "bench32"
    build_dataset(BuildConfig(sources=str(sources), out=bench, splits=("val",), num_items={"val": 2},
                              sample_rate=32000, progress=False))
    init = fx.write_checkpoint("audiosep", root / "audiosep_base_4M_steps.ckpt", fx.seeded_state(fx.layout("audiosep")))
    return {"bench": bench, "init": init, "tokenizer": fx.write_roberta_vocab(root / "roberta")}


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_official_layout(path: Path, name: str = "audiosep") -> None:
    """The official ResUNet30 + CLAP state dict: the same keys, shapes and dtypes as the release (recorded from the
    official code in tests/golden/published/NAME-layout.json) — what a strict load_state_dict checks."""
    state = _state(path)
    layout = fx.layout(name)
    assert set(state) == set(layout)
    assert {k: [list(v.shape), str(v.dtype)] for k, v in state.items()} == layout


def test_the_segment_mixer_port_reproduces_the_official_mixtures():
    """Golden values from the official SegmentMixer (AudioSep 944583f) after random.seed(5); by hand on 50 random
    batches of 2-6 clips (some clipping, some silent) the port was identical to the last bit. Another CPU rounds the
    float32 loudness scaling differently (measured: up to 2.4e-7 apart), hence the tolerance."""
    golden = np.load(GOLDEN_MIXER)
    mixture, segment = segment_mix(torch.from_numpy(golden["waveforms"]), random.Random(int(golden["seed"])))
    np.testing.assert_allclose(mixture.numpy(), golden["mixture"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(segment.numpy(), golden["segment"], rtol=0, atol=1e-6)
    other, _ = segment_mix(torch.from_numpy(golden["waveforms"]), random.Random(int(golden["seed"]) + 1))
    assert not np.array_equal(other.numpy(), golden["mixture"])


def test_audiosep_mixing_mixes_each_clip_with_its_micro_batch_neighbour(released):
    data = open_training_data(str(released["bench"]), mixing="audiosep", seed=0)
    batch = data.batch(3, 4, 8000, mix_group=2)
    assert torch.equal(batch.mixture, data.batch(3, 4, 8000, mix_group=2).mixture)
    for n in range(4):
        interferer = batch.mixture[n] - batch.target[n]
        partner = batch.target[n ^ 1]  # the other clip of its pair (both rescaled only by de-clipping)
        cosine = float(interferer @ partner / (interferer.norm() * partner.norm()))
        assert cosine == pytest.approx(1.0, abs=1e-4)
    halves = [data.batch(3, 2, 8000, rank=r, world=2, mix_group=2) for r in range(2)]
    assert torch.equal(torch.cat([h.mixture for h in halves]), batch.mixture)


def test_fine_tuning_trains_the_separator_and_leaves_clap_frozen_in_eval_mode(released):
    separator, _ = load_published("audiosep", released["init"], text_encoder=str(released["tokenizer"]))
    model = FineTunedSystem(separator).train()
    clap = separator.net.query_encoder
    assert not clap.training and not any(p.requires_grad for p in clap.parameters())
    assert model.ss_model.training
    optimizer = official_optimizer(model, 1e-3)
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in model.ss_model.parameters()}
    assert optimizer.defaults["amsgrad"] and optimizer.defaults["weight_decay"] == 0.0


def test_the_saved_checkpoint_is_the_init_file_with_the_trained_separator_in_it(released, tmp_path):
    separator, _ = load_published("audiosep", released["init"], text_encoder=str(released["tokenizer"]))
    model = FineTunedSystem(separator)
    with torch.no_grad():
        model.ss_model.base.pre_conv.weight.add_(1.0)
    out = save_official(tmp_path / "model.ckpt", model, released["init"], 7, {"note": "test"})
    assert_official_layout(out)
    before, after = _state(released["init"]), _state(out)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["ss_model.base.pre_conv.weight"]  # STFT kernels and CLAP carried over as they were
    payload = torch.load(out, weights_only=True)
    assert payload["global_step"] == 200000 + 7 and payload["lassbench"] == {"note": "test"}


@pytest.mark.parametrize("name", [pytest.param("audiosep", marks=pytest.mark.slow), "dcase2024-baseline",
                                  pytest.param("audiosep-dp", marks=pytest.mark.slow)])
def test_each_fine_tunable_system_takes_a_step_and_saves_its_released_layout(tmp_path, name):
    init = fx.write_checkpoint(name, tmp_path / f"{name}.ckpt", fx.seeded_state(fx.layout(name)))
    separator, _ = load_published(name, init, text_encoder=str(fx.write_roberta_vocab(tmp_path / "roberta")))
    model = FineTunedSystem(separator)
    batch = TrainBatch(torch.from_numpy(fx.fixed_input(name)), torch.from_numpy(fx.fixed_input(name)[::-1].copy()),
                       ["a dog barks", "a man speaks"], [[], []])
    result = train_step(model, official_optimizer(model, 1e-3), batch, "cpu", clip_grad=1.0)
    assert np.isfinite(float(result)) and result.grad_norm > 0
    out = save_official(tmp_path / "model.ckpt", model, init, 1, {})
    assert_official_layout(out, name)
    state, layout, before = _state(out), fx.layout(name), _state(init)
    assert not torch.equal(before["ss_model.base.pre_conv.weight"], state["ss_model.base.pre_conv.weight"])
    assert all(torch.equal(before[k], state[k]) for k in layout if k.startswith("query_encoder."))


@pytest.mark.parametrize(("change", "message"), [
    ({"init": None}, "starts from its released checkpoint: pass --init"),
    ({"finetune_text": True}, "keeps its CLAP text encoder frozen"),
    ({"model": "lassnet-release"}, "cannot be fine-tuned by lassbench"),
])
def test_a_published_fine_tune_without_what_it_needs_is_refused(released, tmp_path, change, message):
    settings = dict(model="audiosep", data=str(released["bench"]), init=str(released["init"]),
                    text_encoder=str(released["tokenizer"]), out=str(tmp_path / "run"), mixing="audiosep")
    with pytest.raises(LassbenchError, match=message):
        train(TrainConfig(**{**settings, **change}))


def test_a_benchmark_at_another_rate_is_refused_with_the_rate_to_build(released, tmp_path):
    from support.tiny_benchmark import build_tiny_benchmark

    bench16 = build_tiny_benchmark(tmp_path, items=2)  # 16 kHz
    with pytest.raises(LassbenchError, match="build-dataset --sample-rate 32000"):
        train(TrainConfig(model="audiosep", data=str(bench16), init=str(released["init"]),
                          text_encoder=str(released["tokenizer"]), out=str(tmp_path / "run"), mixing="audiosep"))


@pytest.mark.slow
def test_a_two_process_torchrun_fine_tunes_audiosep_into_a_checkpoint_the_official_layout_loads(released, tmp_path):
    """Through the command users run (torchrun -m lassbench train audiosep ...), on CPU with gloo."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "lassbench", "train", "audiosep", "--data", str(released["bench"]), "--out", str(out),
               "--init", str(released["init"]), "--text-encoder", str(released["tokenizer"]), "--steps", "2",
               "--batch-size", "2", "--segment-seconds", "0.25", "--val-every", "2", "--checkpoint-every", "1",
               "--threads", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[:6000]
    assert_official_layout(out / "model.ckpt")
    before, after = _state(released["init"]), _state(out / "model.ckpt")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("ss_model.base.encoder_block1.") for k in changed)
    assert not any(k.startswith("query_encoder.") or ".stft." in k or ".istft." in k for k in changed)
    log = pd.read_csv(out / "log.csv")
    assert log["step"].tolist() == [1, 2] and np.isfinite(log["loss"]).all()
    # what `lassbench run audiosep --checkpoint OUT/model.ckpt` loads, strictly, and separates with
    model, report = load_published("audiosep", out / "model.ckpt", text_encoder=str(released["tokenizer"]))
    estimate = model(torch.from_numpy(fx.fixed_input("audiosep")), QueryBatch(["siren", "alarm"]))
    assert torch.isfinite(estimate).all() and report["keys_loaded"] + sum(report["keys_dropped"].values()) == 375


@pytest.mark.slow
def test_a_resumed_fine_tune_continues_where_it_stopped(released, tmp_path):
    settings = dict(model="audiosep", data=str(released["bench"]), init=str(released["init"]),
                    text_encoder=str(released["tokenizer"]), mixing="audiosep", steps=2, batch_size=2,
                    segment_seconds=0.25, val_every=10, val_items=2, checkpoint_every=1)
    whole = train(TrainConfig(out=str(tmp_path / "whole"), **settings))
    train(TrainConfig(out=str(tmp_path / "part"), **{**settings, "steps": 1}))
    part = train(TrainConfig(out=str(tmp_path / "part"), **settings), resume=True)
    np.testing.assert_allclose(pd.read_csv(part.parent / "log.csv")["loss"],
                               pd.read_csv(whole.parent / "log.csv")["loss"], rtol=1e-5)
    a, b = _state(part), _state(whole)
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-5
