"""The listening-test kit: stimuli, page build from real run folders, and scoring of ratings CSVs."""

from __future__ import annotations

import csv
import html
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
from lassbench.listen.key import read_key
from lassbench.listen.page import RATINGS_COLUMNS, render_page
from lassbench.listen.scoring import condition_stats, score_ratings
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
              rate: int = RATE, queries: list[str] | None = None) -> tuple[Path, list[Path]]:
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
        row.update(id=item, split="test", target_id=f"src{k}", query=queries[k] if queries else f"a tone number {k}",
                   sample_rate=rate)
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
    test = read_key(built)
    assert len(test["trials"]) == 4 and test["systems"] == ["sys-good", "sys-bad"]
    orders = set()
    for trial in test["trials"]:
        conditions = [s["condition"] for s in trial["stimuli"]]
        assert sorted(conditions) == sorted([HIDDEN_REFERENCE, LOW_ANCHOR, MID_ANCHOR, MIXTURE, "sys-good", "sys-bad"])
        orders.add(tuple(conditions))
        for stimulus in [*trial["stimuli"], {"file": trial["reference"]}]:
            audio, rate = read_audio(built / stimulus["file"])
            assert rate == RATE and audio.size == RATE
        assert trial["metrics"]["sys-good"]["sdri"] > trial["metrics"]["sys-bad"]["sdri"]
        assert "clap_score_i@0123abcd" in trial["metrics"]["sys-good"]
    assert len(orders) > 1  # conditions are shuffled per trial
    page = (built / "index.html").read_text()
    assert test["test_id"] in page and "fetch(" not in page and "<audio" not in page.split("<script>")[0]
    assert "localStorage" in page and "Blob" in page


def test_the_folder_for_listeners_names_no_condition_and_the_key_sits_outside_it(built):
    test = read_key(built)
    assert sorted(p.name for p in built.iterdir()) == ["audio", "index.html"]
    assert (built.parent / "page.key.json").is_file()
    conditions = {s["condition"] for t in test["trials"] for s in t["stimuli"]}
    served = [p for p in built.rglob("*") if p.is_file()]
    for path in served:
        text = path.read_bytes().decode("latin-1")
        for condition in conditions:
            assert condition not in str(path.relative_to(built)) and condition not in text, (path, condition)
    page = (built / "index.html").read_text()
    assert test["trials"][0]["item"] not in page and '"sdri"' not in page
    ids = [s["id"] for t in test["trials"] for s in t["stimuli"]]
    assert len(set(ids)) == len(ids) and all(len(i) == 13 and i.startswith("s") for i in ids)


def test_a_rebuild_beside_its_key_keeps_ids_and_a_fresh_build_draws_new_ones(tmp_path):
    bench, runs = make_runs(tmp_path, n_items=3)
    config = ListenConfig(runs=[str(r) for r in runs], out=str(tmp_path / "a"), data=str(bench), trials=2)
    build_test(config)
    first = read_key(tmp_path / "a")
    (tmp_path / "a" / "test.json").write_text("{}")  # what older builds left inside the folder
    build_test(config)
    again = read_key(tmp_path / "a")
    assert again["test_id"] == first["test_id"] and again["trials"] == first["trials"]
    assert not (tmp_path / "a" / "test.json").exists()
    build_test(ListenConfig(runs=[str(r) for r in runs], out=str(tmp_path / "b"), data=str(bench), trials=2))
    other = read_key(tmp_path / "b")
    assert other["test_id"] != first["test_id"]  # same seed, new secret: a listener cannot replay the order
    assert {s["id"] for s in other["trials"][0]["stimuli"]} != {s["id"] for s in first["trials"][0]["stimuli"]}
    # another build into the same folder (another item set) leaves none of the old audio behind
    build_test(ListenConfig(runs=[str(r) for r in runs], out=str(tmp_path / "a"), data=str(bench), trials=1,
                            seed=5))
    files = {p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a" / "audio").rglob("*.wav")}
    latest = read_key(tmp_path / "a")
    assert files == {latest["trials"][0]["reference"], *(s["file"] for s in latest["trials"][0]["stimuli"])}


def test_the_key_cannot_be_written_into_the_folder_for_listeners(tmp_path, capsys):
    bench, runs = make_runs(tmp_path, n_items=2)
    code, _, err = run_listen(["build", *runs, "--out", tmp_path / "p", "--data", bench, "--trials", 1,
                               "--key", tmp_path / "p" / "key.json"], capsys)
    assert_one_line_error(code, err, "outside it")


def test_same_inputs_draw_the_same_items_and_another_seed_others(tmp_path):
    bench, runs = make_runs(tmp_path)
    items = []
    for seed, out in ((0, "a"), (0, "b"), (1, "c")):
        build_test(ListenConfig(runs=[str(r) for r in runs], out=str(tmp_path / out), data=str(bench), trials=3,
                                seed=seed))
        items.append([t["item"] for t in read_key(tmp_path / out)["trials"]])
    assert items[0] == items[1] != items[2]
    a, b = (read_key(tmp_path / out)["trials"][0] for out in "ab")
    assert (tmp_path / "a" / a["reference"]).read_bytes() == (tmp_path / "b" / b["reference"]).read_bytes()


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
    assert_one_line_error(code, err, f"{tmp_path / 'nowhere'}: run folder not found")
    assert "OUT/<benchmark>/<system>" in err and "--save-audio" in err
    (tmp_path / "unsaved").mkdir()
    code, _, err = run_listen(["build", tmp_path / "unsaved", "--out", tmp_path / "p", "--data", bench], capsys)
    assert_one_line_error(code, err, "without --save-audio")
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
                                 rate(trial, stimulus["condition"]), 30000])
    return path


