"""A name read from data (split, item id, file name, package name) never leaves the folder it names a file in: every
verb refuses one that is not a plain file name, in one line, before writing anything."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lassbench.cli import main
from lassbench.errors import LassbenchError
from lassbench.protocols import BuildRequest
from lassbench.safe_names import check_names, is_plain_name

# an absolute path, a climb out, each separator, a NUL; the absolute one is placed under tmp_path by the tests
BAD_NAMES = ["ABS", "../../escaped", "sub/dir", "back\\slash", "nul\x00byte"]


def _bad(name: str, tmp_path: Path) -> str:
    return str(tmp_path / "outside" / "ABS") if name == "ABS" else name


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    return exited.value.code, capsys.readouterr().err


def assert_refused(code: int, err: str, *phrases: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for phrase in ("not plain file names", *phrases):
        assert phrase in err, err


def assert_nothing_escaped(tmp_path: Path) -> None:
    assert not (tmp_path / "outside").exists()
    assert not list(tmp_path.parent.glob("escaped*")) and not list(tmp_path.parent.parent.glob("escaped*"))


def _wav(path: Path, seconds: float = 1.0, rate: int = 16000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate)).astype(np.float32), rate)
    return path


def _sources(tmp_path: Path, split: str) -> Path:
    """A source manifest of four clips, all in ``split``."""
    folder = tmp_path / "corpus"
    rows = [{"source_id": f"c{k}", "path": _wav(folder / f"c{k}.wav", seed=k).name, "captions": json.dumps([f"c {k}"]),
             "labels": json.dumps([f"class{k}"]), "split": split, "sample_rate": 16000} for k in range(4)]
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def _built(tmp_path: Path, item_id: str) -> Path:
    """A built benchmark by hand whose manifest holds ``item_id`` beside a good one."""
    folder = tmp_path / "bench"
    for kind in ("mixture", "target", "estimates"):
        _wav(folder / kind / "test-000000.wav")
    rows = [{"id": i, "split": "test", "target_id": "c0", "interferer_ids": "[]", "query": "a sound",
             "captions": "[]", "labels": "[]", "sample_rate": 16000} for i in ("test-000000", item_id)]
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def test_the_rule_accepts_ids_people_use_and_refuses_what_leaves_a_folder():
    for name in ("test-000001", "-abc_123XYZ", "Y--0w1YA1Hm4_30.000", "09-07-14_2338_Foz, fisherman.wav", "élan"):
        assert is_plain_name(name), name
    for name in ["", ".", "..", ".hidden", "/abs", "../up", "a/b", "a\\b", "a\x00b", "a\nb", "x" * 201, None, 3]:
        assert not is_plain_name(name), name
    with pytest.raises(LassbenchError, match=r"manifest.csv: split\(s\) that are not plain file names.*'\.\./x'"):
        check_names(["ok", "../x"], "split", "manifest.csv")


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_build_dataset_refuses_a_split_that_would_leave_out(tmp_path, capsys, name):
    split = _bad(name, tmp_path)
    out = tmp_path / "out"
    code, err = run_cli(["build-dataset", "--sources", _sources(tmp_path, split), "--out", out, "--splits", split,
                         "--num-items", 1, "--max-interferers", 1], capsys)
    assert_refused(code, err, "manifest.csv", "split")
    assert_nothing_escaped(tmp_path)
    assert not out.exists()


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_build_dataset_refuses_such_a_split_on_the_command_line_and_in_the_library(tmp_path, capsys, name):
    split = _bad(name, tmp_path)
    code, err = run_cli(["build-dataset", "--sources", _sources(tmp_path, "test"), "--out", tmp_path / "out",
                         "--splits", split], capsys)
    assert_refused(code, err, "--splits")
    with pytest.raises(LassbenchError, match="not plain file names"):
        BuildRequest(splits=(split,))
    assert_nothing_escaped(tmp_path)


def test_build_dataset_refuses_a_folder_whose_file_names_are_not_plain(tmp_path, capsys):
    folder = tmp_path / "folder"
    _wav(folder / "good.wav")
    _wav(folder / "back\\slash.wav")
    code, err = run_cli(["build-dataset", "--sources", folder, "--out", tmp_path / "out"], capsys)
    assert_refused(code, err, "file name", "back\\\\slash.wav")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_run_refuses_item_ids_that_are_not_plain_file_names(tmp_path, capsys, name):
    bench = _built(tmp_path, _bad(name, tmp_path))
    code, err = run_cli(["run", "mixture", "--data", bench, "--out", tmp_path / "results", "--save-audio"], capsys)
    assert_refused(code, err, "item id", str(bench / "manifest.csv"))
    assert_nothing_escaped(tmp_path)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_run_refuses_a_benchmark_name_that_would_leave_out(tmp_path, capsys, name):
    bench = _built(tmp_path, "test-000001")
    _wav(bench / "mixture" / "test-000001.wav")
    (bench / "dataset.json").write_text(json.dumps({"name": _bad(name, tmp_path)}))
    code, err = run_cli(["run", "mixture", "--data", bench, "--out", tmp_path / "results", "--save-audio"], capsys)
    assert_refused(code, err, "benchmark name", "dataset.json")
    assert_nothing_escaped(tmp_path)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_evaluate_refuses_item_ids_that_are_not_plain_file_names(tmp_path, capsys, name):
    bench = _built(tmp_path, _bad(name, tmp_path))
    code, err = run_cli(["evaluate", "--manifest", bench / "manifest.csv", "--estimates", bench / "estimates",
                         "--out", tmp_path / "scores"], capsys)
    assert_refused(code, err, "item id")
    assert not (tmp_path / "scores").exists()


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_train_refuses_item_ids_that_are_not_plain_file_names(tmp_path, capsys, name):
    bench = _built(tmp_path, _bad(name, tmp_path))
    code, err = run_cli(["train", "lassnet", "--data", bench, "--out", tmp_path / "model", "--mixing", "fixed",
                         "--steps", 1], capsys)
    assert_refused(code, err, "item id")
    assert_nothing_escaped(tmp_path)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_listen_build_refuses_item_ids_that_are_not_plain_file_names(tmp_path, capsys, name):
    bench = _built(tmp_path, _bad(name, tmp_path))
    run = tmp_path / "results" / "bench" / "some-system"
    _wav(run / "estimates" / "test-000000.wav")
    code, err = run_cli(["listen", "build", run, "--data", bench, "--out", tmp_path / "page"], capsys)
    assert_refused(code, err, "item id")
    assert not (tmp_path / "page").exists()


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_download_audiocaps_never_fetches_an_id_that_is_not_a_plain_file_name(tmp_path, capsys, name):
    clips = tmp_path / "clips"
    _wav(clips / "good.wav", seconds=10.0)
    metadata = tmp_path / "test.csv"
    pd.DataFrame([{"audiocap_id": 1, "youtube_id": "good", "start_time": 0, "caption": "a sound"},
                  {"audiocap_id": 2, "youtube_id": _bad(name, tmp_path), "start_time": 0, "caption": "x"}]
                 ).to_csv(metadata, index=False)
    out = tmp_path / "audiocaps"
    main(["download", "audiocaps", "--split", "test", "--out", str(out), "--metadata", str(metadata),
          "--source", f"dir:{clips}"])
    failures = pd.read_csv(out / "failures.csv", dtype=str, keep_default_na=False)
    assert failures["reason_class"].tolist() == ["invalid_id"]
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["good.wav"]
    assert_nothing_escaped(tmp_path)


@pytest.mark.parametrize(("field", "name"), [("name", "../../escaped"), ("name", ".."), ("name", "a\x00b"),
                                           ("filename", "pool/.."), ("filename", "pool/back\\slash.deb"),
                                           ("filename", "pool/a\x00b.deb")], ids=repr)
def test_download_packaged_refuses_a_table_whose_package_names_leave_the_folder(tmp_path, capsys, field, name):
    pin = {"name": "good-sounds", "version": "1", "filename": "pool/g/good-sounds_1_all.deb", "sha256": "0" * 64}
    pin[field] = name
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"packages": [pin], "classes": {"bell": {"captions": ["a bell"], "labels": []}},
                                 "rules": [{"package": pin["name"], "match": "wav$", "class": "bell"}]}))
    code, err = run_cli(["download", "packaged", "--table", table, "--out", tmp_path / "real", "--no-apt"], capsys)
    assert_refused(code, err, "package")
    assert_nothing_escaped(tmp_path)
