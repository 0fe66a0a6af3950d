"""The shared foundation: atomic audio I/O, manifests, the CLI's one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lassbench.audio import atomic_path, read_audio, write_audio
from lassbench.errors import LassbenchError
from lassbench.manifests import read_dataset_json, read_manifest, write_manifest_csv


def test_write_then_read_round_trips_float32_exactly(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, 1000).astype(np.float32)
    write_audio(tmp_path / "a.wav", x, 16000)
    y, sr = read_audio(tmp_path / "a.wav")
    assert sr == 16000 and np.array_equal(x, y)


def test_read_resamples_when_asked(tmp_path):
    write_audio(tmp_path / "a.wav", np.zeros(32000, dtype=np.float32), 32000)
    y, sr = read_audio(tmp_path / "a.wav", sample_rate=16000)
    assert sr == 16000 and len(y) == 16000


def test_failed_atomic_write_leaves_neither_the_target_nor_a_temp_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.wav") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    write_audio(tmp_path / "a.wav", np.zeros(10, dtype=np.float32), 8000)
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.wav").stat().st_mode & 0o777 == 0o666 & ~mask


def test_unreadable_audio_names_the_file(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(LassbenchError, match="bad.wav"):
        read_audio(tmp_path / "bad.wav")


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.wav", "missing.wav: no such file"),
    (lambda d: d, "is a folder, not an audio file"),
])
def test_reading_a_missing_file_or_a_folder_says_so_and_names_it(tmp_path, make, message):
    with pytest.raises(LassbenchError, match=message) as caught:
        read_audio(make(tmp_path))
    assert "System error" not in str(caught.value)


def test_help_examples_keep_their_line_breaks():
    """A backslash at the end of a docstring line joins it to the next one unless it is escaped."""
    import re

    import click

    from lassbench.cli import cli

    context = click.Context(cli)
    for verb in cli.list_commands(context):
        help_text = cli.get_command(context, verb).help or ""
        assert not re.search(r"\S {4,}--\w", help_text), verb  # an option run into the previous line's text


def test_manifest_cells_that_look_like_formulas_are_defused_and_restored_on_read(tmp_path):
    frame = pd.DataFrame({"source_id": ["-0Gj8-vB1q4", "=cmd()", "plain"], "captions": [["a"], [], ["b"]]})
    write_manifest_csv(frame, tmp_path / "m.csv")
    raw = (tmp_path / "m.csv").read_text()
    assert "'=cmd()" in raw and "\n=cmd()" not in raw
    back = read_manifest(tmp_path / "m.csv", ["source_id"])
    assert list(back["source_id"]) == ["-0Gj8-vB1q4", "=cmd()", "plain"]


def test_cli_version_and_help_work():
    out = subprocess.run([sys.executable, "-m", "lassbench", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "lassbench" in out.stdout
    out = subprocess.run([sys.executable, "-m", "lassbench", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "evaluate" in out.stdout and "run" in out.stdout


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage"])
def test_unreadable_dataset_json_is_one_clear_error(tmp_path, content):
    assert read_dataset_json(tmp_path) == {}  # absent: nothing described
    (tmp_path / "dataset.json").write_bytes(content)
    with pytest.raises(LassbenchError, match="cannot read dataset.json"):
        read_dataset_json(tmp_path)


@pytest.mark.parametrize("argv", [
    ["separate", "--input", "x.wav", "--query", "q", "--output", "o.wav", "--chunk", "abc"],
    ["run", "lassnet", "--bogus"],
    ["nosuchverb"],
])
def test_option_errors_are_one_error_line_and_exit_2(argv, capsys):
    from lassbench.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err


def test_a_list_cell_that_is_not_json_names_the_file_column_and_row(tmp_path):
    from lassbench.manifests import read_item_manifest

    path = tmp_path / "manifest.csv"
    pd.DataFrame({"id": ["a", "b"], "query": ["x", "y"], "labels": ['["Dog"]', "dog"]}).to_csv(path, index=False)
    with pytest.raises(LassbenchError, match=r"manifest\.csv: column 'labels', row 3: expected a JSON list"):
        read_item_manifest(path)


def test_a_failed_atomic_write_leaves_no_folder_it_created(tmp_path):
    target = tmp_path / "new" / "deep" / "x.wav"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("writer failed")
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done"
