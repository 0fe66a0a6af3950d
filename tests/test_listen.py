"""The listening-test kit: stimuli, page build from real run folders, and scoring of ratings CSVs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from lassbench.audio import read_audio, write_audio
from lassbench.cli import main
from lassbench.errors import LassbenchError
from lassbench.listen.build import ListenConfig, build_test
from lassbench.listen.page import RATINGS_COLUMNS
from lassbench.listen.scoring import condition_stats, read_test, score_ratings
from lassbench.listen.stimuli import (
    HIDDEN_REFERENCE,
    LOW_ANCHOR,
    MID_ANCHOR,
    MIXTURE,
    REFERENCE,
    anchor_sos,
    trial_stimuli,
)
from lassbench.manifests import ITEM_COLUMNS, write_manifest_csv
from lassbench.mixing import integrated_loudness

RATE = 32000


def sound(seed: int, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * (300 + 40 * seed) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.2 * tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def make_runs(root: Path, n_items: int = 6, systems=("sys-good", "sys-bad"),
              rate: int = RATE) -> tuple[Path, list[Path]]:
    """A built benchmark 'toy' (mixture/, target/, manifest.csv, dataset.json) and run folders
    results/toy/<system>/ with estimates/, run.json and per_item.csv, as `lassbench run --save-audio` writes them."""
    bench = root / "toy"
    rows, per_item = [], {s: [] for s in systems}
    for k in range(n_items):
        item = f"item{k}"
        target, noise = sound(k, rate=rate), sound(100 + k, rate=rate)
        write_audio(bench / "target" / f"{item}.wav", target, rate)
        write_audio(bench / "mixture" / f"{item}.wav", target + noise, rate)
        row = dict.fromkeys(ITEM_COLUMNS, "")
        row.update(id=item, split="test", target_id=f"src{k}", query=f"a tone number {k}", sample_rate=rate)
        rows.append(row)
        for quality, system in enumerate(systems):
            estimate = target + (0.1 + 0.6 * quality) * noise
            write_audio(root / "results" / "toy" / system / "estimates" / f"{item}.wav", estimate, rate)
            per_item[system].append({"item": item, "sdri": 10.0 - 5 * quality + 0.1 * k, "si_sdri": 9.0 - 5 * quality,
                                     "clap_score_i@0123abcd": 0.2 - 0.1 * quality})
    write_manifest_csv(pd.DataFrame(rows, columns=ITEM_COLUMNS), bench / "manifest.csv")
    (bench / "dataset.json").write_text(json.dumps({"name": "toy", "protocol": "lassbench"}))
    runs = []
    for system in systems:
        folder = root / "results" / "toy" / system
        (folder / "run.json").write_text(json.dumps({"system": system, "benchmark": "toy"}))
        pd.DataFrame(per_item[system]).to_csv(folder / "per_item.csv", index=False)
        runs.append(folder)
    return bench, runs


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A 4-trial test page (read-only for the tests that use it)."""
    root = tmp_path_factory.mktemp("listen")
    bench, runs = make_runs(root)
    build_test(ListenConfig(runs=[str(r) for r in runs], out=str(root / "page"), data=str(bench), trials=4))
    return root / "page"


# --- stimuli ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 32000, 44100, 48000])
def test_low_anchor_meets_the_bs1534_filter_mask(rate):
    """Zero-phase (two-pass) response: ripple within ±0.1 dB to 3.5 kHz, >= 25 dB down at 4 kHz, >= 50 at 4.5."""
    _, h = signal.sosfreqz(anchor_sos(3500, rate), worN=np.array([50.0, 1000, 2500, 3500, 4000, 4500]), fs=rate)
    two_pass_db = 20 * np.log10(np.abs(h) ** 2)
    assert np.all(np.abs(two_pass_db[:4]) <= 0.1)
    assert two_pass_db[4] <= -25 and two_pass_db[5] <= -50


def test_stimuli_are_loudness_matched_faded_and_include_both_anchors():
    target, mixture = sound(1), sound(1) + 2 * sound(2)
    stimuli, levels = trial_stimuli(target, mixture, {"sys": 0.1 * target}, RATE, loudness_lufs=-30,
                                    max_seconds=None, where="x")
    assert set(stimuli) == {REFERENCE, HIDDEN_REFERENCE, LOW_ANCHOR, MID_ANCHOR, MIXTURE, "sys"}
    for name, x in stimuli.items():
        assert integrated_loudness(x, RATE) == pytest.approx(-30, abs=0.05), name
        assert abs(x[0]) < 1e-4 and abs(x[-1]) < 1e-4  # raised-cosine fades
    np.testing.assert_array_equal(stimuli[REFERENCE], stimuli[HIDDEN_REFERENCE])
    spectrum = np.abs(np.fft.rfft(stimuli[LOW_ANCHOR]))
    freqs = np.fft.rfftfreq(stimuli[LOW_ANCHOR].size, 1 / RATE)
    assert spectrum[freqs > 4500].max() < 1e-3 * spectrum.max()


