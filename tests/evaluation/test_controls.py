"""Query controls of `lassbench run`: absent, interferer, negative (and wrong-query), through to the leaderboard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lassbench.audio import read_audio
from lassbench.controls import FALSE_SEPARATION_FLOOR_DB, false_separation, parse_controls
from lassbench.corpora import resolve_sources
from lassbench.errors import LassbenchError
from lassbench.evaluate import score_arrays
from lassbench.manifests import read_item_manifest
from lassbench.run import RunConfig, run_model

from support.tiny_benchmark import build_tiny_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return build_tiny_benchmark(tmp_path_factory.mktemp("bench"))


def _sources(bench: Path) -> pd.DataFrame:
    origin = json.loads((bench / "dataset.json").read_text())["sources"]["origin"]
    return resolve_sources(origin).frame


def _run(bench: Path, out: Path, model: str, controls, **kw):
    return {o.variant: o for o in run_model(RunConfig(model=model, data=str(bench), out=str(out), control=controls,
                                                      workers=0, **kw))}


def test_controls_are_given_repeated_or_comma_separated():
    assert parse_controls(["absent,interferer", "wrong-query", "absent"]) == ["absent", "interferer", "wrong-query"]
    assert parse_controls(None) == [] and parse_controls("negative") == ["negative"]
    with pytest.raises(LassbenchError, match="unknown control 'loud'"):
        parse_controls(["absent", "loud"])


def test_false_separation_level_is_output_energy_over_mixture_energy():
    mixture = np.ones(100)
    assert false_separation(mixture, mixture) == 0.0
    assert false_separation(0.1 * mixture, mixture) == pytest.approx(-20.0)
    assert false_separation(np.zeros(100), mixture) == FALSE_SEPARATION_FLOOR_DB


def test_absent_query_names_a_class_of_the_same_split_that_is_not_in_the_mixture(bench, tmp_path):
    outcome = _run(bench, tmp_path, "mixture", "absent")["absent"]
    per_item = pd.read_csv(outcome.out_dir / "per_item.csv")
    items = read_item_manifest(bench / "manifest.csv").set_index("id")
    sources = _sources(bench)
    by_caption = {c: (labels, split) for c, labels, split in zip(
        (c[0] for c in sources["captions"]), sources["labels"], sources["split"], strict=True)}
    label_of = dict(zip(sources["source_id"], sources["labels"], strict=True))
    for item_id, query in zip(per_item["item"], per_item["query"], strict=True):
        labels, split = by_caption[query]
        item = items.loc[item_id]
        present = set(item["labels"]).union(*(label_of[s] for s in item["interferer_ids"]))
        assert split == item["split"] and present.isdisjoint(labels)


def test_mixture_passthrough_has_a_false_separation_level_of_zero_and_no_sdri(bench, tmp_path):
    outcome = _run(bench, tmp_path, "mixture", ["absent"])["absent"]
    per_item = pd.read_csv(outcome.out_dir / "per_item.csv")
    assert np.all(per_item["false_separation_db"] == 0.0) and np.all(per_item["below_-20db"] == 0.0)
    assert "sdri" not in per_item and set(outcome.summary["metrics"]) == {"false_separation_db", "below_-20db"}
    assert outcome.run_info["scored_against"] == "none"


def test_an_oracle_asked_for_an_absent_sound_returns_silence(bench, tmp_path):
    outcome = _run(bench, tmp_path, "oracle-irm", "absent")["absent"]
    metrics = outcome.summary["metrics"]
    assert metrics["false_separation_db"]["mean"] == FALSE_SEPARATION_FLOOR_DB
    assert metrics["below_-20db"]["mean"] == 1.0


def test_interferer_control_asks_for_the_first_interferer_and_scores_against_it(bench, tmp_path):
    outcomes = _run(bench, tmp_path, "mixture", "interferer")
    per_item = pd.read_csv(outcomes["interferer"].out_dir / "per_item.csv")
    items = read_item_manifest(bench / "manifest.csv").set_index("id")
    first_caption = {s: c[0] for s, c in zip(_sources(bench)["source_id"], _sources(bench)["captions"], strict=True)}
    for row in per_item.itertuples():
        assert row.query == first_caption[items.loc[row.item, "interferer_ids"][0]]
        interferer = read_audio(bench / "interferers" / f"{row.item}_0.wav")[0]
        mixture = read_audio(bench / "mixture" / f"{row.item}.wav")[0]
        assert row.sdr == pytest.approx(score_arrays(interferer, mixture, mixture)["sdr"], abs=1e-6)
    np.testing.assert_allclose(per_item["sdri"], 0, atol=1e-9)  # the mixture is its own baseline, whatever is asked
    assert outcomes["interferer"].run_info["scored_against"] == "interferer"


def test_an_oracle_separates_the_interferer_when_asked_for_it(bench, tmp_path):
    outcome = _run(bench, tmp_path, "oracle-irm", "interferer")["interferer"]
    assert outcome.summary["metrics"]["sdri"]["mean"] > 5


def test_negative_control_needs_a_negative_query_column(bench, tmp_path):
    notes: list[str] = []
    outcomes = run_model(RunConfig(model="mixture", data=str(bench), out=str(tmp_path / "a"), control="negative",
                                   workers=0), log=notes.append)
    assert list(o.variant for o in outcomes) == ["default"]
    assert any("negative_query" in n for n in notes)
    copy = tmp_path / "synth-mini"
    shutil.copytree(bench, copy)
    frame = pd.read_csv(copy / "manifest.csv", dtype=str, keep_default_na=False)
    frame["negative_query"] = [f"no {q}" for q in frame["query"]]
    frame.to_csv(copy / "manifest.csv", index=False)
    outcome = _run(copy, tmp_path / "b", "oracle-irm", "negative")["negative"]
    per_item = pd.read_csv(outcome.out_dir / "per_item.csv")
    assert all(q.startswith("no ") for q in per_item["query"])
    assert outcome.run_info["scored_against"] == "interferer" and outcome.summary["metrics"]["sdri"]["mean"] > 5


def test_query_controls_reach_the_leaderboards_query_table(bench, tmp_path):
    from lassbench.cli import main

    results = tmp_path / "results"
    main(["run", "mixture", "--data", str(bench), "--out", str(results), "--workers", "0",
          "--control", "absent", "--control", "interferer"])  # returns on success; errors exit
    main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "board"), "--no-plots",
          "--no-reported", "--markdown", str(tmp_path / "board" / "page.md")])
    table = pd.read_csv(tmp_path / "board" / "synth-mini_queries.csv", dtype=str, keep_default_na=False)
    rows = table.set_index("variant")
    assert {"default", "absent", "interferer"} <= set(rows.index)
    assert float(rows.loc["absent", "false_separation_db"]) == 0.0
    assert float(rows.loc["absent", "below_-20db_share"]) == 0.0
    assert rows.loc["interferer", "scored_against"] == "interferer"
    assert abs(float(rows.loc["interferer", "sdri"])) < 1e-3
    page = (tmp_path / "board" / "page.md").read_text()
    assert "| mixture | absent |" in page and "False-sep." in page


@pytest.mark.slow  # loads the MiniLM text encoder (~20 s on a busy 2-core machine)
def test_tag_queried_models_are_asked_with_the_queried_clips_labels(bench, tmp_path):
    outcomes = _run(bench, tmp_path, "tag-queried", "absent,interferer")
    assert set(outcomes) == {"default", "absent", "interferer"}
    assert outcomes["absent"].summary["metrics"]["false_separation_db"]["n"] == 8


def test_class_conditioned_models_are_asked_for_another_class_they_know(bench, tmp_path):
    outcome = _run(bench, tmp_path, "class-conditioned", "absent")["absent"]
    per_item = pd.read_csv(outcome.out_dir / "per_item.csv")
    assert len(per_item) == 8 and per_item["false_separation_db"].notna().all()


def test_without_the_source_manifest_controls_fall_back_to_the_benchmarks_own_clips(bench, tmp_path):
    copy = tmp_path / "synth-mini"
    shutil.copytree(bench, copy)
    described = json.loads((copy / "dataset.json").read_text())
    described["sources"]["origin"] = str(tmp_path / "moved-away")
    (copy / "dataset.json").write_text(json.dumps(described))
    notes: list[str] = []
    outcomes = run_model(RunConfig(model="mixture", data=str(copy), out=str(tmp_path / "r"), workers=0,
                                   control=["absent", "interferer"]), log=notes.append)
    variants = [o.variant for o in outcomes]
    assert "absent" in variants  # labels of the targets of every split suffice
    assert "interferer" in variants or any(n.startswith("skipped variant interferer") for n in notes)


def test_a_control_asking_a_class_model_for_an_unknown_class_is_skipped_before_separating():
    from types import SimpleNamespace

    from lassbench.controls import VariantPlan, askable

    model = SimpleNamespace(class_index={"Dog": 0, "Bird": 1})
    notes: list[str] = []
    assert askable(model, VariantPlan("absent", ["q", "q"], [["Dog"], ["Bird"]], [None, None]), notes.append)
    assert not askable(model, VariantPlan("absent", ["q"], [["Piano"]], [None]), notes.append)
    assert notes == ["skipped variant absent: the class-conditioned model does not know class(es) Piano"]
    with pytest.raises(LassbenchError, match="Piano"):
        askable(model, VariantPlan("default", ["q"], [["Piano"]], ["target/x.wav"]), notes.append)
