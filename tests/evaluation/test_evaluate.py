"""The evaluation harness and ``lassbench evaluate``: real WAV files, the real CLI entry, hand-computed summaries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lassbench import metrics
from lassbench.audio import write_audio
from lassbench.cli import main
from lassbench.errors import LassbenchError
from lassbench.evaluate import evaluate_arrays, evaluate_folders, score_arrays
from lassbench.manifests import ITEM_COLUMNS, write_manifest_csv
from lassbench.summary import format_table, summarize

RATE = 8000


def tone_item(seed: int, n: int = RATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference, estimate, mixture): a tone in noise, and a partly cleaned estimate."""
    rng = np.random.default_rng(seed)
    reference = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * np.arange(n) / RATE)
    noise = 0.2 * rng.standard_normal(n)
    return (reference.astype(np.float32), (reference + 0.3 * noise).astype(np.float32),
            (reference + noise).astype(np.float32))


def write_folders(root: Path, count: int = 3) -> dict[str, Path]:
    folders = {role: root / role for role in ("ref", "est", "mix")}
    for i in range(count):
        for role, signal in zip(("ref", "est", "mix"), tone_item(i), strict=True):
            write_audio(folders[role] / f"clip{i}.wav", signal, RATE)
    return folders


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = 0
    try:
        main(["evaluate", *map(str, args)])  # returns on success, sys.exit(2) on a LassbenchError
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0]


# --- scoring in memory -----------------------------------------------------------------------------------------


def test_score_arrays_matches_the_metric_functions():
    s, e, x = tone_item(1)
    scores = score_arrays(s, e, x)
    assert list(scores) == list(metrics.DEFAULT_METRICS)
    assert scores["sdri"] == pytest.approx(float(metrics.sdri(s, e, x)), abs=1e-9)
    assert scores["si_sdr"] == pytest.approx(float(metrics.si_sdr(s, e)), abs=1e-9)


def test_evaluate_arrays_keeps_input_order_across_different_lengths():
    items = [(f"item{i}", *tone_item(i, n=RATE + 100 * (i % 2))) for i in range(5)]
    frame = evaluate_arrays(items, ["sdr", "bss_sdr"])
    assert frame["item"].tolist() == [f"item{i}" for i in range(5)]
    for (_, s, e, _), (_, row) in zip(items, frame.iterrows(), strict=True):
        assert row["bss_sdr"] == pytest.approx(float(metrics.bss_sdr(s, e)), abs=1e-9)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda s, e, x: (np.zeros_like(s), e, x), "silent"),
        (lambda s, e, x: (s, np.where(np.arange(e.size) == 3, np.nan, e), x), "NaN or inf"),
        (lambda s, e, x: (s, e[:-10], x), "samples"),
        (lambda s, e, x: (s, e, None), "no mixture"),
    ],
)
def test_evaluate_arrays_rejects_bad_items_naming_them(change, message):
    with pytest.raises(LassbenchError, match=f"item bad.*{message}"):
        evaluate_arrays([("ok", *tone_item(0)), ("bad", *change(*tone_item(1)))])


def test_align_trim_and_pad_score_items_of_different_lengths():
    s, e, x = tone_item(2)
    trimmed = score_arrays(s, e[:-80], x, ["sdr"], align="trim")["sdr"]
    assert trimmed == pytest.approx(float(metrics.sdr(s[:-80], e[:-80])), abs=1e-9)
    padded = score_arrays(s, e[:-80], x, ["sdr"], align="pad")["sdr"]
    assert padded == pytest.approx(float(metrics.sdr(s, np.pad(e[:-80], (0, 80)))), abs=1e-9)


# --- folders through the CLI -----------------------------------------------------------------------------------


