"""`lassbench train` at scale: the DataLoader feed (workers, lazy crops, sources.csv), a portable sources origin,
bad training settings refused before work, the all-ranks loss under torchrun, and the build's measured snr_db."""

from __future__ import annotations

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
import soundfile
import torch

from lassbench.errors import LassbenchError
from lassbench.train import TrainConfig, train
from lassbench.train_data import open_training_data

from support.command_helpers import train_cli
from support.paths import DDP_TRAIN_WORKER

SEGMENT = 8000  # 0.5 s at 16 kHz


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A tiny synth corpus at ROOT/corpus and a val/test benchmark built from it with a *relative* --sources, the
    way a user types it (`--sources corpus` in ROOT)."""
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus

    root = tmp_path_factory.mktemp("stream")
    synth_corpus(root / "corpus", duration=2.0, clips={"train": 28, "val": 14, "test": 14})
    here = os.getcwd()
    os.chdir(root)
    try:
        build_dataset(BuildConfig(sources="corpus", out="bench", splits=("val", "test"),
                                  num_items={"val": 8, "test": 8}, options={"contrast_fraction": 0.3},
                                  progress=False))
    finally:
        os.chdir(here)
    return root / "bench"


def _config(bench: Path, out: Path, **kw) -> TrainConfig:
    settings = dict(model="lassnet", data=str(bench), out=str(out), steps=4, batch_size=2, segment_seconds=0.5,
                    val_every=2, val_items=2, checkpoint_every=2, channels=[4, 8], cond_dim=16)
    settings.update(kw)
    return TrainConfig(**settings)


# ------------------------------------------------------------------------------------------ sources.csv, origin


def test_build_stores_every_train_clips_length_and_loudness_in_sources_csv(bench):
    from lassbench.corpora import measure_source

    table = pd.read_csv(bench / "sources.csv")
    assert {"source_id", "path", "split", "sample_rate", "frames", "duration", "loudness", "reason"} <= set(table)
    assert (table["split"] == "train").sum() == 28  # measured although only val/test were built
    assert all(Path(p).is_absolute() for p in table["path"])
    for row in table[table["split"] == "train"].head(3).itertuples():
        audio, loudness, _ = measure_source(row.path, 16000)
        assert row.frames == audio.shape[0] and row.duration == audio.shape[0] / 16000
        assert row.loudness == pytest.approx(loudness, abs=1e-9)
    skipped = pd.read_csv(bench / "skipped.csv")
    assert not skipped["id"].astype(str).str.contains("train").any()  # train clips are not the build's skips


def test_dataset_json_records_an_absolute_origin_and_train_works_from_another_folder(bench, tmp_path, monkeypatch):
    origin = json.loads((bench / "dataset.json").read_text())["sources"]["origin"]
    assert Path(origin).is_absolute() and Path(origin) == (bench.parent / "corpus").resolve()
    monkeypatch.chdir(tmp_path)  # not the folder the build ran in
    train(_config(bench, Path("run"), steps=1, val_every=1))
    assert (tmp_path / "run" / "model.pt").is_file()


def test_an_old_benchmark_with_a_relative_origin_and_no_sources_csv_still_trains(bench, tmp_path, monkeypatch,
                                                                                 caplog):
    old = bench.parent / "old-bench"  # beside the corpus, as the build ran there
    shutil.copytree(bench, old, ignore=shutil.ignore_patterns("sources.csv"))
    described = json.loads((old / "dataset.json").read_text())
    described["sources"] = {"origin": "corpus", "clips": described["sources"]["clips"]}  # as lassbench 0.1 wrote it
    (old / "dataset.json").write_text(json.dumps(described))
    monkeypatch.chdir(tmp_path)
    legacy, current = open_training_data(old, seed=1), open_training_data(bench, seed=1)
    assert "rerun build-dataset" in caplog.text
    assert legacy.fingerprint == current.fingerprint
    assert torch.equal(legacy.batch(3, 2, SEGMENT).mixture, current.batch(3, 2, SEGMENT).mixture)
    described["sources"]["origin"] = "nowhere"
    (old / "dataset.json").write_text(json.dumps(described))
    with pytest.raises(LassbenchError, match="not found"):
        open_training_data(old)


def test_training_start_up_reads_no_audio_and_an_example_reads_only_its_crop(bench, monkeypatch):
    import lassbench.train_examples as train_data

    def refuse(*args, **kwargs):
        raise AssertionError("audio read at start-up")

    for name in ("read", "info", "SoundFile"):
        monkeypatch.setattr(soundfile, name, refuse)
    data = open_training_data(bench, seed=0)
    monkeypatch.undo()
    requested = []
    original = train_data.read_audio_range

    def spy(path, start, frames, **kwargs):
        requested.append(frames)
        return original(path, start, frames, **kwargs)

    monkeypatch.setattr(train_data, "read_audio_range", spy)
    data.batch(0, 2, 4000)
    assert requested and max(requested) == 4000  # 0.25 s of 2 s clips


def test_a_lazy_example_is_the_whole_rendered_item_cropped_up_to_the_anti_clipping_gain(bench):
    from lassbench.corpora import load_sources, resolve_sources
    from lassbench.protocols.lassbench import draw_spec, render

    data = open_training_data(bench, seed=0)
    frame = resolve_sources(str(bench.parent / "corpus")).frame
    loaded = load_sources(frame[frame["split"] == "train"], 16000)
    exact = clipped = 0
    for index in range(40):
        spec = draw_spec(index, data.source.pool, data.source.params, 0, split="train")
        whole = render(spec, loaded.audio, loaded.loudness)
        offset = int(np.random.default_rng([0, index, 7]).integers(0, whole.mixture.shape[0] - SEGMENT + 1))
        reference = whole.mixture[offset:offset + SEGMENT]
        example = data.source.example(index, SEGMENT)
        if whole.gain == 1.0:  # nothing clipped: bit for bit the item the build would write, cropped
            np.testing.assert_array_equal(example.mixture, reference)
            exact += 1
        else:  # turned down by the crop's own peak, not the whole mixture's: one common factor >= 1
            ratio = float(np.abs(example.mixture).max() / np.abs(reference).max())
            np.testing.assert_allclose(example.mixture, reference * ratio, rtol=1e-4, atol=1e-6)
            assert ratio >= 1.0 - 1e-6
            clipped += 1
    assert exact >= 30


# ------------------------------------------------------------------------------------------- DataLoader feed


def test_batches_do_not_depend_on_the_number_of_workers(bench):
    data = open_training_data(bench, seed=2)
    serial = list(data.batches(3, 6, 2, SEGMENT, workers=0))
    parallel = list(data.batches(3, 6, 2, SEGMENT, workers=2))
    assert len(serial) == len(parallel) == 3
    for step, (a, b) in enumerate(zip(serial, parallel, strict=True), start=3):
        assert torch.equal(a.mixture, b.mixture) and torch.equal(a.target, b.target) and a.queries == b.queries
        assert torch.equal(a.mixture, data.batch(step, 2, SEGMENT).mixture)


def test_rank_slices_from_the_loader_make_the_one_process_batch(bench):
    data = open_training_data(bench, seed=0)
    whole = next(data.batches(1, 2, 4, SEGMENT))
    parts = [next(data.batches(1, 2, 2, SEGMENT, rank=r, world=2, workers=1)) for r in range(2)]
    assert torch.equal(torch.cat([p.mixture for p in parts]), whole.mixture)


def test_fixed_mixing_crops_the_built_train_mixtures(tmp_path_factory, bench):
    from lassbench.build import BuildConfig, build_dataset

    out = tmp_path_factory.mktemp("fixed") / "bench"
    build_dataset(BuildConfig(sources=str(bench.parent / "corpus"), out=out, splits=("train", "val"),
                              num_items={"train": 6, "val": 2}, progress=False))
    data = open_training_data(out, mixing="fixed", seed=0)
    serial, parallel = next(data.batches(2, 3, 3, SEGMENT)), next(data.batches(2, 3, 3, SEGMENT, workers=2))
    assert torch.equal(serial.mixture, parallel.mixture) and serial.mixture.shape == (3, SEGMENT)
    manifest = pd.read_csv(out / "manifest.csv")
    mixtures = {i: soundfile.read(out / "mixture" / f"{i}.wav", dtype="float32")[0] for i in manifest["id"]}
    for row in serial.mixture.numpy():  # every example is a window of one built mixture
        assert any(any(np.array_equal(row, m[o:o + SEGMENT]) for o in range(0, len(m) - SEGMENT + 1))
                   for m in mixtures.values())
    # --crop active: the window is the one _active_crop_offset picks on the item's built target
    from lassbench.train_examples import _active_crop_offset

    active = open_training_data(out, mixing="fixed", seed=0, crop="active")
    for index in range(6):
        example = active.source.example(index, SEGMENT)
        row = active.source.items.iloc[int(active.source._order[1][index])]
        target = soundfile.read(out / "target" / f"{row['id']}.wav", dtype="float32")[0]
        offset = _active_crop_offset(target, SEGMENT, np.random.default_rng([0, index, 7]))
        assert np.array_equal(example.target, target[offset:offset + SEGMENT])
        mixture = soundfile.read(out / "mixture" / f"{row['id']}.wav", dtype="float32")[0]
        assert np.array_equal(example.mixture, mixture[offset:offset + SEGMENT])


def test_resume_with_workers_continues_the_uninterrupted_run_exactly(bench, tmp_path):
    train(_config(bench, tmp_path / "full"))
    train(_config(bench, tmp_path / "half", steps=2, workers=2))
    train(_config(bench, tmp_path / "half", workers=2), resume=True)
    full, resumed = pd.read_csv(tmp_path / "full" / "log.csv"), pd.read_csv(tmp_path / "half" / "log.csv")
    assert list(resumed["step"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed["loss"], full["loss"], rtol=1e-5)


def test_a_resume_rewrites_the_log_rows_after_its_checkpoint(bench, tmp_path):
    out = tmp_path / "run"
    train(_config(bench, out, steps=2))
    with open(out / "log.csv", "a") as fh:  # a run killed after step 3, before its next checkpoint
        fh.write("3,0.5,\n")
    train(_config(bench, out), resume=True)
    assert list(pd.read_csv(out / "log.csv")["step"]) == [1, 2, 3, 4]


# --------------------------------------------------------------------------------------- refused before work


_run = train_cli


@pytest.mark.parametrize("flags, needle", [
    (["--steps", "0"], "--steps 0"),
    (["--lr", "-1"], "--lr -1"),
    (["--lr", "nan"], "--lr nan"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--segment-seconds", "0"], "--segment-seconds"),
    (["--seed", "-1"], "--seed -1"),
    (["--workers", "-2"], "--workers -2"),
    (["--device", "banana"], "not a device"),
    (["--device", "cuda:99"], "--device cuda:99"),
])
def test_bad_training_settings_are_one_error_line_before_any_work(bench, tmp_path, capsys, flags, needle):
    code, err = _run(["lassnet", "--data", bench, "--out", tmp_path / "run", *flags], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert not (tmp_path / "run").exists()


def test_cuda_without_cuda_is_refused(bench, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = _run(["lassnet", "--data", bench, "--out", tmp_path / "run", "--device", "cuda"], capsys)
    assert code == 2 and "no CUDA device" in err


def test_an_invalid_or_occupied_out_is_refused_before_training(bench, tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    for out, needle in [(afile, "not a folder"), (afile / "sub", "is a file")]:
        code, err = _run(["lassnet", "--data", bench, "--out", out, "--steps", "1"], capsys)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    held = tmp_path / "held"
    held.mkdir()
    (held / "model.pt").write_bytes(b"mine")
    code, err = _run(["lassnet", "--data", bench, "--out", held, "--steps", "1"], capsys)
    assert code == 2 and "--resume" in err and (held / "model.pt").read_bytes() == b"mine"


# ------------------------------------------------------------------------------------------------- torchrun


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_training_logs_the_global_batch_loss_of_one_process(bench, tmp_path):
    """2 CPU processes (gloo) x 2 examples vs 1 process x 4 (2 loader workers): same losses, same weights."""
    script = DDP_TRAIN_WORKER
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(bench), str(tmp_path / "ddp"), "2", "0"],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    single_env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    subprocess.run([sys.executable, str(script), str(bench), str(tmp_path / "one"), "4", "2"], env=single_env,
                   check=True, timeout=300)
    ddp, one = pd.read_csv(tmp_path / "ddp" / "log.csv"), pd.read_csv(tmp_path / "one" / "log.csv")
    np.testing.assert_allclose(ddp["loss"], one["loss"], rtol=1e-4)
    a = torch.load(tmp_path / "ddp" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "one" / "model.pt", weights_only=False)["state_dict"]
    for name in b:
        torch.testing.assert_close(a[name].float(), b[name].float(), rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------------------------------ build: snr_db


def test_snr_db_is_the_loudness_difference_the_written_mixture_really_has(bench):
    from lassbench.mixing import integrated_loudness

    manifest = pd.read_csv(bench / "manifest.csv")
    two = manifest[manifest["interferer_ids"].map(lambda v: len(json.loads(v))) == 2]
    assert len(two) >= 3
    planned_off = 0
    for row in two.itertuples():
        target = soundfile.read(bench / "target" / f"{row.id}.wav", dtype="float32")[0]
        interference = sum(soundfile.read(bench / p, dtype="float32")[0] for p in json.loads(row.interferer_paths))
        measured = integrated_loudness(target, 16000) - integrated_loudness(interference.astype(np.float32), 16000)
        assert row.snr_db == pytest.approx(measured, abs=1e-4)
        planned_off += abs(row.planned_snr_db - measured) > 0.01
    assert planned_off >= 1  # the planned value (energies add) is not what two gated interferers give
    one = manifest[manifest["interferer_ids"].map(lambda v: len(json.loads(v))) == 1]
    np.testing.assert_allclose(one["snr_db"], one["planned_snr_db"], atol=1e-3)


# ------------------------------------------------------------------------------------------------ the recipe


@pytest.mark.parametrize("ship", [False, True])
def test_the_synth_recipe_ships_checkpoints_only_when_asked(tmp_path, ship):
    """recipes/synth/run.sh stages 2-3 with `lassbench` and `python` stubbed (they log their arguments): without
    --ship nothing under lassbench/checkpoints/ is written and stage 3 runs what stage 2 trained."""
    from support.command_helpers import run_recipe

    args = ["--stage", "2", "--stop-stage", "3", "--models", "lassnet"] + (["--ship"] if ship else [])
    work, lines = run_recipe("synth", tmp_path, args, env={"PARALLEL": "0"})
    log = "\n".join(lines)
    assert ("half_precision_copy" in log) == ship
    assert (work / "recipes" / "synth" / "logs").exists() == ship
    run_lassnet = next(line for line in log.splitlines() if line.startswith("lassbench run lassnet"))
    assert ("--checkpoint runs/synth/lassnet/model.pt" in run_lassnet) == (not ship)
    run_tag = next(line for line in log.splitlines() if line.startswith("lassbench run tag-queried"))
    assert "--checkpoint" not in run_tag  # not trained in this invocation: the shipped one


@pytest.mark.parametrize("change, phrase", [({"batch_size": 4}, "--batch-size 2 -> 4"),
                                            ({"seed": 5}, "--seed"), ({"steps": 1}, "past --steps 1")])
def test_a_resume_with_other_settings_is_refused(bench, tmp_path, change, phrase):
    out = tmp_path / "run"
    train(_config(bench, out, steps=2))
    with pytest.raises(LassbenchError, match=phrase):
        train(_config(bench, out, **change), resume=True)
