"""`lassbench run` streams: true-length scoring, resume after an interruption, rank split + merge, bad options."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import lassbench.run_stream as run_stream
from lassbench.audio import write_audio
from lassbench.controls import VariantPlan
from lassbench.errors import LassbenchError
from lassbench.evaluate import score_arrays
from lassbench.run import RunConfig, run_model
from lassbench.run_stream import BatchReader, Shard, merge_partials, run_shard
from lassbench.summary import declared_si_sdr_convention

from support.tiny_benchmark import build_tiny_benchmark

METRICS = ("sdr", "sdri", "si_sdr", "si_sdri")
_SEPARATE = run_stream._separate


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return build_tiny_benchmark(tmp_path_factory.mktemp("bench"))


def _results(out: Path, system: str = "oracle-irm") -> tuple[str, str]:
    folder = out / "synth-mini" / system
    return (folder / "per_item.csv").read_text(), (folder / "summary.json").read_text()


def _counting(monkeypatch, fail_after: int | None = None) -> list[int]:
    """Count separated batches; raise KeyboardInterrupt (a Ctrl-C) once ``fail_after`` batches are done."""
    calls: list[int] = []
    real = _SEPARATE

    def separate(*args, **kwargs):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(run_stream, "_separate", separate)
    return calls


def test_each_estimate_is_scored_and_saved_at_its_items_true_length(tmp_path):
    rng = np.random.default_rng(0)
    lengths = {"a": 800, "b": 1200, "c": 500}
    for item, n in lengths.items():
        target, other = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        write_audio(tmp_path / "target" / f"{item}.wav", target, 8000)
        write_audio(tmp_path / "mixture" / f"{item}.wav", target + other, 8000)
    ids = list(lengths)
    plan = VariantPlan("default", ["q"] * 3, [[]] * 3, [f"target/{i}.wav" for i in ids])
    reader = BatchReader(tmp_path, ids, plan, batch_size=3)

    def offset(mixture, query):  # nonzero beyond an item's end, were it padded: padding must not reach the scores
        return 0.5 * mixture + 0.01

    run_shard(offset, reader, tmp_path / ".partial", "fp", shard=Shard(), metrics=METRICS, workers=0,
              device="cpu", estimates_dir=tmp_path / "est")
    rows = merge_partials(tmp_path / ".partial", "fp", len(reader), order=ids)
    assert [r["item"] for r in rows] == ids
    for row in rows:
        from lassbench.audio import read_audio

        mixture, target = (read_audio(tmp_path / k / f"{row['item']}.wav")[0] for k in ("mixture", "target"))
        estimate = read_audio(tmp_path / "est" / f"{row['item']}.wav")[0]
        assert estimate.size == lengths[row["item"]]
        expected = score_arrays(target, 0.5 * mixture + 0.01, mixture, METRICS)
        for name in METRICS:
            assert row[name] == pytest.approx(expected[name], abs=1e-4)


def test_an_interrupted_run_resumes_to_the_results_of_an_uninterrupted_run(bench, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    run_model(RunConfig(model="oracle-irm", data=str(bench), out=str(whole), batch_size=2, workers=0))
    calls = _counting(monkeypatch, fail_after=2)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_model(RunConfig(model="oracle-irm", data=str(bench), out=str(cut), batch_size=2, workers=0))
    partial = cut / "synth-mini" / "oracle-irm" / ".partial" / "rank0.jsonl"
    assert len(partial.read_text().splitlines()) == 3  # header + 2 batches
    with partial.open("a") as handle:  # a kill in the middle of a write leaves a torn line
        handle.write('{"batch": 2, "rows": [{"item": "x", "sd')
    calls = _counting(monkeypatch)
    run_model(RunConfig(model="oracle-irm", data=str(bench), out=str(cut), batch_size=2, workers=0))
    assert len(calls) == 2  # only the 2 batches not written before
    assert _results(cut) == _results(whole)
    assert not partial.parent.exists()


def test_rows_made_with_other_options_are_not_reused(bench, tmp_path, monkeypatch):
    _counting(monkeypatch, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_model(RunConfig(model="oracle-irm", data=str(bench), out=str(tmp_path), batch_size=2, workers=0))
    calls = _counting(monkeypatch)
    run_model(RunConfig(model="oracle-irm", data=str(bench), out=str(tmp_path), batch_size=2, workers=0, limit=6))
    assert len(calls) == 3  # every batch of the new run, none of the partial one


def test_a_finished_run_is_kept_and_not_separated_again(bench, tmp_path, monkeypatch):
    first = run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0))[0]
    calls = _counting(monkeypatch)
    notes: list[str] = []
    again = run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0), log=notes.append)[0]
    assert not calls and again.summary == first.summary and "kept" in notes[0]


def test_reader_workers_give_the_same_results_as_reading_in_process(bench, tmp_path):
    run_model(RunConfig(model="oracle-irm", data=str(bench), out=str(tmp_path / "w0"), batch_size=3, workers=0))
    run_model(RunConfig(model="oracle-irm", data=str(bench), out=str(tmp_path / "w2"), batch_size=3, workers=2))
    assert _results(tmp_path / "w0") == _results(tmp_path / "w2")


def test_rank_shards_merge_into_the_one_process_rows(bench, tmp_path):
    from lassbench.run import _load_system, _select_items
    from lassbench.run_stream import done_batches

    items = _select_items(bench, "test", None)
    plan = VariantPlan("default", list(items["query"]), [list(x) for x in items["labels"]],
                       [f"target/{i}.wav" for i in items["id"]])
    model, _ = _load_system("oracle-irm", None, "cpu")
    reader = BatchReader(bench, list(items["id"]), plan, batch_size=3)
    assert Shard(1, 2).batches(len(reader)) == [1]
    run_shard(model, reader, tmp_path / "one", "fp", shard=Shard(), metrics=METRICS, workers=0, device="cpu")
    for rank in (1, 0):  # the order ranks finish in does not matter
        run_shard(model, reader, tmp_path / "two", "fp", shard=Shard(rank, 2), metrics=METRICS, workers=0,
                  device="cpu")
        assert done_batches(tmp_path / "two", "fp") == ({1} if rank == 1 else {0, 1, 2})
    assert merge_partials(tmp_path / "two", "fp", 3) == merge_partials(tmp_path / "one", "fp", 3)
    (tmp_path / "two" / "rank1.jsonl").unlink()
    with pytest.raises(LassbenchError, match="1 batch"):
        merge_partials(tmp_path / "two", "fp", 3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_writes_the_one_process_result(bench, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["oracle-irm", "--data", str(bench), "--batch-size", "3", "--workers", "0"]
    subprocess.run([sys.executable, "-m", "lassbench", "run", *common, "--out", str(tmp_path / "one")], env=env,
                   check=True, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                    str(_free_port()), "-m", "lassbench", "run", *common, "--out", str(tmp_path / "two")],
                   env=env, check=True, timeout=300)
    assert _results(tmp_path / "two") == _results(tmp_path / "one")
    info = json.loads((tmp_path / "two" / "synth-mini" / "oracle-irm" / "run.json").read_text())
    assert info["world_size"] == 2


# --- bad input: one `error:` line, exit 2, before any work -----------------------------------------------------


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    from lassbench.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--limit", "0"], "--limit 0"),
    (["--limit", "-3"], "--limit -3"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--workers", "-1"], "--workers -1"),
    (["--device", "banana"], "not a device"),
    (["--control", "absent,nonsense"], "unknown control 'nonsense'"),
])
def test_bad_run_options_are_one_error_line_before_any_work(bench, tmp_path, capsys, monkeypatch, options, message):
    monkeypatch.setattr(run_stream, "run_shard", lambda *a, **k: pytest.fail("separated despite a bad option"))
    code, err = _cli(["run", "mixture", "--data", str(bench), "--out", str(tmp_path), *options], capsys)
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_refused(bench, tmp_path, capsys):
    code, err = _cli(["run", "mixture", "--data", str(bench), "--out", str(tmp_path), "--device", "cuda"], capsys)
    assert code == 2 and "CUDA is not available" in err


def test_an_unusable_out_is_refused_before_separating(bench, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        code, err = _cli(["run", "mixture", "--data", str(bench), "--out", str(out)], capsys)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "x"


def test_a_non_utf8_query_in_the_manifest_is_one_error_line(bench, tmp_path, capsys):
    copy = tmp_path / "bad"
    shutil.copytree(bench, copy)
    manifest = copy / "manifest.csv"
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    frame.loc[0, "query"] = "QUERY"
    manifest.write_bytes(frame.to_csv(index=False).encode().replace(b"QUERY", b"caf\xe9 music"))
    code, err = _cli(["run", "mixture", "--data", str(copy), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_interrupting_run_says_it_resumes(bench, tmp_path, capsys, monkeypatch):
    _counting(monkeypatch, fail_after=0)
    code, err = _cli(["run", "mixture", "--data", str(bench), "--out", str(tmp_path), "--workers", "0"], capsys)
    assert code == 130 and "resume" in err and "scored" in err


def test_duplicate_item_ids_are_refused(bench, tmp_path, capsys):
    copy = tmp_path / "dup"
    shutil.copytree(bench, copy)
    frame = pd.read_csv(copy / "manifest.csv", dtype=str, keep_default_na=False)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(copy / "manifest.csv", index=False)
    code, err = _cli(["run", "mixture", "--data", str(copy), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "duplicate item id" in err


def test_the_cli_announces_a_first_use_build_before_importing_torch(tmp_path, monkeypatch, capsys):
    import lassbench.cli.run as cli_run
    from lassbench.ready import SYNTH_FIRST_USE_NOTE as FIRST_USE_NOTE

    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path / "empty"))
    assert cli_run.FIRST_USE_NOTE == FIRST_USE_NOTE
    assert cli_run._announce_first_use(None) == FIRST_USE_NOTE and FIRST_USE_NOTE in capsys.readouterr().err
    assert cli_run._announce_first_use("some/benchmark") is None


def test_save_audio_writes_every_estimate_even_after_a_run_without_it(bench, tmp_path):
    from lassbench.audio import audio_info

    run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0, limit=3))
    outcome = run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0, limit=3,
                                  save_audio=True))[0]
    saved = sorted((outcome.out_dir / "estimates").glob("*.wav"))
    ids = list(pd.read_csv(outcome.out_dir / "per_item.csv", dtype=str)["item"])
    assert [p.stem for p in saved] == sorted(ids)
    assert all(audio_info(p).num_samples == audio_info(bench / "mixture" / p.name).num_samples for p in saved)


def test_the_build_records_its_protocols_si_sdr_convention_in_dataset_json(bench):
    parameters = json.loads((bench / "dataset.json").read_text())["parameters"]
    assert parameters["si_sdr_convention"] == declared_si_sdr_convention("lassbench") == "zero-mean"


def _as_protocol(bench: Path, tmp_path: Path, protocol: str, aggregation: str | None) -> Path:
    """A copy of the tiny benchmark whose dataset.json names another protocol (the audio stays the same)."""
    copy = tmp_path / bench.name
    shutil.copytree(bench, copy)
    dataset = json.loads((copy / "dataset.json").read_text())
    dataset["protocol"] = protocol
    dataset.setdefault("parameters", {})["aggregation"] = aggregation
    dataset["parameters"]["si_sdr_convention"] = declared_si_sdr_convention(protocol)  # as its build writes it
    if aggregation is None:
        del dataset["parameters"]["aggregation"]
    (copy / "dataset.json").write_text(json.dumps(dataset))
    return copy


def test_run_scores_with_the_protocols_si_sdr_convention_and_aggregate(bench, tmp_path):
    from lassbench.metrics import si_sdr

    data = _as_protocol(bench, tmp_path, "audiosep", "class-mean")
    outcome = run_model(RunConfig(model="oracle-irm", data=str(data), out=str(tmp_path / "out"), workers=0))[0]
    summary = json.loads((outcome.out_dir / "summary.json").read_text())
    assert summary["aggregate"] == "class-mean" and summary["aggregate_from"] == "dataset.json"
    assert "calculate_sisdr" in summary["definitions"]["si_sdr"]
    per_item = pd.read_csv(outcome.out_dir / "per_item.csv")
    item = per_item.iloc[0]["item"]
    from lassbench.audio import read_audio
    from lassbench.models.lassnet import QueryBatch, sized_config
    from lassbench.models.registry import build_model

    mixture, _ = read_audio(data / "mixture" / f"{item}.wav")
    target, _ = read_audio(data / "target" / f"{item}.wav")
    model = build_model("oracle-irm", sized_config("tiny")).eval()
    with torch.no_grad():
        estimate = model(torch.from_numpy(mixture)[None], QueryBatch(queries=[""], labels=[[]],
                                                                     targets=torch.from_numpy(target)[None]))
    expected = si_sdr(target, estimate[0].numpy(), convention="audiosep")
    assert per_item.iloc[0]["si_sdr"] == pytest.approx(float(expected), abs=1e-4)
    assert per_item.iloc[0]["si_sdr"] != pytest.approx(float(si_sdr(target, estimate[0].numpy())), abs=1e-9)


def test_a_class_aggregate_on_unlabelled_items_fails_before_separating(bench, tmp_path, monkeypatch):
    data = _as_protocol(bench, tmp_path, "audiosep", "class-mean")
    manifest = pd.read_csv(data / "manifest.csv")
    manifest["labels"] = "[]"
    manifest.to_csv(data / "manifest.csv", index=False)
    calls = _counting(monkeypatch)
    with pytest.raises(LassbenchError, match="class"):
        run_model(RunConfig(model="oracle-irm", data=str(data), out=str(tmp_path / "out"), workers=0))
    assert calls == []


def test_run_records_the_benchmarks_exact_flag_for_the_leaderboard(bench, tmp_path):
    data = _as_protocol(bench, tmp_path, "audiosep", None)
    dataset = json.loads((data / "dataset.json").read_text())
    dataset["exact"] = False  # e.g. an AudioSep list re-mixed from raw clips
    (data / "dataset.json").write_text(json.dumps(dataset))
    outcome = run_model(RunConfig(model="mixture", data=str(data), out=str(tmp_path / "out"), workers=0))[0]
    assert json.loads((outcome.out_dir / "summary.json").read_text())["exact"] is False


def test_query_variants_that_need_target_clips_are_skipped_on_an_id_query_manifest(bench, tmp_path):
    copy = tmp_path / bench.name
    shutil.copytree(bench, copy)
    manifest = pd.read_csv(copy / "manifest.csv")
    manifest[["id", "query", "split"]].to_csv(copy / "manifest.csv", index=False)  # real mixtures: no target clip
    notes: list[str] = []
    outcomes = run_model(RunConfig(model="lassnet", data=str(copy), out=str(tmp_path / "out"), workers=0,
                                   control="wrong-query", limit=2), log=notes.append)
    assert [o.variant for o in outcomes] == ["default"]
    assert any("wrong-query" in note for note in notes)


def test_a_new_run_with_save_audio_leaves_no_estimates_of_an_earlier_run(bench, tmp_path):
    run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0, limit=5, save_audio=True))
    outcome = run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0, limit=3,
                                  save_audio=True))[0]
    ids = sorted(pd.read_csv(outcome.out_dir / "per_item.csv", dtype=str)["item"])
    assert sorted(p.stem for p in (outcome.out_dir / "estimates").glob("*.wav")) == ids


# --- one item, one number: the batch never changes an item's estimate ------------------------------------------

UNEVEN_SECONDS = (1.0, 12.0, 1.0, 3.0)  # two 1 s items share a batch; the 12 s one would have padded them


def _uneven_benchmark(root: Path, rate: int = 16000) -> Path:
    """A built benchmark whose items last 1 s to 12 s (a tone in noise; the target is the tone)."""
    rng = np.random.default_rng(3)
    ids = [f"item-{k}" for k in range(len(UNEVEN_SECONDS))]
    for k, (item, seconds) in enumerate(zip(ids, UNEVEN_SECONDS, strict=True)):
        t = np.arange(int(seconds * rate)) / rate
        target = (0.2 * np.sin(2 * np.pi * (300 + 150 * k) * t)).astype(np.float32)
        write_audio(root / "target" / f"{item}.wav", target, rate)
        write_audio(root / "mixture" / f"{item}.wav", target + 0.1 * rng.standard_normal(t.size).astype(np.float32),
                    rate)
    pd.DataFrame({"id": ids, "split": "test", "query": ["a dog barks", "a man speaks", "a bird sings", "the dog"]}
                 ).to_csv(root / "manifest.csv", index=False)
    (root / "dataset.json").write_text(json.dumps({"name": "uneven", "sample_rate": rate}))
    return root


def _system_options(system: str, root: Path) -> list[str]:
    """``--checkpoint`` and ``--text-encoder`` of a published system: seeded weights in the released layout."""
    from support import published_fixtures as fx

    if system == "lassnet":
        return []
    checkpoint = fx.write_checkpoint(system, root / f"{system}.ckpt", fx.seeded_state(fx.layout(system)))
    vocab = fx.write_bert_vocab if system == "lassnet-release" else fx.write_roberta_vocab
    return ["--checkpoint", str(checkpoint), "--text-encoder", str(vocab(root / "tokenizer"))]


def _per_item_scores(out: Path, system: str) -> pd.DataFrame:
    return pd.read_csv(out / "uneven" / system / "per_item.csv").set_index("item")[list(METRICS)]


@pytest.mark.slow
@pytest.mark.parametrize("system", ["lassnet", "lassnet-release", "audiosep", "dcase2024-baseline", "audiosep-dp"])
def test_an_items_scores_do_not_depend_on_batch_size_workers_or_ranks(tmp_path, system):
    data = _uneven_benchmark(tmp_path / "data")
    common = ["-m", "lassbench", "run", system, "--data", str(data), *_system_options(system, tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {
        "one at a time": [sys.executable, *common, "--batch-size", "1", "--workers", "0"],
        "batches of 8, 2 reader workers": [sys.executable, *common, "--batch-size", "8", "--workers", "2"],
        "2 torchrun ranks, batches of 8": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                           "--master_port", str(_free_port()), *common, "--batch-size", "8",
                                           "--workers", "0"],
    }
    scores = {}
    for name, command in runs.items():
        out = tmp_path / name.replace(" ", "-").replace(",", "")
        result = subprocess.run([*command, "--out", str(out)], env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-2000:]
        scores[name] = _per_item_scores(out, system)
    alone = scores.pop("one at a time")
    assert list(alone.index) == [f"item-{k}" for k in range(len(UNEVEN_SECONDS))]
    for name, other in scores.items():
        assert list(other.index) == list(alone.index), name
        gap = float((other - alone).abs().max().max())
        assert gap < 1e-3, f"{name}: an item's score moved by {gap:.4f} dB"


def test_batches_hold_items_of_one_length_and_rate_in_manifest_order():
    from lassbench.run_stream import equal_length_batches

    shapes = [(16000, 16000), (192000, 16000), (16000, 16000), (16000, 32000), (16000, 16000), (48000, 16000)]
    assert equal_length_batches(shapes, 8) == [[0, 2, 4], [1], [3], [5]]
    assert equal_length_batches(shapes, 2) == [[0, 2], [1], [3], [4], [5]]
    assert equal_length_batches([(100, 8000)] * 5, 2) == [[0, 1], [2, 3], [4]]  # equal lengths: manifest order


def test_the_default_batch_size_is_eight_except_for_a_full_size_separator_on_cpu_and_help_says_so():
    from click.testing import CliRunner

    from lassbench.cli.run import command
    from lassbench.run_stream import default_batch_size

    assert default_batch_size("cpu", 1_338_883) == 8  # the shipped tiny lassnet
    assert default_batch_size("cpu", 29_000_000) == 1
    assert default_batch_size("cuda:1", 29_000_000) == default_batch_size("mps", 29_000_000) == 8
    help_text = " ".join(CliRunner().invoke(command, ["--help"]).output.split())
    assert "on CPU 8 for a small separator" in help_text and "1 for a full-size one" in help_text


class _Sampling(torch.nn.Module):
    """A generative system's stand-in: its estimate depends on the seed set through ``set_sampler``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.steps, self.seed = 4, 0

    @property
    def sampler(self) -> dict:
        return {"solver": "stub", "steps": self.steps, "seed": self.seed}

    def set_sampler(self, steps: int | None = None, seed: int | None = None) -> None:
        self.steps = self.steps if steps is None else steps
        self.seed = self.seed if seed is None else seed

    def forward(self, mixture, batch):
        return mixture / (2 + self.seed)


