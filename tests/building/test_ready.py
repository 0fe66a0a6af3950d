"""Ready-made benchmarks (the synth default, built once and reused) and `run --data`: a built benchmark, a downloaded
corpus folder (built once, inside it) or `real` (found, not downloaded again)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import lassbench.ready as ready
from lassbench.build import BuildConfig
from lassbench.cli import main as cli_main
from lassbench.corpora.packaged import OWNER_MARK
from lassbench.corpora.synth import synth_corpus
from lassbench.manifests import read_item_manifest
from lassbench.ready import default_benchmark, resolve_benchmark

from support.tiny_benchmark import build_tiny_benchmark


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


def test_run_says_it_is_building_the_benchmark_before_a_first_use_build(tmp_path, monkeypatch):
    notes: list[str] = []
    monkeypatch.setattr(ready, "default_benchmark", lambda **kw: notes.append("built") or tmp_path)
    monkeypatch.setattr(ready, "default_out", lambda *a: tmp_path / "empty-cache")
    assert resolve_benchmark(None, notes.append) == tmp_path
    assert notes[0].startswith("building the embedded synth benchmark") and notes[1] == "built"


def test_building_into_the_default_synth_folder_drops_a_stale_build_and_records_the_render_code_first(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path))
    out = tmp_path / "benchmarks" / "synth"
    (out / ".lassbench").mkdir(parents=True)
    (out / "manifest.csv").write_text("id,query\n")
    (out / ".lassbench" / "build.json").write_text(json.dumps({"sources": "/old/synth/v1-sr16000/manifest.csv"}))
    found: list[list[str]] = []  # what each build found in its folder
    monkeypatch.setattr(ready, "build_dataset", lambda config: found.append(
        sorted(str(p.relative_to(ready.output_folder(config))) for p in ready.output_folder(config).rglob("*"))))
    ready.build_benchmark(BuildConfig())
    assert found == [[".lassbench", ".lassbench/render.json"]] and "rebuilding" in capsys.readouterr().err
    assert json.loads((out / ".lassbench" / "render.json").read_text()) == {"render_digest": ready.render_digest()}
    ready.build_benchmark(BuildConfig(out=tmp_path / "mine"))  # any other folder is the user's: left as it is
    assert found[1] == []


@pytest.mark.slow
def test_default_benchmark_builds_the_synth_benchmark_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path))
    out = default_benchmark()
    manifest = read_item_manifest(out / "manifest.csv")
    assert out == tmp_path / "benchmarks" / "synth"
    assert manifest["split"].value_counts().to_dict() == {"test": 300, "val": 200}
    assert json.loads((out / "dataset.json").read_text())["name"] == "synth"
    assert set(manifest["condition"]) == {"attribute_contrast", "different_class"}
    stamp = (out / "manifest.csv").stat().st_mtime_ns
    assert default_benchmark(("test",)) == out
    assert (out / "manifest.csv").stat().st_mtime_ns == stamp


def test_checking_the_cached_default_benchmark_does_not_import_the_synth_filters(tmp_path):
    """Every `run` on the default benchmark checks its cache against the synth generator's digest; scipy.signal
    (a second to import) is only needed to generate clips, so the check must not load it."""
    import subprocess
    import sys

    state = tmp_path / "bench" / ready.STATE_DIR
    state.mkdir(parents=True)
    (state / "build.json").write_text(json.dumps({"sources": "elsewhere/manifest.csv"}))
    code = ("import sys; from pathlib import Path; import lassbench.ready as r\n"
            f"r._drop_stale_synth_build(Path({str(tmp_path / 'bench')!r}))\n"
            "print('scipy.signal' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert not (tmp_path / "bench").exists()  # the stale build was dropped: the digest was computed
