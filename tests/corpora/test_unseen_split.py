"""The unseen-class test split of the packaged corpus: whole classes held out, scored beside the seen-class test."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_packaged import _build, served  # noqa: F401  (served is a fixture)

from lassbench.cli import main as cli_main
from lassbench.corpora.packaged import UNSEEN_MAX_CLIPS, unseen_classes
from lassbench.leaderboard import build_leaderboards, collect_results
from lassbench.manifests import read_source_manifest


def _classes(**labels: list[str]) -> dict[str, dict]:
    return {name: {"labels": names} for name, names in labels.items()}


def test_unseen_classes_never_share_a_label_with_another_class_nor_take_a_big_one():
    classes = _classes(kick=["Drum", "Bass drum"], snare=["Drum", "Snare drum"], speech=["Speech"], bird=["Bird"],
                       rain=["Rain"], bell=["Bell"], dog=["Dog"], cat=["Cat"], water=["Water"], fire=["Fire"])
    clips = {name: 10 for name in classes} | {"speech": UNSEEN_MAX_CLIPS}
    held = unseen_classes(clips, classes)
    assert len(held) == 2 and not {"kick", "snare", "speech"} & set(held)  # ceil(0.2 * 10) classes
    assert unseen_classes(dict(reversed(clips.items())), classes) == held  # a rule of names, not of table order


def test_the_unseen_split_holds_whole_classes_that_no_train_or_val_clip_has(served, tmp_path):  # noqa: F811
    server, _, table = served
    _build(server, table, tmp_path / "corpus")
    frame = read_source_manifest(tmp_path / "corpus" / "manifest.csv")
    unseen = frame[frame["split"] == "test-unseen"]
    heard = frame[frame["split"].isin(["train", "val"])]
    assert unseen["class"].nunique() >= 2 and not set(unseen["class"]) & set(frame.loc[frame.split != "test-unseen",
                                                                                         "class"])
    assert not {lb for ls in unseen["labels"] for lb in ls} & {lb for ls in heard["labels"] for lb in ls}
    classes = pd.read_csv(tmp_path / "corpus" / "classes.csv")
    assert classes["test-unseen"].sum() == len(unseen)


def test_run_scores_the_unseen_split_beside_the_seen_one(served, tmp_path, capsys):  # noqa: F811
    server, _, table = served
    _build(server, table, tmp_path / "corpus")
    bench = tmp_path / "bench"
    cli_main(["build-dataset", "--sources", str(tmp_path / "corpus"), "--out", str(bench), "--seed", "0"])
    counts = json.loads((bench / "dataset.json").read_text())["counts"]
    assert counts["test-unseen"] >= 1 and counts["test"] >= 1  # built by default beside val and test
    for split in ("test", "test-unseen"):
        cli_main(["run", "mixture", "--data", str(bench), "--split", split, "--out", str(tmp_path / "results")])
    folders = {p.parent.name for p in (tmp_path / "results").rglob("summary.json")}
    assert folders == {"mixture", "mixture+test-unseen"}  # two results, neither replacing the other
    boards = build_leaderboards(collect_results(tmp_path / "results"))
    assert set(boards) == {"bench", "bench+test-unseen"}  # a table each, not one system listed twice


@pytest.mark.parametrize("split", ["test-unseen"])
def test_class_conditioned_on_unseen_classes_is_one_line_not_a_traceback(served, tmp_path, capsys, split):  # noqa: F811
    server, _, table = served
    _build(server, table, tmp_path / "corpus")
    bench = tmp_path / "bench"
    cli_main(["build-dataset", "--sources", str(tmp_path / "corpus"), "--out", str(bench), "--seed", "0"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli_main(["run", "class-conditioned", "--data", str(bench), "--split", split, "--out",
                  str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code != 0 and err[-1].startswith("error: ") and "class-conditioned" in err[-1]
    assert "Traceback" not in "\n".join(err)
