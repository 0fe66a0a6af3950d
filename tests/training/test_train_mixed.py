"""Training on several benchmarks together (`train --data A --data B`), fine-tuning from a trained checkpoint
(`--init`), and separators run at their own sample rate on a benchmark at another one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soxr
import torch

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch
from lassbench.models.registry import build_model, load_model
from lassbench.train import TrainConfig, train
from lassbench.train_data import MixedTrainingData, open_training_data
from lassbench.train_state import initialise_from

from support.command_helpers import train_cli

SEGMENT = 8000  # 0.5 s at 16 kHz


def _relabelled_corpus(source: Path, out: Path, prefix: str) -> Path:
    """A copy of a synth corpus whose classes all have other names (a second corpus with its own class set)."""
    shutil.copytree(source, out)
    manifest = pd.read_csv(out / "manifest.csv")
    manifest["labels"] = [json.dumps([f"{prefix} {name}" for name in json.loads(v)]) for v in manifest["labels"]]
    manifest.to_csv(out / "manifest.csv", index=False)
    return out


@pytest.fixture(scope="module")
def benches(tmp_path_factory) -> dict[str, Path]:
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus

    root = tmp_path_factory.mktemp("mixed")
    synth_corpus(root / "a", duration=2.0, clips={"train": 20, "val": 8, "test": 4})
    _relabelled_corpus(root / "a", root / "b", "Other")
    built = {}
    for name, corpus, rate in [("a", "a", None), ("b", "b", None), ("b8k", "b", 8000)]:
        build_dataset(BuildConfig(sources=str(root / corpus), out=root / f"bench-{name}", splits=("val",),
                                  num_items={"val": 4}, sample_rate=rate, progress=False))
        built[name] = root / f"bench-{name}"
    return built


def _config(data, out: Path, **kw) -> TrainConfig:
    settings = dict(model="lassnet", data=data, out=str(out), steps=2, batch_size=2, segment_seconds=0.5,
                    val_every=2, val_items=4, checkpoint_every=2, channels=[4, 8], cond_dim=16)
    settings.update(kw)
    return TrainConfig(**settings)


# ------------------------------------------------------------------------------------------- several benchmarks


def test_each_example_is_one_benchmarks_own_example_and_both_are_drawn(benches):
    a, b = open_training_data(benches["a"], seed=3), open_training_data(benches["b"], seed=3)
    mixed = open_training_data([benches["a"], benches["b"]], seed=3)
    assert isinstance(mixed, MixedTrainingData)
    drawn = []
    for index in range(24):
        example = mixed.source.example(index, SEGMENT)
        from_a, from_b = a.source.example(index, SEGMENT), b.source.example(index, SEGMENT)
        part = "b" if example.labels[0].startswith("Other ") else "a"  # b's copy of a's audio has its own names
        own = from_a if part == "a" else from_b  # mixed by its own protocol, from its own sources
        assert np.array_equal(example.mixture, own.mixture) and example.labels == own.labels
        drawn.append(part)
    assert 6 <= drawn.count("a") <= 18  # equal odds


def test_mixed_data_takes_the_union_of_classes_validates_on_both_and_has_its_own_fingerprint(benches):
    a, b = open_training_data(benches["a"]), open_training_data(benches["b"])
    mixed = open_training_data([benches["a"], benches["b"]])
    assert mixed.classes == sorted(a.classes + b.classes) and len(mixed.classes) == len(a.classes) * 2
    assert mixed.fingerprint not in (a.fingerprint, b.fingerprint)
    labels = [item[0] for batch in mixed.validation_batches(4, 2) for item in batch.labels]
    assert len(labels) == 4 and sum(name.startswith("Other ") for name in labels) == 2  # two val items of each


def test_mixed_batches_do_not_depend_on_workers_and_a_resume_continues_exactly(benches, tmp_path):
    mixed = open_training_data([benches["a"], benches["b"]], seed=1)
    serial, parallel = list(mixed.batches(2, 4, 2, SEGMENT)), list(mixed.batches(2, 4, 2, SEGMENT, workers=2))
    for x, y in zip(serial, parallel, strict=True):
        assert torch.equal(x.mixture, y.mixture) and x.queries == y.queries
    data = [str(benches["a"]), str(benches["b"])]
    train(_config(data, tmp_path / "full", steps=4))
    train(_config(data, tmp_path / "half", steps=2))
    train(_config(data, tmp_path / "half", steps=4), resume=True)
    full, resumed = pd.read_csv(tmp_path / "full" / "log.csv"), pd.read_csv(tmp_path / "half" / "log.csv")
    np.testing.assert_allclose(resumed["loss"], full["loss"], rtol=1e-5)


def test_a_class_conditioned_model_trained_on_both_knows_every_class(benches, tmp_path):
    path = train(_config([str(benches["a"]), str(benches["b"])], tmp_path / "cc", model="class-conditioned"))
    model, _ = load_model(path, expected="class-conditioned")
    assert set(model.class_index) == set(open_training_data(benches["a"]).classes) | set(
        open_training_data(benches["b"]).classes)


_cli = train_cli


def test_benchmarks_at_two_rates_or_one_given_twice_are_refused_in_one_line(benches, tmp_path, capsys):
    for extra, needle in [(benches["b8k"], "different sample rates"), (benches["a"], "given twice")]:
        code, err = _cli(["lassnet", "--data", benches["a"], "--data", extra, "--out", tmp_path / "run"], capsys)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert needle in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ --init


@pytest.fixture(scope="module")
def trained(benches, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("init")
    return {name: train(_config(str(benches["a"]), root / name, model=name))
            for name in ("lassnet", "class-conditioned")}


def test_init_starts_from_the_checkpoints_weights(benches, trained, tmp_path):
    fresh = build_model("lassnet", load_model(trained["lassnet"])[0].config)
    initialise_from(fresh, trained["lassnet"], "lassnet")
    saved = torch.load(trained["lassnet"], weights_only=True)["state_dict"]
    assert all(torch.equal(fresh.state_dict()[k], v.float()) for k, v in saved.items())
    # a fine-tuning run's first loss is the trained model's, not a random one's
    tuned = train(_config(str(benches["a"]), tmp_path / "tuned", steps=1, lr=1e-12, init=str(trained["lassnet"])))
    tuned_state = torch.load(tuned, weights_only=True)["state_dict"]
    assert all(torch.allclose(tuned_state[k].float(), v.float(), atol=1e-6) for k, v in saved.items())


def test_init_of_a_class_conditioned_model_keeps_the_classes_both_know(benches, trained, tmp_path):
    path = train(_config([str(benches["a"]), str(benches["b"])], tmp_path / "cc", model="class-conditioned",
                         steps=1, lr=1e-12, init=str(trained["class-conditioned"])))
    old, _ = load_model(trained["class-conditioned"], expected="class-conditioned")
    new, _ = load_model(path, expected="class-conditioned")
    assert len(new.class_index) == 2 * len(old.class_index)
    for name, row in old.class_index.items():
        torch.testing.assert_close(new.embedding.weight[new.class_index[name]], old.embedding.weight[row],
                                   atol=1e-6, rtol=0)
    others = [new.class_index[name] for name in new.class_index if name not in old.class_index]
    assert not any(torch.allclose(new.embedding.weight[i], old.embedding.weight[0]) for i in others)


@pytest.mark.parametrize("change, needle", [
    ({"model": "tag-queried"}, "is for model 'lassnet'"),
    ({"channels": [4, 8, 16]}, "another architecture"),
])
def test_an_init_checkpoint_of_another_model_or_architecture_is_refused(benches, trained, tmp_path, change, needle):
    with pytest.raises(LassbenchError, match=needle):
        train(_config(str(benches["a"]), tmp_path / "run", init=str(trained["lassnet"]), **change))
    with pytest.raises(LassbenchError, match="no such checkpoint"):
        train(_config(str(benches["a"]), tmp_path / "run2", init=str(tmp_path / "missing.pt")))


# ------------------------------------------------------------------------------------- the model's own rate


def test_a_model_records_the_rate_it_was_trained_at(benches, tmp_path):
    path = train(_config(str(benches["b8k"]), tmp_path / "run8k", steps=1, val_every=1))
    model, _ = load_model(path, expected="lassnet")
    assert model.sample_rate == model.config.backbone.sample_rate == 8000


@pytest.mark.parametrize("name", ["lassnet", "class-conditioned"])
def test_a_separator_given_another_rate_resamples_to_its_own_and_back(trained, name):
    model, _ = load_model(trained[name], expected=name)
    rng = np.random.default_rng(0)
    mixture = torch.from_numpy(rng.standard_normal((2, 32000)).astype(np.float32) * 0.1)
    batch = QueryBatch(["a dog barks", "a siren wails"], [[c] for c in list(model.config.classes or ["Dog"])[:1] * 2])
    at_own = model(mixture, batch)
    model.input_rate = 32000
    with torch.no_grad():
        at_other = model(mixture, batch)
        down = torch.from_numpy(np.stack([soxr.resample(r, 32000, 16000) for r in mixture.numpy()]))
        model.input_rate = 16000
        expected = np.stack([soxr.resample(r, 16000, 32000) for r in model(down, batch).numpy()])[:, :32000]
    assert at_other.shape == mixture.shape
    np.testing.assert_allclose(at_other.numpy(), expected, atol=1e-6)
    assert not torch.allclose(at_own, at_other, atol=1e-4)  # running at the wrong rate gives another answer


# ------------------------------------------------------------------------------------------------ the recipe


@pytest.mark.parametrize("ship", [False, True])
def test_the_real_recipe_fine_tunes_on_both_benchmarks_and_never_reads_a_test_split(tmp_path, ship):
    """recipes/real/run.sh stages 2-3 with `lassbench` and `python` stubbed (they log their arguments)."""
    from support.command_helpers import run_recipe

    args = ["--stage", "2", "--stop-stage", "3", "--models", "lassnet"] + (["--ship"] if ship else [])
    _, lines = run_recipe("real", tmp_path, args, env={"CORPUS": "/corpus", "DATA": "/real"}, benchmark="/synth")
    view = next(line for line in lines if "--sources /corpus" in line)
    assert "--splits val " in view and "--sample-rate 16000" in view and "/real-16k" in view
    trained = next(line for line in lines if line.startswith("lassbench train lassnet"))
    assert "--data /synth --data /real-16k" in trained
    assert "--init recipes/real/init/lassnet-tiny-synth.pt" in trained
    assert not any(line.startswith("lassbench train tag-queried") for line in lines)
    assert ("half_precision_copy" in "\n".join(lines)) == ship
    runs_lassnet = [line for line in lines if line.startswith("lassbench run lassnet")]
    assert any("--data /real " in line for line in runs_lassnet)  # the benchmark (and its scenes)
    for run_lassnet in runs_lassnet:
        assert ("--checkpoint runs/real/lassnet/model.pt" in run_lassnet) == (not ship)
    assert "--checkpoint" not in next(line for line in lines if line.startswith("lassbench run tag-queried"))
    assert not any("test" in line for line in lines if line.startswith("lassbench train"))


def test_run_on_a_benchmark_at_another_rate_resamples_and_says_so(benches, trained, tmp_path, monkeypatch):
    import lassbench.run as run_module
    from lassbench.run import RunConfig, run_model

    def run(data: Path, out: Path):
        config = RunConfig(model="lassnet", data=str(data), split="val", checkpoint=str(trained["lassnet"]),
                           out=str(out), workers=0)
        return run_model(config, log=lambda line: None)[0]

    other = run(benches["b8k"], tmp_path / "r")  # 8 kHz items, a 16 kHz model
    assert other.run_info["model_sample_rate"] == 16000
    frame = pd.read_csv(other.out_dir / "per_item.csv")
    assert len(frame) == 4 and frame["sdri"].notna().all()
    own = run(benches["b"], tmp_path / "r2")  # at the model's own rate: nothing resampled, nothing said
    assert "model_sample_rate" not in own.run_info
    # a run from before the rate fix (no resampling) is not "an identical finished run" to keep
    monkeypatch.setattr(run_module, "_resampled", lambda model: False)
    before = run(benches["b8k"], tmp_path / "r3")
    assert json.loads((before.out_dir / "run.json").read_text())["fingerprint"] != json.loads(
        (other.out_dir / "run.json").read_text())["fingerprint"]
