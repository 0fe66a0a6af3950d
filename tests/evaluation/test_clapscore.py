"""CLAPScore with a tiny randomly initialised ClapModel saved to a folder (real transformers loading, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lassbench.audio import sha256_file, write_audio
from lassbench.clapscore import ClapScorer, is_clap_metric, resolve_checkpoint
from lassbench.errors import LassbenchError

from support.tiny_clap import make_tiny_clap


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> Path:
    return make_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")


@pytest.fixture(scope="module")
def scorer(tiny_clap) -> ClapScorer:
    return ClapScorer(tiny_clap)


def noise(seed: int, seconds: float, rate: int = 16000) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def test_scorer_records_checkpoint_name_sha256_and_preprocessing(tiny_clap, scorer):
    info = scorer.info
    assert info["sha256"] == sha256_file(tiny_clap / "model.safetensors")
    assert info["checkpoint"] == str(tiny_clap)
    assert (info["sample_rate"], info["window_s"]) == (48000, 1.0)
    assert info["truncation"] == "rand_trunc"  # unfused: the only input it takes (its extractor says "fusion")
    assert scorer.score_name == f"clap_score@{info['sha256'][:8]}"
    assert is_clap_metric(scorer.score_name) and is_clap_metric(scorer.improvement_name)
    assert not is_clap_metric("sdri")


def test_different_checkpoints_never_share_a_metric_name(tmp_path, scorer):
    other = ClapScorer(make_tiny_clap(tmp_path / "other", seed=1))
    assert other.score_name != scorer.score_name
    assert other.improvement_name != scorer.improvement_name


def test_score_is_a_cosine_and_improvement_subtracts_the_mixture(scorer):
    est, mix = noise(0, 1.5), noise(1, 1.5)
    values = scorer.score(["a dog barks"], [est], 16000, [mix])
    text = scorer.text_embedding("a dog barks")
    audio_est, audio_mix = scorer.audio_embeddings([est, mix], 16000)
    assert np.linalg.norm(text) == pytest.approx(1.0) and np.linalg.norm(audio_est) == pytest.approx(1.0)
    assert values[scorer.score_name][0] == pytest.approx(float(audio_est @ text), abs=1e-6)
    assert values[scorer.improvement_name][0] == pytest.approx(float(audio_est @ text - audio_mix @ text), abs=1e-6)
    assert -1.0 <= values[scorer.score_name][0] <= 1.0


def test_an_item_scores_the_same_alone_and_in_a_batch(scorer):
    items = [(f"i{k}", q, noise(k, 0.5 + 0.7 * k), noise(10 + k, 0.5 + 0.7 * k), 16000)
             for k, q in enumerate(["a dog barks", "rain falls", "a car engine revs", "a bird sings"])]
    batched = scorer.score_items(items, batch_size=4).set_index("item")
    for entry in items:
        alone = scorer.score_items([entry], batch_size=1).set_index("item")
        np.testing.assert_allclose(alone.loc[entry[0]].to_numpy(), batched.loc[entry[0]].to_numpy(), atol=1e-6)


def test_a_fused_checkpoint_scores_the_same_alone_and_in_a_batch(tmp_path):
    """transformers' extractor (truncation="fusion") marks one random item of a batch "longer" when none is, so
    that item's embedding would depend on its batch; the scorer sets the flags itself."""
    fused = ClapScorer(make_tiny_clap(tmp_path / "fused", fused=True))
    assert fused.truncation == "fusion"
    items = [(f"i{k}", "a dog barks", noise(k, 0.5 + 0.3 * k), noise(10 + k, 0.5 + 0.3 * k), 16000) for k in range(4)]
    batched = fused.score_items(items, batch_size=4).set_index("item")
    for entry in items:
        alone = fused.score_items([entry], batch_size=1).set_index("item")
        np.testing.assert_allclose(alone.loc[entry[0]].to_numpy(), batched.loc[entry[0]].to_numpy(), atol=1e-6)


def test_scores_are_deterministic_for_audio_longer_than_the_window(scorer):
    long = noise(3, 2.6)  # three windows at 1 s: no random crop may pick a different one each time
    first = scorer.audio_embeddings([long], 16000)
    again = ClapScorer(scorer.name).audio_embeddings([long], 16000)
    np.testing.assert_array_equal(first, again)


def test_long_audio_embedding_is_the_length_weighted_mean_of_its_windows(scorer):
    audio = noise(4, 2.5, rate=48000)
    whole = scorer.audio_embeddings([audio], 48000)[0]
    parts = scorer.audio_embeddings([audio[:48000], audio[48000:96000], audio[96000:]], 48000)
    mean = parts[0] * 1.0 + parts[1] * 1.0 + parts[2] * 0.5
    np.testing.assert_allclose(whole, mean / np.linalg.norm(mean), atol=1e-6)


