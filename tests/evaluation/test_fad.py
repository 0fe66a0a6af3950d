"""FAD: the distance against the kept libraries' own functions, the bootstrap interval, the local embedding model,
and the hooks in evaluate, run and the leaderboard (a tiny seeded ClapModel folder made here; no download)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lassbench.audio import write_audio
from lassbench.errors import LassbenchError
from lassbench.fad import FadScorer, bootstrap_interval, frechet_distance, is_fad_metric

from support.paths import GOLDEN as GOLDENS
from support.tiny_clap import make_tiny_clap

FAD_GOLDENS = GOLDENS / "fad"
sys.path.insert(0, str(FAD_GOLDENS))
from make_fad_goldens import CASES, embedding_sets  # noqa: E402  (the seeds the goldens were made from)
from test_clapscore import noise, run_evaluate  # noqa: E402

GOLDEN = json.loads((FAD_GOLDENS / "fad-golden.json").read_text())["cases"]


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> Path:
    return make_tiny_clap(tmp_path_factory.mktemp("fad") / "tiny-clap")


@pytest.fixture(scope="module")
def scorer(tiny_clap) -> FadScorer:
    return FadScorer(tiny_clap)


# --- the distance ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_fad_equals_fadtk_and_frechet_audio_distance_on_the_same_embeddings(name):
    """Goldens from fadtk 1.1.0's calc_frechet_distance and frechet-audio-distance 0.3.4's
    calculate_frechet_distance (tests/golden/fad/make_fad_goldens.py). n40_d64 has singular covariances, where the
    libraries' sqrtm is off the 40-digit value by 1.9e-8 and 2.2e-8 (relative); lassbench holds it to 1e-12."""
    _, n_est, n_ref, dim, shift = next(case for case in CASES if case[0] == name)
    value = frechet_distance(*embedding_sets(n_est, n_ref, dim, shift))
    assert value == pytest.approx(GOLDEN[name]["exact"], rel=1e-12)
    for library in ("fadtk", "frechet_audio_distance"):
        assert value == pytest.approx(GOLDEN[name][library], rel=5e-8)


def test_fad_of_a_set_against_itself_is_zero_and_grows_with_a_shift():
    est, ref = embedding_sets(60, 60, 8, 0.0)
    assert frechet_distance(ref, ref) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(ref + 0.5, ref) == pytest.approx(8 * 0.25, rel=1e-9)  # only the means differ
    assert frechet_distance(ref + 1.0, ref) > frechet_distance(ref + 0.5, ref)


def test_fad_is_the_same_with_fewer_items_than_dimensions_as_with_more():
    """The two factorisations (scaled data below the dimension, Cholesky above) are one formula: appending
    zero columns changes neither the means' distance nor the covariances' traces."""
    est, ref = embedding_sets(30, 30, 8, 0.7)
    wide = [np.hstack([x, np.zeros((len(x), 40))]) for x in (est, ref)]
    assert frechet_distance(*wide) == pytest.approx(frechet_distance(est, ref), rel=1e-10)


def test_fewer_than_two_items_is_one_clear_error():
    with pytest.raises(LassbenchError, match="at least 2 embeddings"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))


def test_bootstrap_interval_holds_the_value_where_raw_percentiles_lie_above_it():
    est, ref = embedding_sets(40, 40, 64, 0.5)
    value = frechet_distance(est, ref)
    rng = np.random.default_rng(0)
    raw = [frechet_distance(est[i], ref[i]) for i in (rng.integers(0, 40, 40) for _ in range(100))]
    assert np.percentile(raw, 2.5) > value  # repeated items raise a resample's FAD
    low, high = bootstrap_interval(est, ref, n_boot=100)
    assert low < value < high
    assert bootstrap_interval(est, ref, n_boot=100) == (low, high)  # seeded


# --- the embedding model ---------------------------------------------------------------------------------------------


def test_a_missing_model_folder_is_one_clear_error(tmp_path):
    with pytest.raises(LassbenchError, match="FAD embedding model not found.*never downloads"):
        FadScorer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LassbenchError, match="no config.json"):
        FadScorer(tmp_path / "empty")


def test_a_hub_name_is_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LassbenchError, match="FAD embedding model not found"):
        FadScorer("laion/clap-htsat-unfused")


def test_scorer_names_its_metric_and_model_by_the_weights_digest(tiny_clap, scorer):
    assert is_fad_metric(scorer.name) and scorer.name == f"fad@{scorer.sha256[:8]}"
    assert scorer.info["checkpoint"] == str(tiny_clap) and scorer.info["sha256"] == scorer.sha256
    assert FadScorer(make_tiny_clap(tiny_clap.parent / "other", seed=1)).name != scorer.name


def test_an_item_embeds_the_same_alone_and_in_a_batch_at_any_rate(scorer):
    signals = [noise(k, 0.5 + 0.25 * k) for k in range(4)]
    batch = scorer.embed(signals, [16000, 16000, 32000, 16000])
    alone = scorer.embed([signals[2]], [32000])
    assert np.allclose(batch[2], alone[0], atol=1e-6)