def test_a_finished_run_with_other_sampler_settings_is_not_reused(bench, tmp_path, monkeypatch):
    import lassbench.run as run_module

    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"stub")
    monkeypatch.setattr(run_module, "_load_system", lambda *args: (_Sampling(), weights))
    config = RunConfig(model="flowsep", checkpoint=str(weights), data=str(bench), out=str(tmp_path / "out"),
                       workers=0)
    run_model(config)
    calls = _counting(monkeypatch)
    again = run_model(dataclasses.replace(config, sampler_seed=1))[0]
    assert calls and again.run_info["sampler"] == {"solver": "stub", "steps": 4, "seed": 1}
    calls.clear()
    run_model(dataclasses.replace(config, sampler_seed=1))
    assert not calls  # the same settings: the finished run is kept


def test_a_finished_run_of_a_release_with_another_config_json_is_not_reused(bench, tmp_path, monkeypatch):
    """SAM Audio's config.json beside the weights sets what the weights do not (text length, codec rate)."""
    import lassbench.run as run_module

    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"stub")
    model = _Sampling()
    model.config_sha256 = "a" * 64
    monkeypatch.setattr(run_module, "_load_system", lambda *args: (model, weights))
    config = RunConfig(model="sam-audio", checkpoint=str(weights), data=str(bench), out=str(tmp_path / "out"),
                       workers=0)
    first = run_model(config)[0]
    assert first.run_info["checkpoint_config_sha256"] == "a" * 64
    calls = _counting(monkeypatch)
    model.config_sha256 = "b" * 64
    run_model(config)
    assert calls  # another config.json: separated again
    calls.clear()
    run_model(config)
    assert not calls
