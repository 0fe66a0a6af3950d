"""The SAM Audio judge as an evaluation kind: `lassbench evaluate --judge` and `lassbench run --judge` add its four
reference-free scores per item, their means with bootstrap CIs and the judge's provenance; the leaderboard shows
them with the judge named. The network itself is tested against the official code in
tests/models/test_sam_audio_judge_model.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lassbench.audio import read_audio, sha256_file, write_audio
from lassbench.judge import METRICS, JudgeScorer

from support import published_fixtures as fx
from support.command_helpers import cli_exit_code
from support.tiny_judge import make_tiny_judge

RATE = 16000


@pytest.fixture(scope="module")
def judge_folder(tmp_path_factory) -> Path:
    return make_tiny_judge(tmp_path_factory.mktemp("judge") / "sam-audio-judge-tiny")


@pytest.fixture(scope="module")
def scorer(judge_folder) -> JudgeScorer:
    return JudgeScorer(judge_folder)


def tone_mixtures() -> list[np.ndarray]:
    """Three mixtures at 16 kHz of unequal lengths: a tone plus noise."""
    rng = np.random.default_rng(3)
    out = []
    for k, seconds in enumerate((0.5, 0.8, 0.5)):
        t = np.arange(int(seconds * RATE)) / RATE
        out.append((0.3 * np.sin(2 * np.pi * (300 + 200 * k) * t) + 0.05 * rng.standard_normal(t.size))
                   .astype(np.float32))
    return out


def write_scored_benchmark(root: Path) -> tuple[Path, Path]:
    """A built benchmark whose second item has no target (a real mixture), and estimates for every item."""
    bench = fx.write_benchmark(root / "bench", tone_mixtures(), RATE, ["a dog barks", "the bird sings", "a car"])
    (bench / "target" / "test-000001.wav").unlink()
    for k, mixture in enumerate(tone_mixtures()):
        write_audio(root / "est" / f"test-{k:06d}.wav", 0.8 * mixture, RATE)
    return bench / "manifest.csv", root / "est"


def evaluate_cli(args: list, capsys) -> tuple[int, str, str]:
    code = cli_exit_code(["evaluate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_adds_the_four_scores_everywhere_and_sdr_where_there_is_a_target(tmp_path, judge_folder, scorer,
                                                                                   capsys):
    manifest, estimates = write_scored_benchmark(tmp_path)
    code, out, err = evaluate_cli(["--manifest", manifest, "--estimates", estimates, "--out", tmp_path / "res",
                                   "--judge", judge_folder], capsys)
    assert code == 0, err
    per_item = pd.read_csv(tmp_path / "res" / "per_item.csv")
    assert per_item["sdri"].isna().tolist() == [False, True, False]
    assert per_item[list(METRICS)].notna().all().all()
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    for name in METRICS:
        stats = summary["metrics"][name]
        assert stats["n"] == 3 and stats["mean"] == pytest.approx(per_item[name].mean())
        assert stats["ci95_low"] <= stats["mean"] <= stats["ci95_high"]
        assert summary["definitions"][name].startswith("SAM Audio judge")
    assert summary["judge"]["sha256"] == scorer.sha256 and summary["judge"]["sample_rate"] == 48000
    assert summary["judge"]["config_sha256"] == sha256_file(judge_folder / "config.json")
    assert "judge_overall" in out
    for row in per_item.to_dict("records"):  # the files' scores, as the scorer gives them
        estimate, rate = read_audio(estimates / f"{row['item']}.wav")
        mixture, _ = read_audio(manifest.parent / "mixture" / f"{row['item']}.wav")
        expected = scorer.score([row["query"]], [estimate], [mixture], [rate])[0]
        assert [row[name] for name in METRICS] == pytest.approx(expected, abs=1e-5)


def test_items_score_the_same_whatever_the_batch(tmp_path, scorer):
    entries = [(f"i{k}", "a dog barks", 0.8 * m, m, RATE) for k, m in enumerate(tone_mixtures())]
    one_by_one = scorer.score_items(entries, batch_size=1).set_index("item")
    together = scorer.score_items(entries, batch_size=3).set_index("item")
    np.testing.assert_allclose(together.to_numpy(), one_by_one.to_numpy(), rtol=1e-5, atol=1e-6)


def test_a_manifest_of_only_real_mixtures_is_scored_by_the_judge_alone(tmp_path, scorer):
    from lassbench.evaluate import evaluate_manifest

    manifest, estimates = write_scored_benchmark(tmp_path)
    for target in (manifest.parent / "target").iterdir():
        target.unlink()
    per_item, summary = evaluate_manifest(manifest, estimates, out=None, judge=scorer)
    assert per_item["judge_overall"].notna().all() and summary["not_scored"]["sdri"]["n"] == 3


def test_a_missing_judge_folder_fails_in_one_line_before_scoring(tmp_path, capsys):
    manifest, estimates = write_scored_benchmark(tmp_path)
    code, _, err = evaluate_cli(["--manifest", manifest, "--estimates", estimates, "--out", tmp_path / "res",
                                 "--judge", tmp_path / "nowhere"], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "not a folder" in err and not (tmp_path / "res" / "summary.json").exists()


def test_a_folder_that_is_not_the_judge_fails_in_one_line(tmp_path, capsys):
    manifest, estimates = write_scored_benchmark(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"in_channels": 768}))
    (tmp_path / "other" / "checkpoint.pt").write_bytes(b"")
    code, _, err = evaluate_cli(["--manifest", manifest, "--estimates", estimates, "--out", tmp_path / "res",
                                 "--judge", tmp_path / "other"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a SAM Audio judge setting" in err


def test_judge_on_folders_needs_the_queries(tmp_path, judge_folder, capsys):
    for role in ("ref", "est"):
        write_audio(tmp_path / role / "x.wav", tone_mixtures()[0], RATE)
    code, _, err = evaluate_cli(["--references", tmp_path / "ref", "--estimates", tmp_path / "est", "--out",
                                 tmp_path / "r", "--judge", judge_folder], capsys)
    assert code == 2 and "--judge needs the queries" in err


def test_the_leaderboard_shows_the_scores_with_the_judge_named(tmp_path, scorer):
    from lassbench.evaluate import evaluate_manifest
    from lassbench.leaderboard import build_leaderboards, collect_results, render_markdown

    manifest, estimates = write_scored_benchmark(tmp_path)
    evaluate_manifest(manifest, estimates, out=tmp_path / "results" / "toy" / "judged", judge=scorer)
    evaluate_manifest(manifest, estimates, out=tmp_path / "results" / "toy" / "plain")
    boards = build_leaderboards(collect_results(tmp_path / "results"))
    main = boards["bench"].main.set_index("system")
    assert main.loc["judged", "judge_overall"] != "" and main.loc["plain", "judge_overall"] == ""
    assert main.loc["judged", "judge_faithfulness_ci95_low"] != ""
    assert f"sha256={scorer.sha256} config={scorer.config_sha256[:12]}" in main.loc["judged", "judge_model"]
    assert main.loc["plain", "judge_model"] == ""
    page = render_markdown(boards)
    table = page[page.index("SAM Audio judge (reference-free"):]
    assert table.splitlines()[2].startswith("| system | SDRi (95% CI) | overall |")
    assert "| judged |" in table and "| plain |" not in table.split("\n\n")[1]
    assert "do not compare" not in table.splitlines()[0]
    other = tmp_path / "results" / "toy" / "other-judge"  # the same scores, said to come from another judge
    shutil.copytree(tmp_path / "results" / "toy" / "judged", other)
    summary = json.loads((other / "summary.json").read_text())
    summary["judge"]["sha256"] = "0" * 64
    (other / "summary.json").write_text(json.dumps(summary))
    page = render_markdown(build_leaderboards(collect_results(tmp_path / "results")))
    assert "Rows scored by different judges" in page[page.index("SAM Audio judge (reference-free"):]


def test_run_adds_the_judge_scores_batch_by_batch(tmp_path, judge_folder, scorer, capsys):
    """`lassbench run --judge`: every row gets the judge's scores from the per-batch hook, equal to scoring the
    saved estimates afterwards; summary.json and run.json name the judge."""
    from support.command_helpers import run_oracle_on_a_tiny_benchmark

    folder, bench = run_oracle_on_a_tiny_benchmark(tmp_path, capsys, "--judge", judge_folder)
    per_item = pd.read_csv(folder / "per_item.csv", dtype={"item": str})
    summary = json.loads((folder / "summary.json").read_text())
    info = json.loads((folder / "run.json").read_text())
    assert summary["judge"]["sha256"] == info["judge"]["sha256"] == scorer.sha256
    assert summary["metrics"]["judge_overall"]["n"] == len(per_item) == 3
    for row in per_item.to_dict("records"):
        estimate, rate = read_audio(folder / "estimates" / f"{row['item']}.wav")
        mixture, _ = read_audio(bench / "mixture" / f"{row['item']}.wav")
        expected = scorer.score([row["query"]], [estimate], [mixture[:estimate.size]], [rate])[0]
        assert [row[name] for name in METRICS] == pytest.approx(expected, abs=1e-5)


def test_run_with_a_missing_judge_folder_fails_in_one_line_before_separating(tmp_path, capsys):
    bench = fx.write_benchmark(tmp_path / "bench", tone_mixtures()[:1], RATE, ["a dog barks"])
    code = cli_exit_code(["run", "mixture", "--data", str(bench), "--out", str(tmp_path / "out"), "--workers", "0",
                          "--judge", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "not a folder" in err.strip().splitlines()[-1]
    assert not list((tmp_path / "out").rglob("per_item.csv"))