def test_resampling_is_lassbench_own(scorer):
    """The same sound at 16 kHz and at 48 kHz (resampled by lassbench beforehand) embeds the same."""
    from lassbench.audio import resample

    at16 = noise(5, 1.0)
    np.testing.assert_allclose(scorer.audio_embeddings([at16], 16000),
                               scorer.audio_embeddings([resample(at16, 16000, 48000)], 48000), atol=1e-6)


def test_text_embeddings_are_cached_per_query(scorer):
    first = scorer.text_embedding("the sound of rain")
    assert scorer.text_embedding("the sound of rain") is first


def test_offline_hub_name_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(LassbenchError, match="huggingface-cli download laion/clap-htsat-unfused --local-dir DIR"):
        resolve_checkpoint("laion/clap-htsat-unfused")


def test_a_folder_without_weights_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LassbenchError, match="no CLAP weights"):
        ClapScorer(tmp_path / "empty")
    with pytest.raises(LassbenchError, match="not a CLAP checkpoint folder"):
        resolve_checkpoint(tmp_path / "missing")


def write_tone(path: Path, seconds: float = 1.0, rate: int = 16000, seed: int = 0) -> None:
    write_audio(path, noise(seed, seconds, rate), rate)


# --- evaluate: manifests with items without a target --------------------------------------------------------------


def write_bench(root: Path, with_target: dict[str, bool], columns=None) -> Path:
    """A built-benchmark-like folder: mixture/<id>.wav for every item, target/<id>.wav where it has one, and
    estimates/<id>.wav; returns the manifest path."""
    import pandas as pd

    from lassbench.manifests import ITEM_COLUMNS, write_manifest_csv

    rows = []
    for k, (item, has_target) in enumerate(with_target.items()):
        target, mixture = noise(k, 1.0), noise(k, 1.0) + noise(50 + k, 1.0)
        write_audio(root / "bench" / "mixture" / f"{item}.wav", mixture, 16000)
        write_audio(root / "est" / f"{item}.wav", target + 0.3 * noise(90 + k, 1.0), 16000)
        if has_target:
            write_audio(root / "bench" / "target" / f"{item}.wav", target, 16000)
        row = dict.fromkeys(ITEM_COLUMNS, "")
        row.update(id=item, split="test", target_id=f"src_{item}" if has_target else "", query="a dog barks",
                   labels=["Dog"], sample_rate=16000)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=ITEM_COLUMNS)
    return write_manifest_csv(frame[columns] if columns else frame, root / "bench" / "manifest.csv")


def run_evaluate(args: list, capsys) -> tuple[int, str, str]:
    from lassbench.cli import main

    code = 0
    try:
        main(["evaluate", *map(str, args)])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_scores_sdr_where_there_is_a_target_and_clap_everywhere(tmp_path, tiny_clap, scorer, capsys):
    import pandas as pd

    manifest = write_bench(tmp_path, {"a": True, "b": False, "c": True})
    code, out, err = run_evaluate(["--manifest", manifest, "--estimates", tmp_path / "est", "--out",
                                   tmp_path / "res", "--clap", tiny_clap], capsys)
    assert code in (0, None), err
    per_item = pd.read_csv(tmp_path / "res" / "per_item.csv")
    assert list(per_item["item"]) == ["a", "b", "c"]
    assert per_item["sdri"].isna().tolist() == [False, True, False]
    assert per_item[scorer.score_name].notna().all() and per_item[scorer.improvement_name].notna().all()
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["n_items"] == 3
    assert summary["metrics"]["sdri"]["n"] == 2
    assert summary["metrics"][scorer.score_name]["n"] == 3
    assert summary["metrics"][scorer.score_name]["mean"] == pytest.approx(per_item[scorer.score_name].mean())
    assert summary["clap"]["sha256"] == scorer.sha256 and summary["clap"]["window_s"] == 1.0
    assert summary["not_scored"]["sdr"] == {"n": 1, "reason": "no target (empty target_id)", "items": ["b"]}
    assert "not scored: sdri for 1 item(s)" in err
    assert scorer.score_name in out


def test_evaluate_clap_matches_the_scorer_on_the_same_files(tmp_path, tiny_clap, scorer):
    from lassbench.audio import read_audio
    from lassbench.evaluate import evaluate_manifest

    manifest = write_bench(tmp_path, {"a": True, "b": False})
    per_item, _ = evaluate_manifest(manifest, tmp_path / "est", out=None, clap=scorer)
    est, rate = read_audio(tmp_path / "est" / "b.wav")
    mix, _ = read_audio(tmp_path / "bench" / "mixture" / "b.wav")
    expected = scorer.score(["a dog barks"], [est], rate, [mix])
    row = per_item.set_index("item").loc["b"]
    assert row[scorer.score_name] == pytest.approx(expected[scorer.score_name][0], abs=1e-6)
    assert row[scorer.improvement_name] == pytest.approx(expected[scorer.improvement_name][0], abs=1e-6)