def test_cli_scores_folders_and_writes_results(tmp_path, capsys):
    f = write_folders(tmp_path)
    code, out, _ = run_cli(["--references", f["ref"], "--estimates", f["est"], "--mixtures", f["mix"],
                            "--out", tmp_path / "res", "--metrics", "sdr,sdri,bss_sdr"], capsys)
    assert code == 0
    assert "sdri" in out and "95% CI" in out
    per_item = pd.read_csv(tmp_path / "res" / "per_item.csv")
    assert per_item.columns.tolist() == ["item", "sdr", "sdri", "bss_sdr"]
    assert per_item["item"].tolist() == ["clip0", "clip1", "clip2"]
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["n_items"] == 3 and summary["aggregate"] == "mean"
    assert summary["metrics"]["sdri"]["mean"] == pytest.approx(per_item["sdri"].mean())
    assert set(summary) >= {"metrics", "definitions", "breakdowns", "benchmark", "protocol", "lassbench_version"}
    in_memory = evaluate_arrays([(f"clip{i}", *tone_item(i)) for i in range(3)], ["sdr", "sdri", "bss_sdr"])
    np.testing.assert_allclose(per_item["sdri"], in_memory["sdri"], atol=1e-6)


def test_without_mixtures_the_default_metrics_drop_the_improvements(tmp_path):
    f = write_folders(tmp_path, count=2)
    per_item, summary = evaluate_folders(f["ref"], f["est"], out=None)
    assert list(summary["metrics"]) == ["sdr", "si_sdr"]


def write_bad_case(case: str, f: dict[str, Path]) -> None:
    s, e, _ = tone_item(0)
    if case == "silent":
        write_audio(f["ref"] / "clip1.wav", np.zeros(RATE, np.float32), RATE)
    elif case == "nan":
        write_audio(f["est"] / "clip1.wav", np.where(np.arange(RATE) == 5, np.inf, e).astype(np.float32), RATE)
    elif case == "length":
        write_audio(f["est"] / "clip1.wav", e[:-100], RATE)
    elif case == "rate":
        write_audio(f["est"] / "clip1.wav", e, RATE * 2)
    elif case == "missing":
        (f["est"] / "clip1.wav").unlink()
    elif case == "unreadable":
        (f["est"] / "clip1.wav").write_bytes(b"RIFF not really a wav")
    elif case == "stereo":  # two channels were averaged into one score before
        write_audio(f["est"] / "clip1.wav", np.stack([e, s]), RATE)


@pytest.mark.parametrize(
    "case,needles",
    [
        ("silent", ["ref/clip1.wav", "silent"]),
        ("nan", ["est/clip1.wav", "NaN or inf"]),
        ("length", ["est/clip1.wav", "--align"]),
        ("rate", ["est/clip1.wav", "sample rate"]),
        ("missing", ["est", "missing 1 file(s): clip1.wav"]),
        ("unreadable", ["est/clip1.wav", "cannot read audio"]),
        ("stereo", ["est/clip1.wav", "has 2 channels but the references are mono"]),
    ],
)
def test_cli_bad_input_is_one_line_naming_the_file(tmp_path, capsys, case, needles):
    f = write_folders(tmp_path)
    write_bad_case(case, f)
    code, _, err = run_cli(["--references", f["ref"], "--estimates", f["est"], "--mixtures", f["mix"],
                            "--out", tmp_path / "res"], capsys)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "res" / "summary.json").exists()


