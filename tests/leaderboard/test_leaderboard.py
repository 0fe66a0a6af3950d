"""`lassbench leaderboard`: results folders in, ranked per-benchmark CSVs (+ markdown, plots) out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from lassbench.cli import main
from lassbench.errors import LassbenchError
from lassbench.leaderboard import (
    MAIN_COLUMNS,
    QUERY_COLUMNS,
    collect_results,
    read_reported,
    write_leaderboards,
)

from support.paths import REPO

ENERGY_SDR = "energy ratio 10log10(|s|^2/|s-s_hat|^2), as AudioSep/DCASE2024 evaluators"


def write_result(
    root: Path,
    benchmark: str,
    folder: str,
    sdri: float,
    *,
    run: dict | None = None,
    summary_benchmark: str | None = "use-benchmark",
    aggregate: str = "mean",
    per_item: pd.DataFrame | None = None,
) -> Path:
    """A result folder as `lassbench evaluate` / `lassbench run` leave it."""
    out = root / benchmark / folder
    out.mkdir(parents=True)
    means = {"sdr": sdri + 1.0, "sdri": sdri, "si_sdr": sdri + 0.5, "si_sdri": sdri - 0.25}
    metrics = {
        name: {"mean": v, "median": v, "std": 1.0, "ci95_low": v - 0.5, "ci95_high": v + 0.5, "n": 4}
        for name, v in means.items()
    }
    summary = {
        "n_items": 4, "aggregate": aggregate, "metrics": metrics,
        "definitions": {"sdr": ENERGY_SDR, "si_sdr": "scale-invariant SDR, zero-mean"},
        "breakdowns": {},
        "benchmark": benchmark if summary_benchmark == "use-benchmark" else summary_benchmark,
        "protocol": "lassbench", "lassbench_version": "0.1.0",
    }
    (out / "summary.json").write_text(json.dumps(summary))
    if run is not None:
        (out / "run.json").write_text(json.dumps(run))
    if per_item is not None:
        per_item.to_csv(out / "per_item.csv", index=False)
    return out


def run_json(model: str, variant: str = "default", query_type: str = "caption", **extra) -> dict:
    """run.json as `lassbench run` writes it (system `<model>@<variant>` for the study's runs)."""
    record = {
        "model": model, "system": model if variant == "default" else f"{model}@{variant}", "variant": variant,
        "query_type": query_type, "params": 1050000,
        "checkpoint": "tiny.pt", "checkpoint_sha256": "ab" * 32, "text_encoder": "minilm",
        "benchmark": "synth",
        "protocol": "lassbench", "lassbench_version": "0.1.0", "wall_time_s": 1.5, "date": "2026-11-25",
        "n_items": 4,
    }
    return {**record, **extra}


def write_reported(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def synth_results(root: Path) -> Path:
    """Two models, two references, one outside system and a query-robustness study on `synth`."""
    write_result(root, "synth", "lassnet", 6.0, run=run_json("lassnet"))
    write_result(root, "synth", "tagnet", 4.0, run=run_json("tagnet", query_type="tags"))
    write_result(root, "synth", "mixture", 0.0, run=run_json("mixture", query_type="none", params=0))
    write_result(root, "synth", "oracle-irm", 12.0, run=run_json("oracle-irm", query_type="none", params=0))
    write_result(root, "synth", "my-system", 5.0)  # scored with `lassbench evaluate`: no run.json
    # `lassbench run lassnet --queries all`: the main run is the caption baseline, no separate "caption" run
    for variant, sdri in [("wrong-query", -3.0), ("paraphrase", 5.0), ("tags", 4.5), ("caption-2", 5.5)]:
        write_result(root, "synth", f"lassnet@{variant}", sdri, run=run_json("lassnet", variant=variant))
    return root


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def run_default_cli(tmp_path: Path, capsys, *extra: str) -> tuple[int, str, str]:
    """The verb on tmp_path/results into tmp_path/lb."""
    args = ["leaderboard", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb"), *extra]
    return run_cli(args, capsys)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


# ------------------------------------------------------------------------------------------- main table


def test_systems_are_ranked_by_sdri_and_references_are_listed_without_rank(tmp_path):
    write_leaderboards(synth_results(tmp_path / "results"), tmp_path / "lb", plots=False)
    table = read_table(tmp_path / "lb" / "synth.csv")
    assert list(table.columns) == MAIN_COLUMNS
    assert table["system"].tolist() == ["lassnet", "my-system", "tagnet", "oracle-irm", "mixture"]
    assert table["rank"].tolist() == ["1", "2", "3", "", ""]
    assert table["reference"].tolist() == ["no", "no", "no", "yes", "yes"]
    assert table.loc[0, "sdri"] == "6.000" and table.loc[0, "sdri_ci95_low"] == "5.500"


def test_only_default_variants_enter_the_main_table(tmp_path):
    write_leaderboards(synth_results(tmp_path / "results"), tmp_path / "lb", plots=False)
    table = read_table(tmp_path / "lb" / "synth.csv")
    assert not any("@" in system for system in table["system"])
    assert table["system"].tolist().count("lassnet") == 1


def test_outside_system_takes_its_folder_name_and_the_benchmark_of_its_summary(tmp_path):
    write_result(tmp_path / "results", "somewhere", "my-separator", 3.0, summary_benchmark="synth")
    [result] = collect_results(tmp_path / "results")
    assert (result.benchmark, result.system, result.query_type, result.source) == (
        "synth", "my-separator", "unknown", "reproduced")


def test_outside_system_without_benchmark_in_summary_uses_the_parent_folder_name(tmp_path):
    write_result(tmp_path / "results", "clotho-mine", "my-separator", 3.0, summary_benchmark=None)
    [result] = collect_results(tmp_path / "results")
    assert result.benchmark == "clotho-mine"


def test_date_and_checkpoint_come_from_run_json_not_from_the_clock(tmp_path):
    write_result(tmp_path / "results", "synth", "lassnet", 6.0, run=run_json("lassnet", date="2001-02-03"))
    write_leaderboards(tmp_path / "results", tmp_path / "lb", plots=False)
    row = read_table(tmp_path / "lb" / "synth.csv").iloc[0]
    assert (row["date"], row["checkpoint_sha256"], row["params"]) == ("2001-02-03", "ab" * 32, "1050000")


def test_every_row_names_its_sdr_definition_and_aggregation(tmp_path):
    write_result(tmp_path / "results", "synth", "lassnet", 6.0, run=run_json("lassnet"),
                 aggregate="class-mean")
    write_leaderboards(tmp_path / "results", tmp_path / "lb", plots=False)
    row = read_table(tmp_path / "lb" / "synth.csv").iloc[0]
    assert (row["sdr_definition"], row["aggregation"]) == (ENERGY_SDR, "class-mean")
    assert row["si_sdr_definition"] == "scale-invariant SDR, zero-mean"


# ------------------------------------------------------------------------------------------- reported rows


def test_reported_rows_are_ranked_apart_and_never_averaged_with_reproduced_ones(tmp_path):
    write_result(tmp_path / "results", "synth", "lassnet", 6.0, run=run_json("lassnet"))
    reported = write_reported(tmp_path / "reported.csv", [
        {"benchmark": "synth", "system": "lassnet", "sdri": "9.5", "citation": "Paper A"},
        {"benchmark": "synth", "system": "other", "sdri": "2.25", "citation": "Paper B"},
    ])
    write_leaderboards(tmp_path / "results", tmp_path / "lb", reported=reported, plots=False)
    table = read_table(tmp_path / "lb" / "synth.csv")
    assert table[["system", "source", "rank", "sdri", "citation"]].values.tolist() == [
        ["lassnet", "reproduced", "1", "6.000", ""],
        ["lassnet", "reported", "1", "9.500", "Paper A"],
        ["other", "reported", "2", "2.250", "Paper B"],
    ]


def test_reported_rows_of_a_benchmark_without_runs_get_their_own_table(tmp_path):
    write_result(tmp_path / "results", "synth", "lassnet", 6.0, run=run_json("lassnet"))
    reported = write_reported(tmp_path / "reported.csv", [
        {"benchmark": "audiocaps-audiosep", "system": "AudioSep", "sdri": "8.22", "si_sdr": "7.189",
         "citation": "AudioSep README", "aggregation": "mean"},
    ])
    outputs = write_leaderboards(tmp_path / "results", tmp_path / "lb", reported=reported, plots=False)
    assert sorted(p.name for p in outputs.tables) == ["audiocaps-audiosep.csv", "synth.csv"]
    row = read_table(tmp_path / "lb" / "audiocaps-audiosep.csv").iloc[0]
    # AudioSep's "SISDR" is absolute SI-SDR: it must stay in si_sdr, never be shown as an improvement
    assert (row["si_sdr"], row["si_sdri"], row["source"]) == ("7.189", "", "reported")


def test_committed_reported_table_has_a_citation_and_a_metric_definition_per_row():
    rows = read_reported(REPO / "leaderboards" / "reported.csv")
    assert rows and all(r.citation and r.sdr_definition and r.aggregation for r in rows)
    by_benchmark = {r.benchmark: r for r in rows}
    assert by_benchmark["audiocaps-audiosep"].value("sdri") == 8.220
    assert by_benchmark["audioset-audiosep"].aggregation == "class-median-mean"
    assert by_benchmark["dcase2024-val"].value("sdr") == 5.708


# ------------------------------------------------------------------------------------------- query robustness


def test_query_variants_form_their_own_table_in_study_order_with_delta_to_the_main_run(tmp_path):
    write_leaderboards(synth_results(tmp_path / "results"), tmp_path / "lb", plots=False)
    table = read_table(tmp_path / "lb" / "synth_queries.csv")
    assert list(table.columns) == QUERY_COLUMNS
    assert table["variant"].tolist() == ["default", "caption-2", "paraphrase", "tags", "wrong-query"]
    assert set(table["model"]) == {"lassnet"}
    assert table["sdri_delta_vs_caption"].tolist() == ["0.000", "-0.500", "-1.000", "-1.500", "-9.000"]


def test_an_explicit_caption_variant_is_the_baseline_of_the_query_deltas(tmp_path):
    root = tmp_path / "results"
    write_result(root, "synth", "lassnet", 6.0, run=run_json("lassnet"))
    write_result(root, "synth", "lassnet@caption", 7.0, run=run_json("lassnet", variant="caption"))
    write_result(root, "synth", "lassnet@tags", 4.0, run=run_json("lassnet", variant="tags", query_type="tags"))
    write_leaderboards(root, tmp_path / "lb", plots=False)
    table = read_table(tmp_path / "lb" / "synth_queries.csv")
    assert table[["variant", "query_type", "sdri_delta_vs_caption"]].values.tolist() == [
        ["default", "caption", "-1.000"], ["caption", "caption", "0.000"], ["tags", "tags", "-3.000"]]


def test_no_queries_table_is_written_when_no_study_was_run(tmp_path):
    write_result(tmp_path / "results", "synth", "lassnet", 6.0, run=run_json("lassnet"))
    write_leaderboards(tmp_path / "results", tmp_path / "lb", plots=False)
    assert not (tmp_path / "lb" / "synth_queries.csv").exists()


# ------------------------------------------------------------------------------------------- determinism


def test_regenerating_from_the_same_results_gives_byte_identical_csvs(tmp_path):
    results = synth_results(tmp_path / "results")
    first = write_leaderboards(results, tmp_path / "a", plots=False)
    second = write_leaderboards(results, tmp_path / "b", plots=False)
    assert [p.read_bytes() for p in first.tables] == [p.read_bytes() for p in second.tables]


def test_committed_leaderboards_regenerate(tmp_path):
    results, committed = REPO / "leaderboards" / "results", REPO / "leaderboards"
    if not (results.is_dir() and (committed / "synth.csv").is_file()):
        pytest.skip("no committed leaderboards/results/ and synth.csv yet (recipes/synth/run.sh makes them)")
    reported = committed / "reported.csv"
    outputs = write_leaderboards(
        results, tmp_path, reported=reported if reported.is_file() else None, markdown=None, plots=False
    )
    regenerated = {p.name: p.read_bytes() for p in outputs.tables}
    on_disk = {p.name: p.read_bytes() for p in committed.glob("*.csv") if p.name != "reported.csv"}
    assert sorted(regenerated) == sorted(on_disk), "stale or missing leaderboard CSVs: rerun the recipe"
    for name, content in regenerated.items():
        assert content == on_disk[name], f"leaderboards/{name} differs from a regeneration: rerun the recipe"


# ------------------------------------------------------------------------------------ markdown and plots


def test_markdown_page_has_a_table_per_benchmark_and_the_query_study(tmp_path):
    reported = write_reported(tmp_path / "reported.csv", [
        {"benchmark": "dcase2024-val", "system": "Baseline", "sdri": "5.673", "citation": "DCASE README"},
    ])
    page = tmp_path / "docs" / "leaderboard.md"
    write_leaderboards(synth_results(tmp_path / "results"), tmp_path / "lb", reported=reported, markdown=page,
                       plots=False)
    text = page.read_text()
    assert "## dcase2024-val" in text and "## synth" in text and "### synth: query robustness" in text
    assert "| 1 | lassnet | reproduced | caption | 1050000 | 6.000 [5.500, 6.500] |" in text
    assert f"- SDR of lassnet, mixture, my-system, oracle-irm, tagnet: {ENERGY_SDR}" in text


def per_item_frame(sdri: list[float], labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "item": [f"test-{i:06d}" for i in range(len(sdri))], "sdri": sdri,
        "labels": [json.dumps([label]) for label in labels],
    })


def test_plots_are_written_per_benchmark_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")
    root = tmp_path / "results"
    labels = ["Alarm", "Bell", "Alarm", "Bell"]
    write_result(root, "synth", "lassnet", 6.0, run=run_json("lassnet"),
                 per_item=per_item_frame([5.0, 7.0, 6.5, 5.5], labels))
    write_result(root, "synth", "mixture", 0.0, run=run_json("mixture", query_type="none"),
                 per_item=per_item_frame([0.0, 0.0, 0.0, 0.0], labels))
    page = tmp_path / "docs" / "leaderboard.md"
    outputs = write_leaderboards(root, tmp_path / "lb", markdown=page)
    assert outputs.plots == [tmp_path / "lb" / "synth.png"] and outputs.notes == []
    png = outputs.plots[0].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert "![synth](../lb/synth.png)" in page.read_text()


def test_plots_are_skipped_with_a_one_line_note_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    root = tmp_path / "results"
    write_result(root, "synth", "lassnet", 6.0, run=run_json("lassnet"),
                 per_item=per_item_frame([5.0, 7.0], ["Alarm", "Bell"]))
    code, out, err = run_default_cli(tmp_path, capsys, "--no-markdown")
    assert code == 0
    assert "plots skipped: matplotlib is not installed" in err
    assert not list((tmp_path / "lb").glob("*.png"))
    assert (tmp_path / "lb" / "synth.csv").is_file()


# ------------------------------------------------------------------------------------------- CLI


def test_cli_writes_tables_and_markdown_and_uses_reported_csv_beside_the_tables(tmp_path, capsys):
    out = tmp_path / "lb"
    out.mkdir()
    write_reported(out / "reported.csv", [
        {"benchmark": "synth", "system": "Paper system", "sdri": "1.0", "citation": "Paper C"},
    ])
    page = tmp_path / "leaderboard.md"
    code, stdout, _ = run_cli(["leaderboard", "--results", str(synth_results(tmp_path / "results")),
                               "--out", str(out), "--markdown", str(page), "--no-plots"], capsys)
    assert code == 0
    assert f"wrote {out / 'synth.csv'}" in stdout and f"wrote {page}" in stdout
    assert "Paper C" in read_table(out / "synth.csv")["citation"].tolist()
    assert not (out / "reported_queries.csv").exists() and (out / "reported.csv").is_file()


def test_cli_no_reported_leaves_paper_figures_out(tmp_path, capsys):
    out = tmp_path / "lb"
    out.mkdir()
    write_reported(out / "reported.csv", [
        {"benchmark": "synth", "system": "Paper system", "sdri": "1.0", "citation": "Paper C"},
    ])
    code, _, _ = run_cli(["leaderboard", "--results", str(synth_results(tmp_path / "results")),
                          "--out", str(out), "--no-reported", "--no-markdown", "--no-plots"], capsys)
    assert code == 0
    assert set(read_table(out / "synth.csv")["source"]) == {"reproduced"}


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_results_folder_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_cli(["leaderboard", "--results", str(tmp_path / "nope"), "--out", str(tmp_path),
                            "--no-markdown"], capsys)
    assert_one_line_error(code, err, "nope", "results folder not found")


def test_results_folder_without_summaries_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    code, _, err = run_default_cli(tmp_path, capsys, "--no-markdown")
    assert_one_line_error(code, err, "no summary.json found")


def test_malformed_summary_json_is_a_one_line_error_naming_the_file(tmp_path, capsys):
    folder = write_result(tmp_path / "results", "synth", "broken", 1.0)
    (folder / "summary.json").write_text("{not json")
    code, _, err = run_default_cli(tmp_path, capsys, "--no-markdown")
    assert_one_line_error(code, err, str(folder / "summary.json"), "cannot read JSON")


def test_summary_without_metrics_mapping_is_a_one_line_error(tmp_path, capsys):
    folder = write_result(tmp_path / "results", "synth", "broken", 1.0)
    (folder / "summary.json").write_text(json.dumps({"metrics": [1, 2]}))
    code, _, err = run_default_cli(tmp_path, capsys, "--no-markdown")
    assert_one_line_error(code, err, str(folder / "summary.json"), "'metrics'")


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"benchmark": "synth", "system": "X", "sdri": "1.0", "citation": ""}, "empty 'citation'"),
        ({"benchmark": "synth", "system": "X", "sdri": "n/a", "citation": "P"}, "column 'sdri'"),
        ({"benchmark": "synth", "system": "X", "sdri": "", "citation": "P"}, "no metric value"),
        ({"benchmark": "../etc", "system": "X", "sdri": "1.0", "citation": "P"}, "cannot name a leaderboard"),
    ],
)
def test_bad_reported_row_is_a_one_line_error_naming_file_and_line(tmp_path, capsys, row, fragment):
    write_result(tmp_path / "results", "synth", "lassnet", 6.0, run=run_json("lassnet"))
    reported = write_reported(tmp_path / "reported.csv", [row])
    code, _, err = run_default_cli(tmp_path, capsys, "--reported", str(reported), "--no-markdown")
    assert_one_line_error(code, err, f"{reported}:2", fragment)