def careful(trial, stimulus: str) -> float:
    """Ratings that follow each system's per-item SDRi (10 + 0.1 k for sys-good, 5 + 0.1 k for sys-bad)."""
    k = int(trial["item"][-1])
    base = {HIDDEN_REFERENCE: 100, LOW_ANCHOR: 15, MID_ANCHOR: 40, MIXTURE: 20, "sys-good": 60 + 4 * k,
            "sys-bad": 30 + 2 * k}
    return base[stimulus]


def test_post_screening_excludes_listeners_who_miss_the_hidden_reference(built, tmp_path):
    test = read_key(built)
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
    test = read_key(built)
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
    test = read_key(built)
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
    test = read_key(built)
    early = write_ratings(tmp_path / "early.csv", test, "ann", lambda t, s: 10 if s == "sys-bad" else careful(t, s))
    late = write_ratings(tmp_path / "late.csv", test, "ann", careful)
    result = score_ratings([early, late], built)
    expected = np.mean([careful(t, "sys-bad") for t in test["trials"]])
    assert {c["condition"]: c["mean"] for c in result["conditions"]}["sys-bad"] == pytest.approx(expected)
    assert result["duplicate_ratings_dropped"] == len(test["trials"]) * 6


def test_score_errors_are_one_line(built, tmp_path, capsys):
    test = read_key(built)
    other = write_ratings(tmp_path / "x.csv", {**test, "test_id": "feedfeedfeed"}, "ann", careful)
    code, _, err = run_listen(["score", other, "--key", built], capsys)
    assert_one_line_error(code, err, "not of this test")
    bad = tmp_path / "bad.csv"
    stimulus = test["trials"][0]["stimuli"][0]["id"]
    bad.write_text(",".join(RATINGS_COLUMNS) + f"\n{test['test_id']},s,ann,t01,{stimulus},120,5\n")
    code, _, err = run_listen(["score", bad, "--key", built], capsys)
    assert_one_line_error(code, err, "not a number in 0..100")
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    code, _, err = run_listen(["score", tmp_path / "junk.csv", "--key", built], capsys)
    assert_one_line_error(code, err, "not a ratings export")
    (tmp_path / "header.csv").write_text(",".join(RATINGS_COLUMNS) + "\n")
    code, _, err = run_listen(["score", tmp_path / "header.csv", "--key", built], capsys)
    assert_one_line_error(code, err, "hold no ratings")
    (tmp_path / "empty.json").write_text("{}")
    code, _, err = run_listen(["score", other, "--key", tmp_path / "empty.json"], capsys)
    assert_one_line_error(code, err, "not a test key")


def test_score_cli_prints_the_table(built, tmp_path, capsys):
    test = read_key(built)
    files = [write_ratings(tmp_path / f"{w}.csv", test, w, careful) for w in ("a", "b")]
    code, out, err = run_listen(["score", *files, "--key", built], capsys)
    assert code in (0, None), err
    assert "hidden_reference *" in out and "Spearman" in out and "assessors: 2 (0 excluded" in out


def test_scores_are_refused_inside_the_folder_for_listeners(built, tmp_path, capsys):
    test = read_key(built)
    ratings = write_ratings(tmp_path / "a.csv", test, "a", careful)
    code, _, err = run_listen(["score", ratings, "--key", built, "--out", built / "results"], capsys)
    assert_one_line_error(code, err, "inside the folder sent to listeners")
    assert not (built / "results").exists()


# --- hostile text: the page, the exported CSV, the scores --------------------------------------------------------

HOSTILE_QUERY = "a dog barks <!--<script> & </script>\u2028next"
HOSTILE_TITLE = "Test __TEST_JSON__ __TITLE__ <b>bold</b>"


def embedded_json(page: str) -> str:
    return page.split("const TEST = ", 1)[1].split(";\nconst KEY", 1)[0]