def test_a_trial_that_would_clip_is_turned_down_together():
    target = sound(3)
    target[100] = 0.9  # one spike: matching loudness alone would push it far above full scale
    stimuli, levels = trial_stimuli(target, sound(4), {}, RATE, loudness_lufs=-10, max_seconds=None, where="x")
    assert max(np.abs(x).max() for x in stimuli.values()) <= 0.99 + 1e-6
    louds = [integrated_loudness(x, RATE) for x in stimuli.values()]
    assert max(louds) - min(louds) < 0.1
    assert all(v["gain_db"] < 0 for v in levels.values()) or levels


def test_no_mid_anchor_at_16_khz_and_no_test_at_8_khz():
    stimuli, _ = trial_stimuli(sound(1, rate=16000), sound(2, rate=16000), {}, 16000, loudness_lufs=-23,
                               max_seconds=None, where="x")
    assert LOW_ANCHOR in stimuli and MID_ANCHOR not in stimuli
    with pytest.raises(LassbenchError, match="above 8 kHz"):
        trial_stimuli(sound(1, rate=8000), sound(2, rate=8000), {}, 8000, loudness_lufs=-23, max_seconds=None,
                      where="x")


# --- build -----------------------------------------------------------------------------------------------------


def test_build_writes_a_self_contained_page_with_shuffled_conditions(built):
    test = read_test(built)
    assert len(test["trials"]) == 4 and test["systems"] == ["sys-good", "sys-bad"]
    orders = set()
    for trial in test["trials"]:
        ids = [s["id"] for s in trial["stimuli"]]
        assert sorted(ids) == sorted([HIDDEN_REFERENCE, LOW_ANCHOR, MID_ANCHOR, MIXTURE, "sys-good", "sys-bad"])
        orders.add(tuple(ids))
        for stimulus in [*trial["stimuli"], {"file": trial["reference"]}]:
            audio, rate = read_audio(built / stimulus["file"])
            assert rate == RATE and audio.size == RATE
        assert trial["metrics"]["sys-good"]["sdri"] > trial["metrics"]["sys-bad"]["sdri"]
        assert "clap_score_i@0123abcd" in trial["metrics"]["sys-good"]
    assert len(orders) > 1  # conditions are shuffled per trial
    page = (built / "index.html").read_text()
    assert test["test_id"] in page and "fetch(" not in page and "<audio" not in page.split("<script>")[0]
    assert "localStorage" in page and "Blob" in page
    for name in ("sys-good", "sys-bad"):  # system names sit in the script data, not in visible text
        assert name not in page.split("<script>")[0]


def test_same_inputs_give_the_same_test_and_another_seed_another(tmp_path):
    bench, runs = make_runs(tmp_path)
    ids = []
    for seed, out in ((0, "a"), (0, "b"), (1, "c")):
        build_test(ListenConfig(runs=[str(r) for r in runs], out=str(tmp_path / out), data=str(bench), trials=3,
                                seed=seed))
        ids.append(read_test(tmp_path / out)["test_id"])
    assert ids[0] == ids[1] != ids[2]
    assert (tmp_path / "a" / "audio" / "t01" / "1.wav").read_bytes() == (tmp_path / "b" / "audio" / "t01" /
                                                                        "1.wav").read_bytes()


def run_listen(args: list, capsys) -> tuple[int, str, str]:
    code = 0
    try:
        main(["listen", *map(str, args)])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, needle):
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err


def test_build_errors_are_one_line(tmp_path, capsys):
    bench, runs = make_runs(tmp_path, n_items=2)
    code, _, err = run_listen(["build", *runs, "--out", tmp_path / "p", "--data", bench, "--trials", 5], capsys)
    assert_one_line_error(code, err, "fewer than --trials 5")
    code, _, err = run_listen(["build", tmp_path / "nowhere", "--out", tmp_path / "p", "--data", bench], capsys)
    assert_one_line_error(code, err, "--save-audio")
    code, _, err = run_listen(["build", runs[0], runs[0], "--out", tmp_path / "p", "--data", bench], capsys)
    assert_one_line_error(code, err, "same or a reserved system name")
    code, _, err = run_listen(["build", *runs, "--out", tmp_path / "p"], capsys)
    assert_one_line_error(code, err, "pass --data BENCH")
    code, _, err = run_listen(["build", *runs, "--out", tmp_path / "p", "--data", bench, "--max-seconds", 0.1],
                              capsys)
    assert_one_line_error(code, err, "at least 0.5 s")
    code, _, err = run_listen(["build", *runs, "--out", tmp_path / "p", "--data", bench, "--loudness", 5], capsys)
    assert_one_line_error(code, err, "between -70 and 0")
    for value in ("nan", "inf"):
        code, _, err = run_listen(["build", *runs, "--out", tmp_path / "p", "--data", bench, "--max-seconds", value],
                                  capsys)
        assert_one_line_error(code, err, "finite")
    code, _, err = run_listen(["build", *runs, "--out", tmp_path / "p", "--data", bench, "--seed", -1], capsys)
    assert_one_line_error(code, err, "--seed")
    code, _, err = run_listen(["build", *runs, "--out", tmp_path / "p", "--data", bench, "--items", "a,a"], capsys)
    assert_one_line_error(code, err, "more than once")