def test_a_manifest_of_only_real_mixtures_needs_clap(tmp_path, capsys):
    manifest = write_bench(tmp_path, {"a": False, "b": False})
    code, _, err = run_evaluate(["--manifest", manifest, "--estimates", tmp_path / "est", "--out", tmp_path / "r"],
                                capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "--clap CHECKPOINT" in err


def test_a_hand_written_id_query_manifest_over_mixtures_is_scored_reference_free(tmp_path, scorer):
    from lassbench.evaluate import evaluate_manifest

    manifest = write_bench(tmp_path, {"a": False, "b": False}, columns=["id", "query"])
    per_item, summary = evaluate_manifest(manifest, tmp_path / "est", out=tmp_path / "r", clap=scorer)
    assert per_item[scorer.score_name].notna().all()
    assert summary["not_scored"]["sdri"]["n"] == 2


def test_clap_on_folders_is_one_clear_error(tmp_path, tiny_clap, capsys):
    for role in ("ref", "est"):
        write_tone(tmp_path / role / "x.wav")
    code, _, err = run_evaluate(["--references", tmp_path / "ref", "--estimates", tmp_path / "est", "--out",
                                 tmp_path / "r", "--clap", tiny_clap], capsys)
    assert code == 2 and "--clap needs the queries" in err


def test_leaderboard_keeps_each_checkpoint_in_its_own_columns(tmp_path, tiny_clap, scorer):
    from lassbench.evaluate import evaluate_manifest
    from lassbench.leaderboard import build_leaderboards, collect_results

    manifest = write_bench(tmp_path, {"a": True, "b": False})
    other = ClapScorer(make_tiny_clap(tmp_path / "other-clap", seed=2))
    evaluate_manifest(manifest, tmp_path / "est", out=tmp_path / "results" / "toy" / "sys-a", clap=scorer)
    evaluate_manifest(manifest, tmp_path / "est", out=tmp_path / "results" / "toy" / "sys-b", clap=other)
    main = build_leaderboards(collect_results(tmp_path / "results"))["toy"].main.set_index("system")
    assert {scorer.score_name, other.score_name, scorer.improvement_name} <= set(main.columns)
    assert main.loc["sys-a", scorer.score_name] != "" and main.loc["sys-a", other.score_name] == ""
    assert main.loc["sys-b", other.score_name] != "" and main.loc["sys-b", scorer.score_name] == ""
    assert f"sha256={scorer.sha256}" in main.loc["sys-a", "clap_checkpoint"]
    assert "48000 Hz 1.0 s windows" in main.loc["sys-b", "clap_checkpoint"]
    from lassbench.leaderboard import render_markdown

    page = render_markdown(build_leaderboards(collect_results(tmp_path / "results")))
    table = page[page.index("CLAPScore (reference-free"):]
    header = table.splitlines()[2]
    assert header.startswith("| system |") and scorer.score_name in header and other.score_name in header
    assert f"sha256={other.sha256}" in table and f"sha256={scorer.sha256}" in table


def test_run_adds_clap_columns_batch_by_batch(tmp_path, tiny_clap, scorer, capsys):
    """`lassbench run --clap`: every row gets CLAPScore from the per-batch hook, equal to scoring the saved
    estimates afterwards; summary.json and run.json carry the provenance; runs without --clap keep their rows."""
    import pandas as pd

    from lassbench.audio import read_audio

    from support.command_helpers import run_oracle_on_a_tiny_benchmark

    folder, bench = run_oracle_on_a_tiny_benchmark(tmp_path, capsys, "--clap", tiny_clap)
    per_item = pd.read_csv(folder / "per_item.csv", dtype={"item": str})
    summary = json.loads((folder / "summary.json").read_text())
    info = json.loads((folder / "run.json").read_text())
    assert summary["clap"]["sha256"] == info["clap"]["sha256"] == scorer.sha256
    assert summary["metrics"][scorer.improvement_name]["n"] == len(per_item) == 3
    for row in per_item.to_dict("records"):
        estimate, rate = read_audio(folder / "estimates" / f"{row['item']}.wav")
        mixture, _ = read_audio(bench / "mixture" / f"{row['item']}.wav")
        expected = scorer.score([row["query"]], [estimate], rate, [mixture[:estimate.size]])
        for name in (scorer.score_name, scorer.improvement_name):
            assert row[name] == pytest.approx(expected[name][0], abs=1e-5)


def test_a_hub_name_in_the_local_cache_loads_offline(tmp_path, monkeypatch, tiny_clap, scorer):
    """The Hugging Face cache layout (refs/main -> snapshots/<commit>/files) is read without the network."""
    import shutil

    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--someone--tiny-clap"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_clap, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_checkpoint("someone/tiny-clap") == repo / "snapshots" / commit
    cached = ClapScorer("someone/tiny-clap")
    assert cached.sha256 == scorer.sha256 and cached.info["checkpoint"] == "someone/tiny-clap"