def test_page_embeds_text_from_data_as_inert_json_and_escaped_html():
    test = {"test_id": "abc", "title": HOSTILE_TITLE, "trials": [
        {"trial_id": "t01", "query": HOSTILE_QUERY, "reference": "audio/t01/ref.wav",
         "stimuli": [{"id": "s1", "condition": "x", "file": "audio/t01/s1.wav"}]}]}
    page = render_page(test)
    data = embedded_json(page)
    assert not set(data) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(data)["trials"][0]["query"] == HOSTILE_QUERY and json.loads(data)["title"] == HOSTILE_TITLE
    heading = page.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert heading == html.escape(HOSTILE_TITLE)  # the placeholder in the title is text, not the JSON
    assert page.count("const TEST = ") == 1 and '"condition"' not in page


def test_scores_csv_guards_system_names_from_run_json_and_keeps_negative_numbers(tmp_path):
    bench, runs = make_runs(tmp_path, n_items=2)
    names = ['=HYPERLINK("http://x.example","y")', "+A1", "-A1-B1-C1"]
    for run, name in zip(runs, names[:2], strict=True):
        (run / "run.json").write_text(json.dumps({"system": name, "benchmark": "toy"}))
    build_test(ListenConfig(runs=[str(r) for r in runs], out=str(tmp_path / "p"), data=str(bench), trials=2))
    test = read_key(tmp_path / "p")
    files = [write_ratings(tmp_path / f"{w}.csv", test, w, lambda t, s, w=w: 95 if s == HIDDEN_REFERENCE else
                           (0 if w == "a" else 30)) for w in ("a", "b")]
    score_ratings(files, tmp_path / "p", tmp_path / "res")
    with open(tmp_path / "res" / "conditions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cells = {row["condition"] for row in rows}
    assert {"'" + n for n in names[:2]} <= cells and not cells & set(names)
    assert any(row["ci95_low"].startswith("-") and float(row["ci95_low"]) < 0 for row in rows)  # a number stays one
    write_manifest_csv(pd.DataFrame({"x": [names[2], "-3.5", "-abc_123XYZ"]}), tmp_path / "x.csv")
    assert (tmp_path / "x.csv").read_text().splitlines()[1:] == ["'-A1-B1-C1", "-3.5", "'-abc_123XYZ"]


def test_a_guarded_listener_id_reads_back_as_typed(built, tmp_path):
    test = read_key(built)
    path = write_ratings(tmp_path / "r.csv", test, "'=1+1", careful)  # what the page writes for "=1+1"
    result = score_ratings([path], built)
    assert list(result["screening"]) == ["=1+1"]


# --- webMUSHRA's results ---------------------------------------------------------------------------------------


def write_webmushra(path: Path, test: dict, sessions: dict[str, tuple], rate, uuid: bool = True) -> Path:
    """``results/<testId>/mushra.csv`` as webMUSHRA's service/write.php appends it: participant fields between
    session_test_id and session_uuid; its own hidden reference is the stimulus ``reference``."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["session_test_id", "name", "email", *(["session_uuid"] if uuid else []), "trial_id",
                         "rating_stimulus", "rating_score", "rating_time", "rating_comment"])
        for session, fields in sessions.items():
            for trial in test["trials"]:
                for stimulus in trial["stimuli"]:
                    name = "reference" if stimulus["condition"] == HIDDEN_REFERENCE else stimulus["id"]
                    writer.writerow(["my_lass_test", *fields, *([session] if uuid else []), trial["trial_id"], name,
                                     rate(trial, stimulus["condition"]), 41000, ""])
    return path


def test_webmushra_results_score_as_the_pages_own_export(built, tmp_path):
    test = read_key(built)
    own = [write_ratings(tmp_path / f"{w}.csv", test, w, careful) for w in ("ann", "bob")]
    web = write_webmushra(tmp_path / "mushra.csv", test, {"u1": ("ann", "a@x"), "u2": ("bob", "b@x")}, careful)
    mine, theirs = score_ratings(own, built), score_ratings([web], built)
    assert theirs["conditions"] == mine["conditions"] and theirs["correlations"] == mine["correlations"]
    assert sorted(theirs["screening"]) == ["ann / a@x", "bob / b@x"]
    older = write_webmushra(tmp_path / "old.csv", test, {"": ("ann", "a@x")}, careful, uuid=False)
    assert score_ratings([older], built)["assessors"] == 1


def test_webmushra_rows_that_cannot_tell_listeners_apart_are_refused(built, tmp_path, capsys):
    test = read_key(built)
    path = tmp_path / "anon.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["session_test_id", "trial_id", "rating_stimulus", "rating_score", "rating_time",
                         "rating_comment"])
        writer.writerow(["x", test["trials"][0]["trial_id"], "reference", 100, 1, ""])
    code, _, err = run_listen(["score", path, "--key", built], capsys)
    assert_one_line_error(code, err, "cannot be told apart")
