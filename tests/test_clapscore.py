"""CLAPScore with a tiny randomly initialised ClapModel saved to a folder (real transformers loading, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lassbench.audio import sha256_file, write_audio
from lassbench.clapscore import ClapScorer, is_clap_metric, resolve_checkpoint
from lassbench.errors import LassbenchError

WORDS = ["a", "dog", "barks", "car", "engine", "revs", "bird", "sings", "rain", "falls", "the", "sound", "of"]


def make_tiny_clap(folder: Path, seed: int = 0, window_s: int = 1) -> Path:
    """A ClapModel with 16-dim embeddings, a RoBERTa tokenizer over a tiny vocabulary, and a 48 kHz extractor
    with ``window_s``-second windows, saved with save_pretrained (what a downloaded checkpoint folder holds)."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for token in [*WORDS, *("\u0120" + w for w in WORDS), *"abcdefghijklmnopqrstuvwxyz\u0120"]:
        vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    config = ClapConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=40, projection_dim=16),
        audio_config=dict(hidden_size=32, projection_dim=16, depths=[1, 1], num_attention_heads=[1, 2],
                          patch_embeds_hidden_size=16, window_size=8, spec_size=64, num_mel_bins=16),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    ClapModel(config).eval().save_pretrained(folder)
    extractor = ClapFeatureExtractor(feature_size=16, sampling_rate=48000, max_length_s=window_s, hop_length=480)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


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
