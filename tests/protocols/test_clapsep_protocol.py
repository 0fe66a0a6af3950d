"""CLAPSep's five evaluation lists (fixtures in the layout of Aisaka0v0/CLAPSep 5404111 ``metadata/evaluation``) and
its headline metric: torchmetrics' BSS-Eval SDR / SDRi, plain means (``model/CLAPSep.py:test_step``)."""

import json

import numpy as np
import pytest
import soundfile as sf

from lassbench.build import BuildConfig, build_dataset
from lassbench.cli import main
from lassbench.errors import LassbenchError
from lassbench.evaluate import evaluate_manifest, write_results
from lassbench.leaderboard import build_leaderboards, read_result_folder
from lassbench.leaderboard.plots import _per_item_sdri
from lassbench.manifests import read_item_manifest

from support.clapsep_lists import LISTS, RATE, build, write_clips, write_list


@pytest.mark.parametrize("which", list(LISTS))
def test_each_extra_clapsep_list_builds_ten_second_zero_db_items_with_negative_captions(tmp_path, which):
    result = build(tmp_path, which)
    manifest = read_item_manifest(result.manifest)
    dataset = json.loads((result.out / "dataset.json").read_text())
    assert len(manifest) == 3
    assert dataset["parameters"]["list"] == which
    assert dataset["parameters"]["headline_sdr"] == "bss_sdr" and dataset["parameters"]["aggregation"] == "mean"
    assert dataset["exact"] is False  # no published evaluator for this list: the AudioCaps rule, applied to it
    assert manifest["negative_query"].str.contains("class").all()
    assert manifest["negative_query"].tolist() != manifest["query"].tolist()
    for row in manifest.itertuples():
        target, _ = sf.read(str(result.out / row.target_path), dtype="float64")
        mixture, _ = sf.read(str(result.out / row.mixture_path), dtype="float64")
        noise = mixture - target
        assert target.shape == (10 * RATE,)
        assert 10 * np.log10(np.sum(target ** 2) / np.sum(noise ** 2)) == pytest.approx(0.0, abs=1e-4)


def test_the_audiocaps_list_stays_exact(tmp_path):
    names = ["Y7fmOlUlwoNg.wav", "YbmEF-c-M174.wav"]
    clips = write_clips(tmp_path / "clips", names)
    index = write_list(tmp_path / "audiocaps_eval.csv", names, "caption {}")
    result = build_dataset(BuildConfig(out=tmp_path / "bench", sources=clips, protocol="clapsep", index=str(index),
                                       progress=False))
    dataset = json.loads((result.out / "dataset.json").read_text())
    assert dataset["exact"] is True and dataset["parameters"]["list"] == "audiocaps"


def test_an_audio_query_samples_list_is_refused_in_one_line(tmp_path, capsys):
    clips = write_clips(tmp_path / "clips", ["1-17585-A-7.wav"])
    index = tmp_path / "esc_eval_samples.csv"
    index.write_text("class,file\nthe sound of insects,\"['1-17585-A-7.wav']\"\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["build-dataset", "--sources", str(clips), "--protocol", "clapsep", "--index", str(index),
              "--out", str(tmp_path / "bench")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code != 0 and err.count("\n") == 0 and "audio-query list" in err
    with pytest.raises(LassbenchError, match="esc_eval.csv"):
        build_dataset(BuildConfig(out=tmp_path / "b2", sources=clips, protocol="clapsep", index=str(index),
                                  progress=False))


def test_a_clapsep_benchmark_scores_torchmetrics_bss_sdr_by_default_and_the_leaderboard_shows_it(tmp_path):
    torchmetrics_sdr = pytest.importorskip("torchmetrics.functional.audio").signal_distortion_ratio
    torch = pytest.importorskip("torch")
    result = build(tmp_path, "esc50")
    manifest = read_item_manifest(result.manifest)
    estimates = tmp_path / "est"
    estimates.mkdir()
    expected = []
    for row in manifest.itertuples():  # an estimate CLAPSep's metric forgives differently from the energy ratio
        target, _ = sf.read(str(result.out / row.target_path), dtype="float32")
        mixture, _ = sf.read(str(result.out / row.mixture_path), dtype="float32")
        estimate = (0.7 * target + 0.2 * (mixture - target)).astype(np.float32)
        sf.write(str(estimates / f"{row.id}.wav"), estimate, RATE, subtype="FLOAT")
        pair = [torch.from_numpy(a.astype(np.float64)) for a in (estimate, mixture, target)]
        expected.append(float(torchmetrics_sdr(pair[0], pair[2]) - torchmetrics_sdr(pair[1], pair[2])))
    per_item, summary = evaluate_manifest(result.manifest, estimates, out=None)
    np.testing.assert_allclose(per_item["bss_sdri"], expected, atol=1e-3)  # CLAPSep's test_step, item by item
    assert summary["headline"] == {"sdr": "bss_sdr", "sdri": "bss_sdri"}
    assert summary["metrics"]["bss_sdri"]["mean"] == pytest.approx(np.mean(expected), abs=1e-3)  # plain mean
    assert abs(summary["metrics"]["bss_sdri"]["mean"] - summary["metrics"]["sdri"]["mean"]) > 1.0
    write_results(per_item, summary, tmp_path / "results" / "esc50-clapsep" / "my-system")
    row = read_result_folder(tmp_path / "results" / "esc50-clapsep" / "my-system")
    assert row.value("sdri") == pytest.approx(summary["metrics"]["bss_sdri"]["mean"])
    assert row.value("sdr") == pytest.approx(summary["metrics"]["bss_sdr"]["mean"])
    assert "BSS-Eval" in row.sdr_definition
    board = next(iter(build_leaderboards([row]).values()))
    plotted = _per_item_sdri(board)["my-system"]  # what the per-class plot draws as SDRi
    np.testing.assert_allclose(plotted["sdri"], per_item["bss_sdri"], atol=1e-3)


def test_metrics_named_on_the_command_line_override_the_headline(tmp_path):
    result = build(tmp_path, "fsd50k")
    manifest = read_item_manifest(result.manifest)
    estimates = tmp_path / "est"
    estimates.mkdir()
    for row in manifest.itertuples():
        mixture, _ = sf.read(str(result.out / row.mixture_path), dtype="float32")
        sf.write(str(estimates / f"{row.id}.wav"), 0.5 * mixture, RATE, subtype="FLOAT")
    per_item, summary = evaluate_manifest(result.manifest, estimates, out=None, metrics="sdr,sdri")
    assert "bss_sdr" not in per_item.columns and summary["headline"] == {}
