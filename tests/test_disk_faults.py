"""A full disk or a read-only cache is one error line, leaves no debris, and a rerun after freeing space completes.

The disks are real: small tmpfs mounts (skipped where this process may not mount one)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from lassbench.audio import TEMP_MARK, write_audio
from lassbench.cli import main as cli_main

from support.tiny_benchmark import build_tiny_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return build_tiny_benchmark(tmp_path_factory.mktemp("bench"))


def _mount(folder: Path, size: str, *options: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs",
                           str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or done.returncode})")
    return folder


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MiB disk; ``fill(leave)`` leaves ``leave`` bytes free and returns a function that frees them again."""
    disk = _mount(tmp_path / "disk", "4m")

    def fill(leave: int):
        filler = disk / "filler"
        free = _free(disk)
        with open(filler, "wb") as handle:
            handle.write(b"\0" * max(0, free - leave))
        return filler.unlink

    yield disk, fill
    subprocess.run(["umount", str(disk)], check=False)


def _free(folder: Path) -> int:
    import os

    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def _cli(args: list[str], capsys) -> tuple[int, list[str]]:
    try:
        cli_main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("error", "internal"))]
    return code, err


def _debris(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_MARK in p.name]


def test_run_on_a_full_disk_is_one_line_and_the_rerun_completes_with_the_same_scores(bench, small_disk, tmp_path,
                                                                                       capsys):
    disk, fill = small_disk
    args = ["run", "mixture", "--data", bench, "--workers", "0", "--save-audio", "--batch-size", "2"]
    free_again = fill(300_000)  # room for two or three estimates of the eight
    code, err = _cli([*args, "--out", disk / "results"], capsys)
    assert code == 2 and len(err) == 1 and "no space left on the device" in err[0] and "rerun" in err[0]
    assert not _debris(disk)
    free_again()
    assert _cli([*args, "--out", disk / "results"], capsys)[0] == 0
    assert _cli([*args, "--out", tmp_path / "reference"], capsys)[0] == 0
    folder = Path(bench.name) / "mixture"
    assert (disk / "results" / folder / "per_item.csv").read_bytes() == (
        tmp_path / "reference" / folder / "per_item.csv").read_bytes()
    assert len(list((disk / "results" / folder / "estimates").glob("*.wav"))) == 8 and not _debris(disk)


def test_build_dataset_on_a_full_disk_is_one_line_and_the_rerun_completes(bench, small_disk, tmp_path, capsys):
    disk, fill = small_disk
    sources = bench.parent / "synth" / "manifest.csv"
    args = ["build-dataset", "--sources", sources, "--splits", "test", "--num-items", "6"]
    free_again = fill(400_000)
    code, err = _cli([*args, "--out", disk / "bench"], capsys)
    assert code == 2 and len(err) == 1 and "no space left on the device" in err[0]
    assert not _debris(disk)
    free_again()
    assert _cli([*args, "--out", disk / "bench"], capsys)[0] == 0
    assert _cli([*args, "--out", tmp_path / "reference"], capsys)[0] == 0
    for kind in ("mixture", "target"):
        built = sorted((disk / "bench" / kind).glob("*.wav"))
        assert len(built) == 6
        assert [p.read_bytes() for p in built] == [(tmp_path / "reference" / kind / p.name).read_bytes()
                                                   for p in built]


def test_separate_on_a_full_disk_is_one_line_and_leaves_no_partial_file(small_disk, tmp_path, capsys):
    disk, fill = small_disk
    rng = np.random.default_rng(0)
    write_audio(tmp_path / "mix.wav", 0.1 * rng.standard_normal(16000 * 6).astype(np.float32), 16000)
    args = ["separate", "--input", tmp_path / "mix.wav", "--query", "a dog barks", "--output", disk / "dog.wav"]
    free_again = fill(100_000)  # the estimate needs 384 kB
    code, err = _cli(args, capsys)
    assert code == 2 and len(err) == 1 and "cannot write" in err[0] and "no space left" in err[0]
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    free_again()
    assert _cli(args, capsys)[0] == 0 and (disk / "dog.wav").is_file()


def test_a_read_only_cache_is_one_line_naming_lassbench_cache(tmp_path, monkeypatch, capsys):
    cache = _mount(tmp_path / "cache", "1m", "ro")
    try:
        monkeypatch.setenv("LASSBENCH_CACHE", str(cache))
        code, err = _cli(["run", "mixture", "--limit", "2", "--out", tmp_path / "results"], capsys)
    finally:
        subprocess.run(["umount", str(cache)], check=False)
    assert code == 2 and len(err) == 1 and "LASSBENCH_CACHE" in err[0] and "not writable" in err[0]