def test_cli_lists_a_few_missing_names_and_the_count(tmp_path, capsys):
    f = write_folders(tmp_path, count=1)
    for i in range(1, 9):
        write_audio(f["ref"] / f"extra{i}.wav", tone_item(i)[0], RATE)
    code, _, err = run_cli(["--references", f["ref"], "--estimates", f["est"], "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "missing 8 file(s)", "extra1.wav", "and 3 more")


def test_cli_rejects_an_empty_folder(tmp_path, capsys):
    f = write_folders(tmp_path, count=1)
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["--references", f["ref"], "--estimates", tmp_path / "empty", "--out", tmp_path / "r"],
                           capsys)
    assert_one_line_error(code, err, "empty", "no audio files")


def test_cli_rejects_an_unknown_metric(tmp_path, capsys):
    f = write_folders(tmp_path, count=1)
    code, _, err = run_cli(["--references", f["ref"], "--estimates", f["est"], "--out", tmp_path / "r",
                            "--metrics", "sdr,pesq"], capsys)
    assert_one_line_error(code, err, "unknown metric(s) pesq")


def test_cli_improvement_metrics_without_mixtures_is_a_clear_error(tmp_path, capsys):
    f = write_folders(tmp_path, count=1)
    code, _, err = run_cli(["--references", f["ref"], "--estimates", f["est"], "--out", tmp_path / "r",
                            "--metrics", "sdri"], capsys)
    assert_one_line_error(code, err, "sdri", "--mixtures")


def test_the_installed_entry_point_prints_one_line_without_traceback(tmp_path):
    f = write_folders(tmp_path, count=1)
    write_audio(f["ref"] / "clip0.wav", np.zeros(RATE, np.float32), RATE)
    result = subprocess.run(
        [sys.executable, "-m", "lassbench", "evaluate", "--references", str(f["ref"]), "--estimates",
         str(f["est"]), "--out", str(tmp_path / "r")], capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: ") and "silent" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- manifests -------------------------------------------------------------------------------------------------


def write_benchmark(root: Path) -> tuple[Path, Path]:
    """A 4-item built benchmark (item-manifest schema) plus an estimates folder."""
    specs = [  # id, labels, snr_db, condition
        ("a", ["Dog"], -3.0, "different_class"),
        ("b", ["Dog", "Bark"], 2.0, "attribute_contrast"),
        ("c", ["Car"], 4.5, "different_class"),
        ("d", ["Car"], 7.0, "attribute_contrast"),
    ]
    rows = []
    for k, (item, labels, snr, condition) in enumerate(specs):
        reference, estimate, mixture = tone_item(k)
        write_audio(root / "bench" / "target" / f"{item}.wav", reference, RATE)
        write_audio(root / "bench" / "mixture" / f"{item}.wav", mixture, RATE)
        write_audio(root / "est" / f"{item}.wav", estimate, RATE)
        row = dict.fromkeys(ITEM_COLUMNS, "")
        row.update(id=item, split="test", target_id=f"src_{item}", interferer_ids=["n1"], query=f"=a {item} sound",
                   captions=[f"a {item} sound"], labels=labels, snr_db=snr, gain=1.0, sample_rate=RATE,
                   num_samples=RATE, protocol="lassbench", seed=0, condition=condition)
        rows.append(row)
    manifest = write_manifest_csv(pd.DataFrame(rows, columns=ITEM_COLUMNS), root / "bench" / "manifest.csv")
    (root / "bench" / "dataset.json").write_text(json.dumps({"name": "synth", "protocol": "lassbench"}))
    return manifest, root / "est"


def test_cli_manifest_adds_protocol_columns_and_breakdowns(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path)
    code, out, _ = run_cli(["--manifest", manifest, "--estimates", estimates, "--out", tmp_path / "res"], capsys)
    assert code == 0 and "si_sdri" in out
    per_item = pd.read_csv(tmp_path / "res" / "per_item.csv")
    assert per_item.columns.tolist() == ["item", "sdr", "sdri", "si_sdr", "si_sdri", "snr_db", "labels",
                                         "condition", "query"]
    assert json.loads(per_item.loc[1, "labels"]) == ["Dog", "Bark"]
    assert per_item.loc[0, "query"] == "'=a a sound"  # formula-like text defused
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["benchmark"] == "synth" and summary["protocol"] == "lassbench"
    buckets = summary["breakdowns"]["snr_bucket"]
    assert list(buckets) == ["-5..0", "0..5", "5..10"]
    assert buckets["0..5"]["sdri"]["n"] == 2
    assert buckets["0..5"]["sdri"]["mean"] == pytest.approx(per_item["sdri"][[1, 2]].mean())
    assert summary["breakdowns"]["label"]["Dog"]["sdr"]["n"] == 2
    assert summary["breakdowns"]["label"]["Bark"]["sdr"]["n"] == 1
    assert summary["breakdowns"]["condition"]["attribute_contrast"]["si_sdr"]["mean"] == pytest.approx(
        per_item["si_sdr"][[1, 3]].mean())


def test_cli_manifest_with_a_missing_estimate_names_it(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path)
    (estimates / "c.wav").unlink()
    code, _, err = run_cli(["--manifest", manifest, "--estimates", estimates, "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "missing 1 file(s): c.wav", "manifest.csv")


def test_cli_manifest_class_median_mean_uses_the_first_label(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path)
    code, _, _ = run_cli(["--manifest", manifest, "--estimates", estimates, "--out", tmp_path / "res",
                          "--aggregate", "class-median-mean"], capsys)
    assert code == 0
    per_item = pd.read_csv(tmp_path / "res" / "per_item.csv")
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    dog, car = per_item["sdri"][[0, 1]], per_item["sdri"][[2, 3]]  # first labels: Dog, Dog, Car, Car
    assert summary["metrics"]["sdri"]["mean"] == pytest.approx((dog.median() + car.median()) / 2)
    assert summary["metrics"]["sdri"]["n_classes"] == 2


# --- aggregation -----------------------------------------------------------------------------------------------


def hand_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "item": list("abcdef"),
        "sdri": [1.0, 2.0, 9.0, 4.0, 6.0, 20.0],
        "labels": [["x"], ["x"], ["x"], ["y", "x"], ["y"], ["z"]],
    })


def test_aggregate_conventions_on_a_hand_computed_example():
    frame = hand_frame()
    # classes by first label: x = [1, 2, 9], y = [4, 6], z = [20]
    assert summarize(frame, ["sdri"], aggregate="mean")["metrics"]["sdri"]["mean"] == pytest.approx(42 / 6)
    median_mean = summarize(frame, ["sdri"], aggregate="class-median-mean")["metrics"]["sdri"]
    assert median_mean["mean"] == pytest.approx((2 + 5 + 20) / 3)
    class_mean = summarize(frame, ["sdri"], aggregate="class-mean")["metrics"]["sdri"]
    assert class_mean["mean"] == pytest.approx((4 + 5 + 20) / 3)
    assert median_mean["median"] == pytest.approx(5.0) and median_mean["n"] == 6


def test_bootstrap_interval_is_reproducible_and_brackets_the_mean():
    frame = pd.DataFrame({"item": range(50), "sdr": np.random.default_rng(0).normal(5, 2, 50)})
    first = summarize(frame, ["sdr"], n_boot=500, seed=3)["metrics"]["sdr"]
    again = summarize(frame, ["sdr"], n_boot=500, seed=3)["metrics"]["sdr"]
    assert first == again
    assert first["ci95_low"] < first["mean"] < first["ci95_high"]
    assert 0.5 < first["ci95_high"] - first["ci95_low"] < 2.0  # ≈ 2·1.96·2/√50 = 1.1


def test_format_table_aligns_one_row_per_metric():
    table = format_table(summarize(hand_frame(), ["sdri"], n_boot=50))
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "mean", "95%", "CI", "median", "n"]
    assert lines[2].startswith("sdri") and lines[2].rstrip().endswith("6")
    assert len({len(line) for line in lines}) == 1


def test_cli_manifest_rejects_item_ids_that_are_paths(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path)
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    frame.loc[0, "id"] = "../../outside"
    frame.to_csv(manifest, index=False)
    code, _, err = run_cli(["--manifest", manifest, "--estimates", estimates, "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "not plain file names", "../../outside")


def test_cli_rejects_two_files_differing_only_by_extension(tmp_path, capsys):
    f = write_folders(tmp_path)
    write_audio(f["est"] / "clip0.flac", tone_item(0)[1], RATE)
    code, _, err = run_cli(["--references", f["ref"], "--estimates", f["est"], "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "clip0.flac", "clip0.wav")


# --- subsets -------------------------------------------------------------------------------------------------


def _only_estimates(estimates: Path, keep: set[str]) -> None:
    for path in estimates.glob("*.wav"):
        if path.stem not in keep:
            path.unlink()


def test_ids_file_scores_only_those_items_and_the_leaderboard_row_says_it_is_partial(tmp_path, capsys):
    from lassbench.leaderboard import write_leaderboards

    manifest, estimates = write_benchmark(tmp_path)
    _only_estimates(estimates, {"b", "d"})
    (tmp_path / "ids.txt").write_text("d\nb\n")
    out = tmp_path / "results" / "synth" / "mine"
    code, _, err = run_cli(["--manifest", manifest, "--ids", tmp_path / "ids.txt", "--estimates", estimates,
                            "--out", out], capsys)
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and "scored a subset: 2 of 4 items" in err
    assert summary["n_items"] == 2 and summary["subset"]["label"] == "2 of 4 items"
    assert pd.read_csv(out / "per_item.csv")["item"].tolist() == ["b", "d"]  # manifest order
    write_leaderboards(tmp_path / "results", tmp_path / "lb", plots=False)
    row = pd.read_csv(tmp_path / "lb" / "synth.csv", dtype=str, keep_default_na=False).iloc[0]
    assert row["rank"] == "" and "partial: 2 of 4 items; not ranked" in row["notes"]


def test_limit_scores_the_first_items_of_the_split(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path)
    _only_estimates(estimates, {"a", "b", "c"})
    code, _, _ = run_cli(["--manifest", manifest, "--split", "test", "--limit", "3", "--estimates", estimates,
                          "--out", tmp_path / "r"], capsys)
    subset = json.loads((tmp_path / "r" / "summary.json").read_text())["subset"]
    assert code == 0 and subset["label"] == "first 3 of 4 test items" and subset["selection"] == "--limit 3"


def test_a_sub_manifest_beside_the_benchmark_is_scored_as_a_subset_of_it(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path)
    full = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    full[full["id"].isin(["a", "c"])].to_csv(manifest.parent / "five.csv", index=False)
    code, _, _ = run_cli(["--manifest", manifest.parent / "five.csv", "--estimates", estimates, "--out",
                          tmp_path / "r"], capsys)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert code == 0 and summary["n_items"] == 2 and summary["subset"]["of"] == 4


def test_a_sub_manifest_saved_elsewhere_is_given_with_ids(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path)
    full = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    full[full["id"].isin(["a", "c"])].to_csv(tmp_path / "sub.csv", index=False)
    code, _, err = run_cli(["--manifest", tmp_path / "sub.csv", "--estimates", estimates, "--out", tmp_path / "r"],
                           capsys)
    assert_one_line_error(code, err, "benchmark audio missing beside the manifest", "--ids SUBSET.csv")
    code, _, _ = run_cli(["--manifest", manifest, "--ids", tmp_path / "sub.csv", "--estimates", estimates, "--out",
                          tmp_path / "r"], capsys)
    assert code == 0 and json.loads((tmp_path / "r" / "summary.json").read_text())["subset"]["n_items"] == 2


def test_ids_not_in_the_manifest_are_one_line_naming_them(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path)
    (tmp_path / "ids.txt").write_text("a\nzz\n")
    code, _, err = run_cli(["--manifest", manifest, "--ids", tmp_path / "ids.txt", "--estimates", estimates,
                            "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "1 id(s) not in", "zz")


def test_missing_estimates_suggest_scoring_a_subset(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path)
    _only_estimates(estimates, {"a"})
    code, _, err = run_cli(["--manifest", manifest, "--estimates", estimates, "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "missing 3 file(s)", "--ids FILE", "--limit N")
