"""Signals and temp files: SIGTERM cleans up like Ctrl-C, messages say what a rerun does, kill -9 debris is swept."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lassbench.audio import TEMP_MARK, atomic_path, sweep_stale_temps, temp_prefix, write_audio
from lassbench.cli import ON_INTERRUPT, VERBS

from support.paths import REPO, TESTS

RATE = 16000

# `lassbench separate` through the real CLI entry point, with the network replaced by a slow identity so the test
# controls when the process is mid-write (the real model is exercised by the slow test below).
SLOW_SEPARATE = textwrap.dedent("""
    import sys, time
    import numpy as np
    import lassbench.separate as s

    class Slow(s.Separator):
        def __init__(self):
            self.sample_rate = 16000
        def chunk_function(self, query, negative_query=None):
            def apply(chunk):
                time.sleep(0.02)
                return chunk.copy()
            return apply

    class Entry:
        query_type = "caption"

    s.load_separator = lambda *a, **k: Slow()
    s.text_model_entry = lambda model: Entry()
    s.check_device = lambda device: None
    from lassbench.cli import main
    main(sys.argv[1:])
""")


def _start_separate(folder: Path, script: str | None, seconds: float = 60.0, chunk: str = "0.1") -> subprocess.Popen:
    write_audio(folder / "mix.wav", np.random.default_rng(0).standard_normal(int(RATE * seconds)) * 0.1, RATE)
    args = ["separate", "--input", str(folder / "mix.wav"), "--query", "a dog barks", "--output",
            str(folder / "out" / "est.wav"), "--chunk", chunk, "--overlap", "0.01", "--no-progress"]
    command = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "lassbench", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_growing_temp(folder: Path, process: subprocess.Popen, timeout: float = 60.0) -> Path:
    """Block until a temp file in ``folder`` holds samples (past the WAV header): the process is mid-write."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        temps = [p for p in folder.glob(f".*{TEMP_MARK}*")] if folder.is_dir() else []
        if temps and temps[0].stat().st_size > 16384:
            return temps[0]
        time.sleep(0.02)
    process.kill()
    raise AssertionError("the writer never got going")


