"""Slow end-to-end checks of the two headline paths: the quickstart run and torchrun training."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lassbench.models.registry import MODELS

pytestmark = pytest.mark.slow


def _lassbench(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lassbench", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.skipif(MODELS["lassnet"].shipped_checkpoint() is None, reason="no shipped lassnet checkpoint")
def test_quickstart_run_builds_the_default_benchmark_offline_and_scores_it(tmp_path):
    env = {**os.environ, "LASSBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    done = _lassbench("run", "lassnet", "--limit", "24", "--out", str(tmp_path / "results"), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sdri" in done.stdout
    run_info = json.loads((tmp_path / "results" / "synth" / "lassnet+first24" / "run.json").read_text())
    assert run_info["checkpoint"] == "shipped:lassnet-tiny.pt" and run_info["n_items"] == 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_trains_with_two_cpu_processes(tmp_path):
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus

    sources = synth_corpus(tmp_path / "synth", duration=2.0, clips={"train": 28, "val": 14, "test": 14})
    bench = tmp_path / "bench"
    build_dataset(BuildConfig(sources=str(sources), out=bench, splits=("val",), num_items={"val": 4},
                              progress=False))
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    done = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
         "-m", "lassbench", "train", "lassnet", "--data", str(bench), "--out", str(tmp_path / "run"),
         "--steps", "2", "--batch-size", "2", "--segment-seconds", "0.5", "--val-every", "2",
         "--checkpoint-every", "2"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "model.pt").is_file()
    log = (tmp_path / "run" / "log.csv").read_text().strip().splitlines()
    assert len(log) == 3  # header + 2 steps, written by rank 0 only