def test_reported_table_without_citation_column_is_rejected(tmp_path):
    path = write_reported(tmp_path / "reported.csv", [{"benchmark": "synth", "system": "X", "sdri": "1.0"}])
    with pytest.raises(LassbenchError, match="lacks column.*citation"):
        read_reported(path)


def test_same_system_twice_in_one_benchmark_is_an_error_naming_both_folders(tmp_path):
    write_result(tmp_path / "results", "synth", "lassnet", 6.0, run=run_json("lassnet"))
    write_result(tmp_path / "results", "synth", "lassnet-copy", 5.0, run=run_json("lassnet"))
    with pytest.raises(LassbenchError, match="lassnet-copy.*twice.*also .*lassnet"):
        write_leaderboards(tmp_path / "results", tmp_path / "lb", plots=False)


def test_summaries_written_by_the_evaluation_harness_make_a_leaderboard_row(tmp_path):
    evaluate = pytest.importorskip("lassbench.evaluate", reason="the evaluation harness is not in this checkout yet")
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    items = []
    for k in range(4):
        target, noise = rng.standard_normal(16000), rng.standard_normal(16000)
        items.append((f"test-{k:06d}", target, target + 0.1 * noise, target + noise))
    per_item = evaluate.evaluate_arrays(items)
    summary = evaluate.summarize(per_item, ["sdr", "sdri", "si_sdr", "si_sdri"])
    summary.update(benchmark="synth", protocol="lassbench")
    evaluate.write_results(per_item, summary, tmp_path / "results" / "synth" / "my-system")
    write_leaderboards(tmp_path / "results", tmp_path / "lb", plots=False)
    row = read_table(tmp_path / "lb" / "synth.csv").iloc[0]
    assert (row["system"], row["rank"], row["n_items"]) == ("my-system", "1", "4")
    assert float(row["sdri"]) == pytest.approx(summary["metrics"]["sdri"]["mean"], abs=1e-3)
    assert row["sdr_definition"] and row["sdri_ci95_low"] and row["aggregation"] == "mean"