@pytest.mark.parametrize("signum, code, first_word", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                      (signal.SIGINT, 130, "interrupted")])
def test_signal_mid_write_removes_the_temp_file_and_says_separate_restarts(tmp_path, signum, code, first_word):
    process = _start_separate(tmp_path, SLOW_SEPARATE)
    _wait_for_growing_temp(tmp_path / "out", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == code
    assert stderr.strip().splitlines()[-1] == f"{first_word}: {ON_INTERRUPT['separate']}"
    assert "Traceback" not in stderr
    # neither a partial output nor its temp file, nor the folder the interrupted write created
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_sigterm_during_a_real_separate_with_the_shipped_model_leaves_nothing(tmp_path):
    process = _start_separate(tmp_path, None, seconds=240.0, chunk="1")
    _wait_for_growing_temp(tmp_path / "out", process, timeout=120)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert not (tmp_path / "out").exists()


def test_every_verb_says_what_an_interruption_leaves():
    assert set(VERBS) <= set(ON_INTERRUPT)
    assert "does not resume" in ON_INTERRUPT["separate"]


# ---------------------------------------------------------------------------------------------------- temp files

KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from lassbench.audio import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half a file")
        print(tmp, flush=True)
        time.sleep(60)
""")


def _debris_of_a_killed_writer(target: Path) -> Path:
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    temp = Path(process.stdout.readline().strip())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdout.close()
    assert temp.exists()  # SIGKILL runs no cleanup: this is the debris
    return temp


def test_sweep_removes_what_a_writer_killed_with_sigkill_left_and_keeps_live_writers_temps(tmp_path):
    debris = _debris_of_a_killed_writer(tmp_path / "a.wav")
    assert debris.name.startswith(".a.wav.") and debris.name.endswith(f"{TEMP_MARK}.wav")
    legacy_old = tmp_path / ".b.wav.k3j4h5g6.tmp.wav"  # what versions before the PID pattern left
    legacy_new = tmp_path / ".c.wav.z9y8x7w6.tmp.wav"
    for path in (legacy_old, legacy_new):
        path.write_bytes(b"x")
    os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
    with atomic_path(tmp_path / "d.wav") as live:  # this process is writing it right now
        live.write_bytes(b"in progress")
        removed = sweep_stale_temps(tmp_path)
        assert live.exists()
    assert sorted(removed) == sorted([debris, legacy_old])
    assert legacy_new.exists() and not debris.exists()
    assert (tmp_path / "d.wav").read_bytes() == b"in progress"


def test_sweep_leaves_user_files_alone_even_when_they_look_hidden(tmp_path):
    keep = [tmp_path / ".hidden.wav", tmp_path / ".a.wav.notes.tmp", tmp_path / "x.wav"]
    for path in keep:
        path.write_bytes(b"user data")
        os.utime(path, (0, 0))
    assert sweep_stale_temps(tmp_path) == []
    assert all(path.exists() for path in keep)


def test_temp_names_carry_this_process_id(tmp_path):
    assert f"-{os.getpid()}-" in temp_prefix(tmp_path / "x.wav")


def test_rerun_of_separate_removes_the_debris_a_killed_run_left(tmp_path):
    (tmp_path / "out").mkdir()
    debris = _debris_of_a_killed_writer(tmp_path / "out" / "est.wav")
    process = _start_separate(tmp_path, SLOW_SEPARATE, seconds=0.5)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert not debris.exists() and [p.name for p in (tmp_path / "out").iterdir()] == ["est.wav"]


@pytest.mark.slow
def test_sigterm_during_a_parallel_build_leaves_no_temp_or_worker_and_the_rerun_completes(tmp_path):
    from lassbench.corpora.synth import synth_corpus

    sources = synth_corpus(tmp_path / "corpus", duration=2.0, clips={"val": 14, "test": 28})
    out = tmp_path / "bench"
    command = [sys.executable, "-m", "lassbench", "build-dataset", "--sources", str(sources), "--out", str(out),
               "--num-items", "val=60,test=120", "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("mixture/*.wav"))) < 5:  # the build is under way
        assert process.poll() is None and time.monotonic() < deadline, "the build ended before it could be stopped"
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr.strip().splitlines()[-1] == f"terminated (SIGTERM): {ON_INTERRUPT['build-dataset']}"
    time.sleep(1.0)
    assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == []
    assert [p for p in out.rglob(f"*{TEMP_MARK}*")] == []
    assert not (out / "manifest.csv").exists()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len((out / "manifest.csv").read_text().splitlines()) == 181


@pytest.mark.slow
def test_sigterm_during_download_keeps_finished_clips_in_the_manifest_like_ctrl_c(tmp_path):
    from support.audiocaps_download import download_interrupted_by

    names = [f"termClip{i:03d}" for i in range(8)]
    with download_interrupted_by(signal.SIGTERM, tmp_path, names) as killed:
        out = killed.out
        assert killed.process.returncode == 143 and "Traceback" not in killed.stderr
        assert killed.stderr.strip().splitlines()[-1] == f"terminated (SIGTERM): {ON_INTERRUPT['download']}"
        on_disk = sorted(p.name for p in (out / "audio").iterdir())
        assert 2 <= len(on_disk) < len(names) and all(not name.startswith(".") for name in on_disk)
        rerun = subprocess.run(killed.command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(f"{n}.wav" for n in names)


@pytest.mark.slow
def test_resumed_training_removes_the_checkpoint_temp_a_killed_run_left(tmp_path):
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus
    from lassbench.train import TrainConfig, train

    sources = synth_corpus(tmp_path / "synth", duration=2.0, clips={"train": 14, "val": 14, "test": 14})
    bench = tmp_path / "synth-mini"
    build_dataset(BuildConfig(sources=str(sources), out=bench, splits=("val",), num_items={"val": 4}, progress=False))
    config = TrainConfig(model="lassnet", data=str(bench), out=str(tmp_path / "run"), steps=2, batch_size=2,
                         segment_seconds=0.5, val_every=2, val_items=2, checkpoint_every=2, channels=[4, 8],
                         cond_dim=16)
    train(config)
    debris = _debris_of_a_killed_writer(tmp_path / "run" / "last.pt")
    config.steps = 4
    train(config, resume=True)
    assert not debris.exists()
    assert not [p for p in (tmp_path / "run").iterdir() if TEMP_MARK in p.name]


def test_every_test_the_guarantees_page_names_exists():
    page = (REPO / "docs" / "guarantees.md").read_text(encoding="utf-8")
    files = sorted(TESTS.rglob("test_*.py"))
    defined = {name for path in files
               for name in re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M)}
    named = set(re.findall(r"\b(test_\w+)", page)) - {path.stem for path in files}
    assert named and sorted(named - defined) == []
    paths = set(re.findall(r"`(tests/[\w/]+\.py)", page))
    assert paths and sorted(path for path in paths if not (REPO / path).is_file()) == []


@pytest.mark.slow
def test_rerun_of_run_removes_the_result_temps_a_killed_run_left(tmp_path):
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus
    from lassbench.run import RunConfig, run_model

    sources = synth_corpus(tmp_path / "synth", duration=1.0, clips={"val": 14, "test": 14})
    bench = tmp_path / "synth-mini"
    build_dataset(BuildConfig(sources=str(sources), out=bench, splits=("test",), num_items={"test": 2},
                              progress=False))
    out_dir = tmp_path / "results" / "synth-mini" / "mixture"
    out_dir.mkdir(parents=True)
    debris = _debris_of_a_killed_writer(out_dir / "per_item.csv")
    run_model(RunConfig("mixture", data=str(bench), out=str(tmp_path / "results"), workers=0), log=lambda line: None)
    assert not debris.exists() and (out_dir / "per_item.csv").is_file()


def test_in_a_users_folder_only_marked_temps_are_swept(tmp_path):
    debris = _debris_of_a_killed_writer(tmp_path / "a.wav")
    own = tmp_path / ".playlist.backup01.tmp"  # a user's hidden file that happens to look like an old temp name
    own.write_text("my data")
    os.utime(own, (time.time() - 7200, time.time() - 7200))
    assert sweep_stale_temps(tmp_path, legacy=False) == [debris]
    assert own.read_text() == "my data"