# --- evaluate, run, leaderboard --------------------------------------------------------------------------------------


def write_folders(root: Path, items: int = 6, interferer: float = 0.3) -> Path:
    """references; near-copies (a good separator); mixtures with a tone at ``interferer`` amplitude (no or a leaky
    separation); and resyntheses: the reference's STFT magnitude with random phase (a generative separator that got
    the sound right and the waveform wrong)."""
    from scipy.signal import istft, stft

    rng = np.random.default_rng(0)
    for k in range(items):
        target = noise(k, 1.0)
        tone = interferer * np.sin(2 * np.pi * (300 + 40 * k) * np.arange(16000) / 16000).astype(np.float32)
        _, _, spectrum = stft(target, nperseg=512)
        _, resynthesis = istft(np.abs(spectrum) * np.exp(2j * np.pi * rng.random(spectrum.shape)), nperseg=512)
        write_audio(root / "ref" / f"{k}.wav", target, 16000)
        write_audio(root / "good" / f"{k}.wav", target + 0.05 * noise(100 + k, 1.0), 16000)
        write_audio(root / "mix" / f"{k}.wav", target + tone, 16000)
        write_audio(root / "resynth" / f"{k}.wav", resynthesis[:16000].astype(np.float32), 16000)
    return root


def test_evaluate_writes_fad_its_interval_and_embedding_model_to_summary_json(tmp_path, tiny_clap, scorer, capsys):
    write_folders(tmp_path)
    code, out, err = run_evaluate(["--references", tmp_path / "ref", "--estimates", tmp_path / "good", "--out",
                                   tmp_path / "res", "--metrics", "sdr,fad", "--fad", tiny_clap], capsys)
    assert code in (0, None), err
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    stats = summary["metrics"][scorer.name]
    assert stats["n"] == 6 and stats["ci95_low"] < stats["mean"] < stats["ci95_high"]
    assert summary["fad"]["sha256"] == scorer.sha256 and "Kilgour" in summary["definitions"][scorer.name]
    assert set(summary["metrics"]) == {"sdr", scorer.name} and scorer.name in out