def test_a_query_delta_over_other_items_is_taken_on_the_items_both_scored(tmp_path):
    root = tmp_path / "results"
    main = pd.DataFrame({"item": ["a", "b", "c", "d"], "sdri": [8.0, 6.0, 4.0, 2.0]})
    wrong = pd.DataFrame({"item": ["a", "b"], "sdri": [-1.0, -3.0]})
    write_result(root, "synth", "lassnet", 5.0, run=run_json("lassnet"), per_item=main)
    write_result(root, "synth", "lassnet@wrong-query", -2.0, run=run_json("lassnet", variant="wrong-query"),
                 per_item=wrong)
    write_result(root, "synth", "lassnet@tags", 4.0, run=run_json("lassnet", variant="tags"))  # no per_item.csv
    outputs = write_leaderboards(root, tmp_path / "lb", plots=False)
    table = read_table(tmp_path / "lb" / "synth_queries.csv").set_index("variant")
    assert table.loc["wrong-query", "sdri_delta_vs_caption"] == "-9.000"  # (-1 - 3) / 2 - (8 + 6) / 2, not -7
    assert table.loc["wrong-query", "delta_items"] == "2" and "2 items both scored" in table.loc["wrong-query", "notes"]
    assert table.loc["tags", "sdri_delta_vs_caption"] == "-1.000"  # item set unknown: taken as it is
    assert any("wrong-query" in note and "both scored" in note for note in outputs.notes)
