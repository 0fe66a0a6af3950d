"""`lassbench run` result folders: keyed by item set, never silently replaced, one run per --out at a time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lassbench.cli import main as cli_main
from lassbench.errors import LassbenchError
from lassbench.leaderboard import write_leaderboards
from lassbench.result_folders import LOCK_NAME
from lassbench.run import RunConfig, run_model

from support.tiny_benchmark import build_tiny_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return build_tiny_benchmark(tmp_path_factory.mktemp("bench"))


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def lassnet_runs(bench, tmp_path_factory) -> tuple[Path, list]:
    """`run lassnet` (all 8 test items), then `run lassnet --control wrong-query,absent --limit 3` into one --out."""
    out = tmp_path_factory.mktemp("lassnet") / "results"
    run_model(RunConfig(model="lassnet", data=str(bench), out=str(out), workers=0))
    quick = run_model(RunConfig(model="lassnet", data=str(bench), out=str(out), workers=0,
                                control="wrong-query,absent", limit=3))
    return out, quick


def test_a_limited_control_run_goes_beside_the_full_run_and_the_leaderboard_ranks_the_full_one(lassnet_runs,
                                                                                                tmp_path):
    out, quick = lassnet_runs
    assert [o.out_dir.name for o in quick] == ["lassnet+first3", "lassnet@wrong-query+first3",
                                               "lassnet@absent+first3"]
    assert _summary(out / "synth-mini" / "lassnet")["n_items"] == 8  # the full run is still there, untouched
    assert _summary(quick[0].out_dir)["subset"]["label"] == "first 3 of 8 test items"
    write_leaderboards(out, tmp_path / "lb", plots=False)
    main = _table(tmp_path / "lb" / "synth-mini.csv")
    lassnet = main[main["system"] == "lassnet"]
    assert lassnet[["rank", "n_items"]].values.tolist() == [["1", "8"], ["", "3"]]
    assert "partial: first 3 of 8 test items; not ranked" in lassnet["notes"].iloc[1]


def test_the_query_table_takes_a_partial_runs_delta_over_the_items_it_scored(lassnet_runs, tmp_path):
    out = shutil.copytree(lassnet_runs[0], tmp_path / "results")
    quick = lassnet_runs[1]
    shutil.rmtree(out / "synth-mini" / "lassnet+first3")  # left to compare with: the full main run only
    write_leaderboards(out, tmp_path / "lb", plots=False)
    row = _table(tmp_path / "lb" / "synth-mini_queries.csv").set_index("variant").loc["wrong-query"]
    printed = quick[1].summary["metrics"]["sdri"]["mean"] - quick[0].summary["metrics"]["sdri"]["mean"]
    assert float(row["sdri_delta_vs_caption"]) == pytest.approx(printed, abs=1e-3)  # the run's own matched delta
    assert row["delta_items"] == "3" and "over the 3 items both scored" in row["notes"]


def test_a_limit_covering_the_whole_split_is_the_full_run(bench, tmp_path):
    full = run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0))[0]
    notes: list[str] = []
    again = run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0, limit=50),
                      log=notes.append)[0]
    assert again.out_dir == full.out_dir and "kept" in notes[0] and "subset" not in again.summary


def test_another_split_gets_its_own_result_folder(bench, tmp_path):
    test = run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0))[0]
    val = run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path), workers=0, split="val"))[0]
    assert val.out_dir.name == "mixture+val" and _summary(test.out_dir)["item_set_sha1"] != val.summary[
        "item_set_sha1"]


def test_a_finished_run_over_other_items_is_refused_unless_replace_is_given(bench, tmp_path):
    run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path / "out"), workers=0))
    rebuilt = tmp_path / bench.name  # the benchmark rebuilt with other items, under the same name
    shutil.copytree(bench, rebuilt)
    manifest = pd.read_csv(rebuilt / "manifest.csv", dtype=str, keep_default_na=False)
    manifest[manifest["id"] != manifest.loc[manifest["split"] == "test", "id"].iloc[0]].to_csv(
        rebuilt / "manifest.csv", index=False)
    config = RunConfig(model="mixture", data=str(rebuilt), out=str(tmp_path / "out"), workers=0)
    with pytest.raises(LassbenchError, match="another item set.*--replace"):
        run_model(config)
    assert _summary(tmp_path / "out" / bench.name / "mixture")["n_items"] == 8  # kept
    config.replace = True
    assert run_model(config)[0].summary["n_items"] == 7


HOLD_LOCK = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1], timeout=0):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_into_the_same_out_is_refused_by_the_lock_and_writes_nothing(bench, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out / LOCK_NAME)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process is writing into OUT
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["run", "mixture", "--data", str(bench), "--out", str(out), "--workers", "0"])
    finally:
        holder.communicate("")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "another `lassbench run`" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # no result, no partial, no temp file
    run_model(RunConfig(model="mixture", data=str(bench), out=str(out), workers=0))  # once it is released
