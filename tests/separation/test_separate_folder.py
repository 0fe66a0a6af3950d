"""``lassbench separate`` on a folder: one query for all files or a query per file, resumable, one model load."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import lassbench.separate as separate_module
import lassbench.separate_folder as folder_module
from lassbench.audio import read_audio, write_audio
from lassbench.errors import LassbenchError
from lassbench.separate import SeparateConfig, Separator
from lassbench.separate_folder import RECORD, plan_folder, separate_folder

from support.separator_stubs import STUB_RATE as RATE
from support.separator_stubs import StubModel


class _QueryEcho(StubModel):
    """Scales the mixture by the query's length: which query reached which file shows in the estimate."""

    def __call__(self, mixture, batch):
        return mixture * (len(batch.queries[0]) / 100.0)


@pytest.fixture()
def loads(monkeypatch) -> list[str]:
    """Every model load, recorded; the separator echoes the query's length."""
    calls = []

    def load(model, *args, **kwargs):
        calls.append(model)
        return Separator(_QueryEcho(), model, "caption")

    monkeypatch.setattr(folder_module, "load_separator", load)
    monkeypatch.setattr(separate_module, "load_separator", load)
    return calls


@pytest.fixture()
def mixtures(tmp_path) -> Path:
    folder = tmp_path / "mixtures"
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        write_audio(folder / f"{name}.wav", rng.standard_normal(RATE).astype(np.float32) * 0.1, RATE)
    (folder / "notes.txt").write_text("not audio: ignored")
    return folder


def _gain(estimate: Path, mixture: Path) -> float:
    y, x = read_audio(estimate)[0], read_audio(mixture)[0]
    return float(np.dot(y, x) / np.dot(x, x))


def test_one_query_separates_every_audio_file_with_one_model_load(tmp_path, mixtures, loads):
    jobs = plan_folder(mixtures, tmp_path / "out", query="a dog barks")
    report = separate_folder(jobs, SeparateConfig(input="", output=""), progress=False)
    assert sorted(p.name for p in report.written) == ["a.wav", "b.wav", "c.wav"] and loads == ["lassnet"]
    for name in ("a", "b", "c"):
        assert _gain(tmp_path / "out" / f"{name}.wav", mixtures / f"{name}.wav") == pytest.approx(0.11, abs=1e-3)


def test_a_queries_csv_gives_each_file_its_own_query(tmp_path, mixtures, loads):
    (tmp_path / "q.csv").write_text("file,query\na.wav,rain\nc.wav,a siren wails far away\n")
    jobs = plan_folder(mixtures, tmp_path / "out", queries=tmp_path / "q.csv")
    separate_folder(jobs, SeparateConfig(input="", output=""), progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "c.wav", RECORD]
    assert _gain(tmp_path / "out" / "a.wav", mixtures / "a.wav") == pytest.approx(0.04, abs=1e-3)
    assert _gain(tmp_path / "out" / "c.wav", mixtures / "c.wav") == pytest.approx(0.22, abs=1e-3)


def test_a_rerun_skips_finished_files_and_redoes_one_whose_query_changed(tmp_path, mixtures, loads):
    config = SeparateConfig(input="", output="")
    separate_folder(plan_folder(mixtures, tmp_path / "out", query="rain"), config, progress=False)
    (tmp_path / "out" / "b.wav").unlink()  # as if the first run had been interrupted before b
    again = separate_folder(plan_folder(mixtures, tmp_path / "out", query="rain"), config, progress=False)
    assert [p.name for p in again.written] == ["b.wav"] and len(again.skipped) == 2
    changed = separate_folder(plan_folder(mixtures, tmp_path / "out", query="thunder"), config, progress=False)
    assert len(changed.written) == 3 and not changed.skipped
    rows = list(csv.DictReader(open(tmp_path / "out" / RECORD)))
    assert {row["query"] for row in rows} == {"thunder"}
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # atomic writes, no debris


