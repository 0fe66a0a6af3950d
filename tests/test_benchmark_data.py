"""`run --data`: a built benchmark, a downloaded corpus folder (built once, inside it) or `real` (found, not
downloaded again)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tiny_benchmark import build_tiny_benchmark

from lassbench.benchmark_data import resolve_benchmark
from lassbench.cli import main as cli_main
from lassbench.corpora.packaged import OWNER_MARK
from lassbench.corpora.synth import synth_corpus


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return build_tiny_benchmark(tmp_path_factory.mktemp("bench"))


def _corpus(folder: Path, *, packaged: bool = False) -> Path:
    """A downloaded corpus as `download audiocaps` / `download packaged` leave it: audio/ + a source manifest."""
    synth_corpus(folder, duration=2.0, clips={"train": 2, "val": 4, "test": 4})
    if packaged:
        (folder / OWNER_MARK).touch()
    return folder


def _with_built(corpus: Path, bench: Path, name: str) -> Path:
    """The corpus as a first run leaves it: its benchmark built inside it (the tiny one stands in)."""
    built = corpus / "benchmarks" / name
    shutil.copytree(bench, built)
    return built


def test_a_corpus_folder_is_run_on_the_benchmark_built_inside_it(bench, tmp_path, capsys):
    corpus = _corpus(tmp_path / "data" / "audiocaps")
    built = _with_built(corpus, bench, "audiocaps")
    cli_main(["run", "mixture", "--data", str(corpus), "--out", str(tmp_path / "results"), "--workers", "0"])
    summary = json.loads((tmp_path / "results" / bench.name / "mixture" / "summary.json").read_text())
    assert summary["n_items"] == 8 and resolve_benchmark(str(corpus / "manifest.csv"), print) == built


def test_data_real_finds_the_corpus_downloaded_to_data_real_and_downloads_nothing(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    built = _with_built(_corpus(tmp_path / "data" / "real", packaged=True), bench, "real")
    notes: list[str] = []
    assert resolve_benchmark("real", notes.append).resolve() == built.resolve() and notes == []
    assert resolve_benchmark("data/real", notes.append).resolve() == built.resolve() and notes == []


def test_a_folder_that_is_neither_benchmark_nor_corpus_says_how_to_make_one(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["run", "mixture", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "build-dataset --sources" in err[0]


@pytest.mark.slow
def test_a_corpus_is_built_once_with_the_protocol_default_and_reused(tmp_path):
    corpus = _corpus(tmp_path / "data" / "audiocaps")
    notes: list[str] = []
    built = resolve_benchmark(str(corpus), notes.append)
    dataset = json.loads((built / "dataset.json").read_text())
    assert built == corpus / "benchmarks" / "audiocaps" and len(notes) == 1
    assert dataset["protocol"] == "lassbench" and set(dataset["counts"]) == {"val", "test"}
    assert resolve_benchmark(str(corpus), notes.append) == built and len(notes) == 1  # reused, not rebuilt


def test_an_unfinished_packaged_download_says_to_rerun_it(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / OWNER_MARK).touch()  # what a download stopped before its manifest leaves
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["run", "mixture", "--data", str(tmp_path / "real"), "--out", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "download packaged --out" in err[0]
