"""Headline aggregation and the SI-SDR definition chosen by a benchmark's protocol, as the published evaluators do.

AudioSep 944583f: ``benchmark.py`` takes AudioSet's figure as ``np.nanmean`` over classes of each class's
``np.nanmedian``; ``evaluate_music.py`` the ``np.mean`` over its instrument classes of each class's ``np.mean``; the
other lists (and DCASE 2024 Task 9) a plain mean. The expected numbers below are worked out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lassbench import metrics
from lassbench.audio import read_audio, write_audio
from lassbench.cli import main
from lassbench.errors import LassbenchError
from lassbench.evaluate import evaluate_manifest
from lassbench.leaderboard import read_result_folder
from lassbench.manifests import ITEM_COLUMNS, write_manifest_csv
from lassbench.summary import protocol_rules, summarize

RATE = 8000

# per-item SDRi of a small list: class "dog" [1, 2, 9], "car" [4, 6], "rain" [20]
VALUES = [1.0, 2.0, 9.0, 4.0, 6.0, 20.0]
CLASSES = ["dog", "dog", "dog", "car", "car", "rain"]


def frame(classes=CLASSES) -> pd.DataFrame:
    return pd.DataFrame({"item": [f"i{k}" for k in range(len(VALUES))], "sdri": VALUES,
                         "labels": [[c] if c else [] for c in classes]})


def test_audioset_figure_is_the_mean_over_classes_of_the_per_class_median():
    stats = summarize(frame(), ["sdri"], aggregate="class-median-mean")["metrics"]["sdri"]
    assert stats["mean"] == pytest.approx((2 + 5 + 20) / 3)  # medians: dog 2, car 5, rain 20
    assert stats["n_classes"] == 3 and stats["item_mean"] == pytest.approx(42 / 6)


def test_music_figure_is_the_mean_of_per_class_means():
    stats = summarize(frame(), ["sdri"], aggregate="class-mean")["metrics"]["sdri"]
    assert stats["mean"] == pytest.approx((4 + 5 + 20) / 3)  # means: dog 12/3, car 10/2, rain 20
    assert stats["mean"] != pytest.approx(42 / 6)  # not the item mean


def test_other_lists_take_the_plain_item_mean():
    summary = summarize(frame(), ["sdri"])
    assert summary["aggregate"] == "mean" and summary["metrics"]["sdri"]["mean"] == pytest.approx(7.0)
    assert "class_column" not in summary


@pytest.mark.parametrize("aggregate", ["class-mean", "class-median-mean"])
def test_a_class_aggregate_over_items_without_a_class_is_an_error_naming_them(aggregate):
    with pytest.raises(LassbenchError, match=r"needs each item's class.*2 of 6 item\(s\) have none \(i1, i4\)"):
        summarize(frame(["dog", "", "dog", "car", "", "rain"]), ["sdri"], aggregate=aggregate)
    with pytest.raises(LassbenchError, match="no 'labels' column"):
        summarize(frame().drop(columns="labels"), ["sdri"], aggregate=aggregate)


def test_summary_records_the_si_sdr_convention_and_its_definition():
    zero_mean = summarize(frame().rename(columns={"sdri": "si_sdr"}), ["si_sdr"])
    audiosep = summarize(frame().rename(columns={"sdri": "si_sdr"}), ["si_sdr"], convention="audiosep")
    assert zero_mean["si_sdr_convention"] == "zero-mean" and "zero-mean" in zero_mean["definitions"]["si_sdr"]
    assert audiosep["si_sdr_convention"] == "audiosep" and "calculate_sisdr" in audiosep["definitions"]["si_sdr"]


@pytest.mark.parametrize("dataset,expected", [
    ({"protocol": "lassbench"}, ("zero-mean", "mean", "default")),
    ({"protocol": "lassnet"}, ("zero-mean", "mean", "default")),
    ({"protocol": "dcase2024"}, ("audiosep", "mean", "default")),
    ({"protocol": "clapsep"}, ("audiosep", "mean", "default")),
    ({"protocol": "audiosep", "parameters": {"aggregation": "class-median-mean"}},
     ("audiosep", "class-median-mean", "dataset.json")),
])
def test_the_protocol_prescribes_the_si_sdr_convention_and_the_aggregate(dataset, expected):
    rules = protocol_rules(dataset)
    assert (rules.convention, rules.aggregate, rules.source) == expected


def test_every_protocol_declares_the_si_sdr_convention_of_its_evaluator():
    from lassbench.protocols import get_protocol, protocol_names

    declared = {name: get_protocol(name).SI_SDR_CONVENTION for name in protocol_names()}
    assert declared == {"lassbench": "zero-mean", "lassnet": "zero-mean", "audiosep": "audiosep",
                        "dcase2024": "audiosep", "clapsep": "audiosep"}


def test_the_si_sdr_convention_dataset_json_records_comes_before_the_protocols_declared_one():
    recorded = protocol_rules({"protocol": "lassbench", "parameters": {"si_sdr_convention": "audiosep"}})
    assert (recorded.convention, recorded.aggregate, recorded.source) == ("audiosep", "mean", "default")
    with pytest.raises(LassbenchError, match="dataset.json: unknown si_sdr_convention 'nope'"):
        protocol_rules({"protocol": "audiosep", "parameters": {"si_sdr_convention": "nope"}})


# --- through a built benchmark and the CLI ---------------------------------------------------------------------


def write_benchmark(root: Path, dataset: dict, labels: list[list[str]]) -> tuple[Path, Path]:
    """Items whose estimates carry a DC offset (where the two SI-SDR conventions differ), with ``labels``."""
    rows = []
    t = np.arange(RATE) / RATE
    for k, item_labels in enumerate(labels):
        rng = np.random.default_rng(k)
        reference = (0.3 * np.sin(2 * np.pi * (200 + 40 * k) * t)).astype(np.float32)
        mixture = (reference + 0.2 * rng.standard_normal(RATE)).astype(np.float32)
        estimate = (reference + 0.05 * rng.standard_normal(RATE) + 0.02 * (k + 1)).astype(np.float32)
        write_audio(root / "bench" / "target" / f"i{k}.wav", reference, RATE)
        write_audio(root / "bench" / "mixture" / f"i{k}.wav", mixture, RATE)
        write_audio(root / "est" / f"i{k}.wav", estimate, RATE)
        row = dict.fromkeys(ITEM_COLUMNS, "")
        row.update(id=f"i{k}", split="test", target_id=f"s{k}", interferer_ids=[], query="accordion",
                   captions=["accordion"], labels=item_labels, snr_db=0.0, gain=1.0, sample_rate=RATE,
                   num_samples=RATE, protocol=dataset["protocol"], seed=0, condition="index")
        rows.append(row)
    manifest = write_manifest_csv(pd.DataFrame(rows, columns=ITEM_COLUMNS), root / "bench" / "manifest.csv")
    (root / "bench" / "dataset.json").write_text(json.dumps({"name": "music", **dataset}))
    return manifest, root / "est"


MUSIC = {"protocol": "audiosep", "exact": True, "parameters": {"set": "music", "aggregation": "class-mean"}}
MUSIC_LABELS = [["accordion"], ["accordion"], ["cello"], ["flute"]]


def test_an_audiosep_benchmark_is_scored_with_its_si_sdr_and_aggregate_and_the_leaderboard_row_says_so(tmp_path):
    manifest, estimates = write_benchmark(tmp_path, MUSIC, MUSIC_LABELS)
    per_item, summary = evaluate_manifest(manifest, estimates, out=tmp_path / "res")
    assert (summary["aggregate"], summary["aggregate_from"], summary["si_sdr_convention"]) == (
        "class-mean", "dataset.json", "audiosep")
    expected = []
    for k in range(4):
        reference, _ = read_audio(tmp_path / "bench" / "target" / f"i{k}.wav")
        estimate, _ = read_audio(estimates / f"i{k}.wav")
        s, e = reference.astype(np.float64), estimate.astype(np.float64)
        eps = np.finfo(np.float32).eps  # AudioSep's calculate_sisdr on float32 audio, written out here
        a = (eps + s @ e) / (s @ s + eps)
        expected.append(10 * np.log10((eps + np.sum((a * s) ** 2)) / (eps + np.sum((e - a * s) ** 2))))
    np.testing.assert_allclose(per_item["si_sdr"], expected, atol=1e-6)
    classes = {"accordion": expected[:2], "cello": expected[2:3], "flute": expected[3:]}
    assert summary["metrics"]["si_sdr"]["mean"] == pytest.approx(np.mean([np.mean(v) for v in classes.values()]))
    row = read_result_folder(tmp_path / "res")
    assert row.aggregation == "class-mean" and "calculate_sisdr" in row.si_sdr_definition


def test_an_explicit_aggregate_and_si_sdr_override_the_protocol_and_are_recorded(tmp_path):
    manifest, estimates = write_benchmark(tmp_path, MUSIC, MUSIC_LABELS)
    per_item, summary = evaluate_manifest(manifest, estimates, out=None, aggregate="mean", convention="zero-mean")
    assert (summary["aggregate"], summary["aggregate_from"], summary["si_sdr_convention"]) == (
        "mean", "option", "zero-mean")
    assert summary["metrics"]["si_sdr"]["mean"] == pytest.approx(per_item["si_sdr"].mean())


def test_a_lassbench_benchmark_keeps_the_zero_mean_si_sdr_and_the_item_mean(tmp_path):
    manifest, estimates = write_benchmark(tmp_path, {"protocol": "lassbench"}, [["x"], [], ["y"], []])
    per_item, summary = evaluate_manifest(manifest, estimates, out=None)
    assert (summary["aggregate"], summary["aggregate_from"], summary["si_sdr_convention"]) == (
        "mean", "default", "zero-mean")
    reference, _ = read_audio(tmp_path / "bench" / "target" / "i0.wav")
    estimate, _ = read_audio(estimates / "i0.wav")
    assert per_item["si_sdr"][0] == pytest.approx(float(metrics.si_sdr(reference, estimate)), abs=1e-9)


def test_evaluate_scores_with_the_si_sdr_convention_dataset_json_records(tmp_path):
    dataset = {"protocol": "lassbench", "parameters": {"si_sdr_convention": "audiosep"}}
    manifest, estimates = write_benchmark(tmp_path, dataset, [["x"], ["y"]])
    per_item, summary = evaluate_manifest(manifest, estimates, out=None)
    assert summary["si_sdr_convention"] == "audiosep" and "calculate_sisdr" in summary["definitions"]["si_sdr"]
    reference, _ = read_audio(tmp_path / "bench" / "target" / "i0.wav")
    estimate, _ = read_audio(estimates / "i0.wav")
    expected = metrics.si_sdr(reference, estimate, convention="audiosep")
    assert per_item["si_sdr"][0] == pytest.approx(float(expected), abs=1e-9)
    assert abs(expected - metrics.si_sdr(reference, estimate)) > 0.01  # the estimate's DC offset tells them apart


def test_cli_refuses_a_class_aggregate_on_unlabelled_items_in_one_line_before_scoring(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path, MUSIC, [["accordion"], [], ["cello"], []])
    (estimates / "i0.wav").write_bytes(b"not audio")  # scoring would fail on this file: the check comes first
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--manifest", str(manifest), "--estimates", str(estimates), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: aggregate 'class-mean' needs each item's class")
    assert "2 of 4 item(s) have none (i1, i3)" in lines[0]
    assert not (tmp_path / "r" / "summary.json").exists()


def test_cli_folder_mode_scores_audiosep_si_sdr_on_request(tmp_path, capsys):
    manifest, estimates = write_benchmark(tmp_path, MUSIC, MUSIC_LABELS)
    bench = manifest.parent
    main(["evaluate", "--references", str(bench / "target"), "--estimates", str(estimates), "--out",
          str(tmp_path / "zm")])
    main(["evaluate", "--references", str(bench / "target"), "--estimates", str(estimates), "--out",
          str(tmp_path / "as"), "--si-sdr", "audiosep"])
    zm = json.loads((tmp_path / "zm" / "summary.json").read_text())
    audiosep = json.loads((tmp_path / "as" / "summary.json").read_text())
    assert zm["si_sdr_convention"] == "zero-mean" and audiosep["si_sdr_convention"] == "audiosep"
    assert abs(zm["metrics"]["si_sdr"]["mean"] - audiosep["metrics"]["si_sdr"]["mean"]) > 0.01


def test_score_arrays_takes_the_si_sdr_convention():
    from lassbench.evaluate import score_arrays

    t = np.arange(RATE) / RATE
    reference = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    estimate = reference + np.float32(0.01)
    assert score_arrays(reference, estimate, metrics="si_sdr")["si_sdr"] == metrics.CAP_DB
    audiosep = score_arrays(reference, estimate, metrics="si_sdr", convention="audiosep")["si_sdr"]
    assert audiosep == pytest.approx(float(metrics.si_sdr(reference, estimate, "audiosep")), abs=1e-12)
    assert audiosep < 40
    with pytest.raises(LassbenchError, match="unknown SI-SDR convention 'nope'"):
        score_arrays(reference, estimate, convention="nope")


def test_a_silent_reference_is_scored_as_audioseps_evaluator_would_and_refused_otherwise():
    from lassbench.errors import LassbenchError
    from lassbench.evaluate import evaluate_arrays

    rng = np.random.default_rng(3)
    estimate, mixture = rng.normal(size=1600).astype(np.float32), rng.normal(size=1600).astype(np.float32)
    silent = np.zeros(1600, dtype=np.float32)
    frame = evaluate_arrays([("quiet", silent, estimate, mixture)], metrics=["sdr", "sdri", "si_sdr"],
                            convention="audiosep")
    # AudioSep's calculate_sdr: 10 log10(max(mean(s^2), 1e-10) / max(mean((s - e)^2), 1e-10))
    expected = 10 * np.log10(1e-10 / np.mean(estimate.astype(np.float64) ** 2))
    assert frame.loc[0, "sdr"] == pytest.approx(expected, abs=1e-6)
    assert np.isfinite(frame.loc[0, "si_sdr"])
    with pytest.raises(LassbenchError, match="silent"):
        evaluate_arrays([("quiet", silent, estimate, mixture)], metrics=["sdr"])
    with pytest.raises(LassbenchError, match="silent"):
        evaluate_arrays([("quiet", silent, estimate, mixture)], metrics=["bss_sdr"], convention="audiosep")