def test_metrics_fad_without_a_model_is_one_clear_error(tmp_path, capsys):
    write_folders(tmp_path, items=2)
    code, _, err = run_evaluate(["--references", tmp_path / "ref", "--estimates", tmp_path / "good", "--out",
                                 tmp_path / "res", "--metrics", "fad"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--fad DIR" in err


def test_a_missing_fad_folder_fails_in_one_line_before_scoring(tmp_path, capsys):
    write_folders(tmp_path, items=2)
    code, _, err = run_evaluate(["--references", tmp_path / "ref", "--estimates", tmp_path / "good", "--out",
                                 tmp_path / "res", "--fad", tmp_path / "nowhere"], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "FAD embedding model not found" in err and not (tmp_path / "res" / "summary.json").exists()


def test_fad_over_fewer_than_two_references_is_refused_before_scoring(tmp_path, scorer):
    from lassbench.evaluate import evaluate_folders

    write_folders(tmp_path, items=1)
    with pytest.raises(LassbenchError, match="at least 2 items with a reference"):
        evaluate_folders(tmp_path / "ref", tmp_path / "good", out=tmp_path / "res", metrics="sdr", fad=scorer)
    assert not (tmp_path / "res" / "summary.json").exists()


def test_mixtures_lie_farther_from_the_references_than_near_copies(tmp_path, scorer):
    from lassbench.evaluate import evaluate_folders

    write_folders(tmp_path)
    _, good = evaluate_folders(tmp_path / "ref", tmp_path / "good", out=None, metrics="sdr", fad=scorer)
    _, mixed = evaluate_folders(tmp_path / "ref", tmp_path / "mix", out=None, metrics="sdr", fad=scorer)
    assert mixed["metrics"][scorer.name]["mean"] > good["metrics"][scorer.name]["mean"]


def test_a_resynthesised_target_loses_to_a_leaky_mask_on_sdr_and_wins_on_fad(tmp_path, scorer):
    """What SDR misses about generative separators: the right sound with another waveform scores below a mixture
    that still holds the interferer 3 dB under the target; FAD (here in the seeded, untrained tiny CLAP's space)
    ranks them the other way. Run with -s to see the figures docs/metrics.md quotes."""
    from lassbench.evaluate import evaluate_folders

    write_folders(tmp_path, items=8, interferer=0.1)
    scores = {}
    for system in ("mix", "resynth"):
        _, summary = evaluate_folders(tmp_path / "ref", tmp_path / system, out=None, metrics="sdr", fad=scorer)
        scores[system] = (summary["metrics"]["sdr"]["mean"], summary["metrics"][scorer.name]["mean"])
        print(f"{system}: sdr {scores[system][0]:.2f} dB, {scorer.name} {scores[system][1]:.4f}")
    assert scores["mix"][0] > scores["resynth"][0] + 3  # SDR prefers the leaky mask by several dB
    assert scores["resynth"][1] < scores["mix"][1]  # FAD prefers the resynthesis


@pytest.mark.slow
def test_run_fad_ranks_the_mixture_behind_the_oracle_mask_and_equals_evaluate(tmp_path, tiny_clap, scorer,
                                                                                capsys):
    """`lassbench run --fad` on a tiny synth benchmark: the streamed embeddings give the FAD that evaluating the
    saved estimates gives; the mixture is farther from the references than the oracle IRM; the leaderboard shows
    the column with its model."""
    from lassbench.cli import main
    from lassbench.evaluate import evaluate_manifest
    from lassbench.leaderboard import build_leaderboards, collect_results, render_markdown

    from support.tiny_benchmark import build_tiny_benchmark

    bench = build_tiny_benchmark(tmp_path / "bench", items=6)
    fads = {}
    for system in ("mixture", "oracle-irm"):
        args = ["run", system, "--data", bench, "--out", tmp_path / "out", "--workers", 0, "--batch-size", 4,
                "--save-audio", "--fad", tiny_clap]
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            assert exc.code in (0, None), capsys.readouterr().err
        folder = tmp_path / "out" / "synth-mini" / system
        summary = json.loads((folder / "summary.json").read_text())
        assert json.loads((folder / "run.json").read_text())["fad"]["sha256"] == scorer.sha256
        assert "_fad_estimate" not in (folder / "per_item.csv").read_text()
        fads[system] = summary["metrics"][scorer.name]["mean"]
        _, again = evaluate_manifest(bench / "manifest.csv", folder / "estimates", out=None, split="test",
                                     fad=scorer)
        assert again["metrics"][scorer.name]["mean"] == pytest.approx(fads[system], rel=1e-5)
    assert fads["mixture"] > fads["oracle-irm"]
    board = build_leaderboards(collect_results(tmp_path / "out"))["synth-mini"].main.set_index("system")
    assert board.loc["oracle-irm", scorer.name] != "" and f"sha256={scorer.sha256}" in board.loc["mixture",
                                                                                                  "fad_model"]
    page = render_markdown(build_leaderboards(collect_results(tmp_path / "out")))
    assert "FAD against the references" in page and scorer.name in page


# --- VGGish (torchvggish layout) -------------------------------------------------------------------------------------


def test_vggish_log_mel_examples_equal_torchvggish():
    from make_vggish_goldens import seeded_signals

    from lassbench.vggish import log_mel_examples

    golden = np.load(FAD_GOLDENS / "vggish-golden.npz")["features0"]
    drift = np.abs(log_mel_examples(seeded_signals()[0]) - golden).max()
    print(f"VGGish log mel features: max difference {drift:.2e} (peak {np.abs(golden).max():.2f})")
    # float64 features: equal on the goldens' machine; another CPU's libm rounds some values one step apart (4.4e-16)
    assert drift <= 1e-12 * np.abs(golden).max()


def test_a_file_that_is_not_vggish_weights_is_one_clear_error(tmp_path):
    import torch

    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(LassbenchError, match="not torchvggish's VGGish weights"):
        FadScorer(tmp_path / "other.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a torch file")
    with pytest.raises(LassbenchError, match="weights_only=True"):
        FadScorer(tmp_path / "broken.pth")


@pytest.mark.slow
def test_vggish_embeddings_equal_torchvggish_and_every_example_joins_the_fad(tmp_path):
    """torchvggish's VGGish without its last ReLU and PCA (fadtk's and frechet-audio-distance's default) on seeded
    weights (a 290 MB state dict written here): equal to 0 difference measured on the CPU that made the goldens;
    another CPU rounds differently (measured 1.5e-5 on embeddings of peak 12.8, 1.2e-6 of it), held here to 1e-5 of
    the peak."""
    import torch
    from make_vggish_goldens import seeded_signals, seeded_state_dict

    torch.save(seeded_state_dict(), tmp_path / "vggish-seeded.pth")
    scorer = FadScorer(tmp_path / "vggish-seeded.pth")
    golden = np.load(FAD_GOLDENS / "vggish-golden.npz")
    signals = seeded_signals()
    for k, rows in enumerate(scorer.embed(signals, [16000] * len(signals))):
        expected = golden[f"embedding{k}"]
        drift = np.abs(rows - expected).max() / np.abs(expected).max()
        print(f"signal {k}: max |lassbench - torchvggish| / peak {drift:.3g}")  # `pytest -s`: docs/metrics.md's figure
        assert drift <= 1e-5
    stats = scorer.score_pairs((s, 16000, s[::-1].copy(), 16000) for s in signals)
    assert stats["n"] == 3 and stats["n_embeddings"] == 6
    assert scorer.info["embedding_model"].startswith("VGGish") and scorer.info["sample_rate"] == 16000
    with pytest.raises(LassbenchError, match="at least 0.975 s"):
        scorer.embed([signals[0][:8000]], [16000])
