"""Training (loss goes down, exact resume, DDP equivalence) and `lassbench run` on a tiny built benchmark."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import sized_config
from lassbench.models.registry import build_model, save_checkpoint
from lassbench.models.resunet import BackboneConfig
from lassbench.train import TrainConfig, train
from lassbench.train_data import open_training_data
from lassbench.train_step import train_step

from support.paths import DDP_GRAD_WORKER


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory) -> Path:
    """A small synth corpus and a benchmark built from it with the real build code."""
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus

    root = tmp_path_factory.mktemp("bench")
    sources = synth_corpus(root / "synth", duration=2.0, clips={"train": 28, "val": 14, "test": 14})
    out = root / "synth-mini"  # a benchmark is named after its folder
    build_dataset(BuildConfig(sources=str(sources), out=out, splits=("val", "test"), num_items={"val": 8, "test": 8},
                              options={"contrast_fraction": 0.3}, progress=False))
    return out


def _small(config: TrainConfig, out: Path, **kw) -> TrainConfig:
    defaults = dict(out=str(out), steps=4, batch_size=2, segment_seconds=0.5, val_every=2, val_items=4,
                    checkpoint_every=2, channels=[4, 8], cond_dim=16)
    defaults.update(kw)
    for key, value in defaults.items():
        setattr(config, key, value)
    return config


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(tiny_benchmark):
    data = open_training_data(str(tiny_benchmark), mixing="remix", seed=0)
    config = sized_config("tiny")
    config.backbone = BackboneConfig(channels=[4, 8], cond_dim=16)
    torch.manual_seed(0)
    model = build_model("lassnet", config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    batch = data.batch(0, 4, 8000, rank=0, world=1)
    losses = [train_step(model, optimizer, batch, "cpu") for _ in range(15)]
    assert losses[-1] < losses[0] * 0.9


def test_training_batches_are_a_pure_function_of_the_step(tiny_benchmark):
    data = open_training_data(str(tiny_benchmark), mixing="remix", seed=3)
    a, b = data.batch(5, 3, 4000, rank=0, world=1), data.batch(5, 3, 4000, rank=0, world=1)
    assert torch.equal(a.mixture, b.mixture) and a.queries == b.queries
    assert not torch.equal(a.mixture, data.batch(6, 3, 4000, rank=0, world=1).mixture)


def test_rank_slices_of_a_global_batch_equal_the_single_process_batch(tiny_benchmark):
    data = open_training_data(str(tiny_benchmark), mixing="remix", seed=0)
    whole = data.batch(2, 4, 4000, rank=0, world=1, global_batch=4)
    parts = [data.batch(2, 2, 4000, rank=r, world=2) for r in range(2)]
    assert torch.equal(torch.cat([p.mixture for p in parts]), whole.mixture)


def test_resumed_training_continues_with_the_identical_loss_sequence(tiny_benchmark, tmp_path):
    full = _small(TrainConfig(model="lassnet", data=str(tiny_benchmark)), tmp_path / "full")
    train(full)
    half = _small(TrainConfig(model="lassnet", data=str(tiny_benchmark)), tmp_path / "half", steps=2)
    train(half)
    resumed = _small(TrainConfig(model="lassnet", data=str(tiny_benchmark)), tmp_path / "half", steps=4)
    train(resumed, resume=True)
    full_log = pd.read_csv(tmp_path / "full" / "log.csv")
    resumed_log = pd.read_csv(tmp_path / "half" / "log.csv")
    assert list(resumed_log["step"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed_log["loss"], full_log["loss"], rtol=1e-5)


def test_a_tag_queried_checkpoint_records_its_tags_and_separate_refuses_others(tiny_benchmark, tmp_path):
    from lassbench.audio import write_audio
    from lassbench.corpora.synth import synth_classes
    from lassbench.separate import SeparateConfig, separate_file

    checkpoint = train(_small(TrainConfig(model="tag-queried", data=str(tiny_benchmark)), tmp_path / "tags"))
    tags = torch.load(checkpoint, weights_only=True)["tags"]
    assert set(tags) <= set(synth_classes()) and len(tags) >= 3
    write_audio(tmp_path / "mix.wav", np.random.default_rng(0).normal(size=8000).astype(np.float32) * 0.1, 16000)
    config = SeparateConfig(input=str(tmp_path / "mix.wav"), output=str(tmp_path / "est.wav"), model="tag-queried",
                            checkpoint=str(checkpoint), query="Chainsaw")
    with pytest.raises(LassbenchError, match=r"never trained on the tag\(s\) 'Chainsaw'.*" + tags[0]):
        separate_file(config)
    config.query = f"{tags[0]}, {tags[1]}"
    assert separate_file(config).is_file()


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_benchmark, tmp_path):
    config = _small(TrainConfig(model="lassnet", data=str(tiny_benchmark)), tmp_path / "none")
    with pytest.raises(LassbenchError, match="no checkpoint"):
        train(config, resume=True)


def test_reference_models_cannot_be_trained(tiny_benchmark, tmp_path):
    with pytest.raises(LassbenchError, match="nothing to train"):
        train(_small(TrainConfig(model="mixture", data=str(tiny_benchmark)), tmp_path / "m"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_with_two_cpu_processes_gives_the_gradients_of_one_process_on_the_whole_batch(tiny_benchmark, tmp_path):
    script = DDP_GRAD_WORKER
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tiny_benchmark), str(tmp_path)],
                         env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
        for r in range(2)
    ]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    env_single = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    subprocess.run([sys.executable, str(script), str(tiny_benchmark), str(tmp_path)], env=env_single, check=True,
                   timeout=300)
    ddp = torch.load(tmp_path / "grads-world2-rank0.pt")
    single = torch.load(tmp_path / "grads-world1-rank0.pt")
    assert ddp.keys() == single.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-6)


def test_run_on_a_tiny_built_set_writes_the_documented_files(tiny_benchmark, tmp_path):
    from lassbench.run import RunConfig, run_model

    config = sized_config("tiny")
    config.backbone = BackboneConfig(channels=[4, 8], cond_dim=16)
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model("lassnet", config), name="lassnet", config=config)
    outcomes = run_model(RunConfig(model="lassnet", data=str(tiny_benchmark), checkpoint=str(ckpt),
                                   out=str(tmp_path / "results"), control="wrong-query"))
    assert [o.variant for o in outcomes] == ["default", "wrong-query"]
    main = tmp_path / "results" / "synth-mini" / "lassnet"
    for name in ("per_item.csv", "summary.json", "run.json"):
        assert (main / name).is_file()
    run_info = json.loads((main / "run.json").read_text())
    assert run_info["model"] == "lassnet" and len(run_info["checkpoint_sha256"]) == 64
    assert run_info["text_encoder"] == "minilm" and run_info["n_items"] == 8
    per_item = pd.read_csv(main / "per_item.csv")
    assert {"item", "sdr", "sdri", "si_sdr", "si_sdri", "query"} <= set(per_item.columns)
    assert (tmp_path / "results" / "synth-mini" / "lassnet@wrong-query" / "run.json").is_file()


def test_mixture_reference_scores_exactly_zero_sdri(tiny_benchmark, tmp_path):
    from lassbench.run import RunConfig, run_model

    outcome = run_model(RunConfig(model="mixture", data=str(tiny_benchmark), out=str(tmp_path)))[0]
    per_item = pd.read_csv(outcome.out_dir / "per_item.csv")
    assert np.all(per_item["sdri"] == 0) and np.all(per_item["si_sdri"] == 0)


def test_oracle_irm_beats_the_mixture_by_a_wide_margin(tiny_benchmark, tmp_path):
    from lassbench.run import RunConfig, run_model

    outcome = run_model(RunConfig(model="oracle-irm", data=str(tiny_benchmark), out=str(tmp_path)))[0]
    assert outcome.summary["metrics"]["sdri"]["mean"] > 5


def test_wrong_query_permutation_never_keeps_an_items_own_target():
    from lassbench.controls import _wrong_query_permutation

    targets = [f"t{i % 5}" for i in range(40)]
    perm = _wrong_query_permutation(targets, seed=0)
    assert sorted(perm) == list(range(40))
    assert all(targets[perm[i]] != targets[i] for i in range(40))