def test_a_bad_file_is_refused_before_the_model_loads(tmp_path, mixtures, loads):
    (mixtures / "broken.wav").write_text("not audio")
    with pytest.raises(LassbenchError, match="broken.wav"):
        separate_folder(plan_folder(mixtures, tmp_path / "out", query="rain"), SeparateConfig(input="", output=""),
                        progress=False)
    assert loads == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, pattern", [
    ("name,text\na.wav,rain\n", "needs the columns file,query"),
    ("file,query\na.wav,rain\na.wav,snow\n", "a.wav is listed twice"),
    ("file,query\na.wav,\n", "line 2: empty file or query"),
    ("file,query\n", "lists no files"),
])
def test_a_bad_queries_csv_is_one_clear_error(tmp_path, mixtures, content, pattern):
    (tmp_path / "q.csv").write_text(content)
    with pytest.raises(LassbenchError, match=pattern):
        plan_folder(mixtures, tmp_path / "out", queries=tmp_path / "q.csv")


def test_two_inputs_that_would_share_an_output_name_are_refused(tmp_path, mixtures):
    sf.write(mixtures / "a.flac", np.zeros(RATE, dtype=np.float32), RATE)
    with pytest.raises(LassbenchError, match="a.flac and a.wav|a.wav and a.flac"):
        plan_folder(mixtures, tmp_path / "out", query="rain")


def test_the_output_folder_may_not_be_the_input_folder(mixtures):
    with pytest.raises(LassbenchError, match="is the input folder"):
        plan_folder(mixtures, mixtures, query="rain")


def test_cli_folder_without_a_query_is_one_error_line_and_writes_nothing(tmp_path, mixtures):
    result = subprocess.run([sys.executable, "-m", "lassbench", "separate", "--input", str(mixtures),
                             "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: give --query")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_rerun_with_other_sampler_settings_separates_every_file_again(tmp_path, mixtures, loads):
    checkpoint = tmp_path / "flowsep.ckpt"  # never read: the loader is the stub
    checkpoint.write_bytes(b"stub")
    default = SeparateConfig(input="", output="", model="flowsep", checkpoint=str(checkpoint))
    jobs = plan_folder(mixtures, tmp_path / "out", query="rain")
    assert len(separate_folder(jobs, default, progress=False).written) == 3
    chosen = SeparateConfig(input="", output="", model="flowsep", checkpoint=str(checkpoint), steps=3,
                            sampler_seed=7)
    assert len(separate_folder(jobs, chosen, progress=False).written) == 3
    assert len(separate_folder(jobs, chosen, progress=False).skipped) == 3
    rows = list(csv.DictReader(open(tmp_path / "out" / RECORD)))
    assert {row["sampler"] for row in rows} == {"steps=3,seed=7"}


def test_a_rerun_with_other_chunking_or_text_encoder_separates_every_file_again(tmp_path, mixtures, loads):
    checkpoint = tmp_path / "flowsep.ckpt"  # never read: the loader is the stub
    checkpoint.write_bytes(b"stub")
    jobs = plan_folder(mixtures, tmp_path / "out", query="rain")
    plain = SeparateConfig(input="", output="", model="flowsep", checkpoint=str(checkpoint))
    assert len(separate_folder(jobs, plain, progress=False).written) == 3
    chunked = SeparateConfig(input="", output="", model="flowsep", checkpoint=str(checkpoint), chunk_seconds=2.0)
    assert len(separate_folder(jobs, chunked, progress=False).written) == 3
    assert len(separate_folder(jobs, chunked, progress=False).skipped) == 3
    other_encoder = SeparateConfig(input="", output="", model="flowsep", checkpoint=str(checkpoint),
                                   chunk_seconds=2.0, text_encoder=str(tmp_path / "flan-t5"))
    assert len(separate_folder(jobs, other_encoder, progress=False).written) == 3
    rows = list(csv.DictReader(open(tmp_path / "out" / RECORD)))
    assert {row["chunking"] for row in rows} == {"2.0,None"}