def test_build_follows_run_json_data_and_refuses_another_build_of_the_benchmark(tmp_path, capsys):
    from lassbench.audio import sha256_file

    bench, runs = make_runs(tmp_path, n_items=3)
    for run in runs:  # what the runner may record: the folder it separated and the manifest's digest
        info = json.loads((run / "run.json").read_text())
        info.update(data=str(bench), manifest_sha256=sha256_file(bench / "manifest.csv"))
        (run / "run.json").write_text(json.dumps(info))
    code, out, err = run_listen(["build", *runs, "--out", tmp_path / "p", "--trials", 2], capsys)
    assert code in (0, None), err
    info["manifest_sha256"] = "0" * 64
    (runs[0] / "run.json").write_text(json.dumps({**info, "system": "sys-good"}))
    code, _, err = run_listen(["build", *runs, "--out", tmp_path / "q", "--trials", 2], capsys)
    assert_one_line_error(code, err, "another build of the benchmark")


def test_synth_runs_use_the_built_synth_benchmark_as_it_is(tmp_path, monkeypatch, capsys):
    """No --data: the default synth build is read where run built it, never built or refreshed here."""
    _, runs = make_runs(tmp_path, n_items=2)
    for run in runs:
        (run / "run.json").write_text(json.dumps({"system": run.name, "benchmark": "synth"}))
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path / "empty-cache"))
    code, _, err = run_listen(["build", *runs, "--out", tmp_path / "p", "--trials", 1], capsys)
    assert_one_line_error(code, err, "the synth benchmark the runs separated is not there")
    assert not (tmp_path / "empty-cache").exists()


# --- scoring ---------------------------------------------------------------------------------------------------


def write_ratings(path: Path, test: dict, listener: str, rate) -> Path:
    """A ratings export as the page writes it; ``rate(trial, stimulus_id) -> score``."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(RATINGS_COLUMNS)
        for trial in test["trials"]:
            for stimulus in trial["stimuli"]:
                writer.writerow([test["test_id"], f"s-{listener}", listener, trial["trial_id"], stimulus["id"],
                                 rate(trial, stimulus["id"]), 30000])
    return path


def careful(trial, stimulus: str) -> float:
    """Ratings that follow each system's per-item SDRi (10 + 0.1 k for sys-good, 5 + 0.1 k for sys-bad)."""
    k = int(trial["item"][-1])
    base = {HIDDEN_REFERENCE: 100, LOW_ANCHOR: 15, MID_ANCHOR: 40, MIXTURE: 20, "sys-good": 60 + 4 * k,
            "sys-bad": 30 + 2 * k}
    return base[stimulus]


def test_post_screening_excludes_listeners_who_miss_the_hidden_reference(built, tmp_path):
    test = read_test(built)
    files = [write_ratings(tmp_path / f"{who}.csv", test, who, careful) for who in ("ann", "bob", "cat")]
    # dan rates the hidden reference 80 in 1 of 4 items (25% > 15%): excluded; eve misses none: kept
    files.append(write_ratings(tmp_path / "dan.csv", test, "dan", lambda t, s: 80 if s == HIDDEN_REFERENCE
                               and t["trial_id"] == "t02" else careful(t, s)))
    files.append(write_ratings(tmp_path / "eve.csv", test, "eve", lambda t, s: 95 if s == HIDDEN_REFERENCE
                               else careful(t, s)))
    result = score_ratings(files, built, tmp_path / "res")
    assert result["excluded"] == ["dan"]
    assert result["screening"]["dan"]["reasons"] == ["hidden reference below 90 in 1 of 4 items"]
    table = {c["condition"]: c for c in result["conditions"]}
    expected = np.mean([careful(t, "sys-bad") for t in test["trials"]])
    assert table["sys-bad"]["mean"] == pytest.approx(expected) and table["sys-bad"]["n"] == 4 * 4
    assert table[HIDDEN_REFERENCE]["mean"] == pytest.approx((3 * 100 + 95) / 4)
    saved = json.loads((tmp_path / "res" / "listening_summary.json").read_text())
    assert saved["excluded"] == ["dan"] and (tmp_path / "res" / "conditions.csv").is_file()


def test_mid_anchor_rule_and_its_25_percent_exemption(built, tmp_path):
    test = read_test(built)
    first = test["trials"][0]["trial_id"]

    def anchor_high_everywhere(t, s):
        return 95 if s == MID_ANCHOR else careful(t, s)

    def anchor_high_on_first(t, s):
        return 95 if s == MID_ANCHOR and t["trial_id"] == first else careful(t, s)

    files = [write_ratings(tmp_path / "a.csv", test, "a", anchor_high_everywhere)]
    files += [write_ratings(tmp_path / f"{w}.csv", test, w, careful) for w in ("b", "c", "d", "e")]
    assert score_ratings(files, built)["excluded"] == ["a"]
    # two of five (40% > 25%) rate the first item's anchor above 90: that item is exempt, nobody is excluded for it
    files = [write_ratings(tmp_path / f"{w}.csv", test, w, anchor_high_on_first) for w in ("a", "b")]
    files += [write_ratings(tmp_path / f"{w}.csv", test, w, careful) for w in ("c", "d", "e")]
    assert score_ratings(files, built)["excluded"] == []


def test_confidence_interval_is_student_t():
    rows = pd.DataFrame({"rating_stimulus": ["x"] * 4, "rating_score": [50.0, 60, 70, 80], "assessor": list("abcd")})
    row = condition_stats(rows).iloc[0]
    half = 3.182446305284263 * np.std([50, 60, 70, 80], ddof=1) / 2  # t(0.975, 3)
    assert row["mean"] == 65 and row["ci95_high"] - 65 == pytest.approx(half)
    assert (row["median"], row["q1"], row["q3"]) == (65, 57.5, 72.5)


def test_correlation_with_sdri_uses_item_level_listener_means(built, tmp_path):
    test = read_test(built)
    files = [write_ratings(tmp_path / f"{w}.csv", test, w, careful) for w in ("a", "b")]
    result = score_ratings(files, built)
    by_metric = {c["metric"]: c for c in result["correlations"]}
    assert set(by_metric) == {"sdri", "si_sdri", "clap_score_i@0123abcd"}
    assert by_metric["sdri"]["n"] == 8  # 4 trials x 2 systems
    assert by_metric["sdri"]["spearman_rho"] == pytest.approx(1.0)
    xs = [(t["metrics"][s]["sdri"], careful(t, s)) for t in test["trials"] for s in ("sys-good", "sys-bad")]
    expected = np.corrcoef(np.array(xs).T)[0, 1]
    assert by_metric["sdri"]["pearson_r"] == pytest.approx(expected)


def test_a_later_export_replaces_earlier_ratings(built, tmp_path):
    test = read_test(built)
    early = write_ratings(tmp_path / "early.csv", test, "ann", lambda t, s: 10 if s == "sys-bad" else careful(t, s))
    late = write_ratings(tmp_path / "late.csv", test, "ann", careful)
    result = score_ratings([early, late], built)
    expected = np.mean([careful(t, "sys-bad") for t in test["trials"]])
    assert {c["condition"]: c["mean"] for c in result["conditions"]}["sys-bad"] == pytest.approx(expected)
    assert result["duplicate_ratings_dropped"] == len(test["trials"]) * 6


def test_score_errors_are_one_line(built, tmp_path, capsys):
    test = read_test(built)
    other = write_ratings(tmp_path / "x.csv", {**test, "test_id": "feedfeedfeed"}, "ann", careful)
    code, _, err = run_listen(["score", other, "--test", built], capsys)
    assert_one_line_error(code, err, "not of this test")
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(RATINGS_COLUMNS) + f"\n{test['test_id']},s,ann,t01,{HIDDEN_REFERENCE},120,5\n")
    code, _, err = run_listen(["score", bad, "--test", built], capsys)
    assert_one_line_error(code, err, "not a number in 0..100")
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    code, _, err = run_listen(["score", tmp_path / "junk.csv", "--test", built], capsys)
    assert_one_line_error(code, err, "not a ratings export")
    (tmp_path / "header.csv").write_text(",".join(RATINGS_COLUMNS) + "\n")
    code, _, err = run_listen(["score", tmp_path / "header.csv", "--test", built], capsys)
    assert_one_line_error(code, err, "hold no ratings")
    (tmp_path / "empty.json").write_text("{}")
    code, _, err = run_listen(["score", other, "--test", tmp_path / "empty.json"], capsys)
    assert_one_line_error(code, err, "not a test description")


def test_score_cli_prints_the_table(built, tmp_path, capsys):
    test = read_test(built)
    files = [write_ratings(tmp_path / f"{w}.csv", test, w, careful) for w in ("a", "b")]
    code, out, err = run_listen(["score", *files, "--test", built], capsys)
    assert code in (0, None), err
    assert "hidden_reference *" in out and "Spearman" in out and "assessors: 2 (0 excluded" in out
