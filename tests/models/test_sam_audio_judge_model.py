"""The SAM Audio judge: its released folder layout (config.json + checkpoint.pt + tokenizer files) loads strictly and
reproduces the official scores (goldens written by tests/golden/published/make_sam_audio_judge_golden.py running
facebookresearch/sam-audio 68b48d4's ``eval/metrics/judge.py`` with perception_models e72b681 on seeded weights of a
tiny configuration); an item scores the same alone and in a batch of unequal lengths."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from lassbench.errors import LassbenchError
from lassbench.judge import METRICS, JudgeScorer
from lassbench.models.published.sam_audio_judge import SCORES

from support import published_fixtures as fx
from support.tiny_judge import LAYOUT, judge_state, make_tiny_judge

sys.path.insert(0, str(fx.GOLDEN))
from make_sam_audio_judge_golden import QUERIES, RATE, judge_inputs  # noqa: E402

GOLDEN = np.load(fx.GOLDEN / "sam-audio-judge-golden.npz")
# Of each stage's peak. Measured (`pytest -s` prints it): 0.0 at every stage on the goldens' CPU; with torch held to
# AVX2 kernels (what a CPU without AVX-512 runs) up to 2.4e-6 (codec features); the goldens must hold on any CPU.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_judge(tmp_path_factory.mktemp("judge") / "sam-audio-judge-tiny")


@pytest.fixture(scope="module")
def scorer(folder):
    return JudgeScorer(folder)


def _within(actual, golden) -> bool:
    actual, golden = np.asarray(actual, dtype=np.float64), np.asarray(golden, dtype=np.float64)
    return actual.shape == golden.shape and float(np.abs(actual - golden).max()) <= TOLERANCE * np.abs(golden).max()


def _pad(wave: np.ndarray, hop: int) -> torch.Tensor:
    missing = -len(wave) % hop
    return torch.from_numpy(np.pad(wave, (0, missing), mode="reflect"))[None, None]


@pytest.mark.parametrize("k", [0, 1])
def test_the_judge_reproduces_the_official_scores_stage_by_stage(scorer, k):
    mixture, estimate = judge_inputs()[k]
    net = scorer.net
    tokens = scorer.tokenizer([QUERIES[k]], return_tensors="pt")
    with torch.no_grad():
        text = net.text_features(tokens["input_ids"], tokens["attention_mask"])[0]
        # the mixture and the estimate in one codec call, as the official forward and the scorer encode them
        features = [f.T for f in net.codec_features(torch.cat([_pad(x, net.hop_length) for x in (mixture, estimate)]))]
    scores = scorer.score([QUERIES[k]], [estimate], [mixture], [RATE])[0]
    stages = {"text": (text, f"text{k}"), "mixture codec": (features[0], f"mixture_features{k}"),
              "estimate codec": (features[1], f"estimate_features{k}"), "scores": (scores, f"scores{k}")}
    for stage, (actual, key) in stages.items():  # `pytest -s` prints what was measured
        difference = float(np.abs(np.asarray(actual, dtype=np.float64) - GOLDEN[key]).max())
        print(f"item {k} {stage}: max |lassbench - official| {difference:.3g} (peak {np.abs(GOLDEN[key]).max():.3g})")
        assert _within(actual, GOLDEN[key]), stage


def test_the_four_scores_are_named_in_the_heads_order():
    assert METRICS == tuple(f"judge_{name}" for name in SCORES)
    assert SCORES == ("overall", "recall", "precision", "faithfulness")


def test_an_item_scores_as_alone_in_a_batch_of_unequal_lengths(scorer):
    """The official forward leaves the padding of a batch unmasked, so its batched scores of the shorter item move
    (recorded in the golden); lassbench masks it and gives each item its score alone."""
    inputs = judge_inputs()
    together = scorer.score(QUERIES, [e for _, e in inputs], [m for m, _ in inputs], [RATE, RATE])
    for k, (mixture, estimate) in enumerate(inputs):
        alone = scorer.score([QUERIES[k]], [estimate], [mixture], [RATE])[0]
        shift = np.abs(together[k] - alone).max()
        official_shift = np.abs(GOLDEN["scores_batched"][k] - GOLDEN[f"scores{k}"]).max()
        print(f"item {k}: batched - alone, lassbench {shift:.3g}, official {official_shift:.3g}")  # `pytest -s`
        assert shift <= 1e-5 * np.abs(alone).max()
        assert _within(together[k], GOLDEN[f"scores{k}"])
    assert np.abs(GOLDEN["scores_batched"][0] - GOLDEN["scores0"]).max() > 1e-2  # the shorter item moves


def test_other_rates_are_resampled_by_lassbench_to_the_judges(scorer):
    from lassbench.audio import resample

    mixture, estimate = (x[::3].copy() for x in judge_inputs()[1])  # 16 kHz
    at_16k = scorer.score(QUERIES[1:], [estimate], [mixture], [16000])[0]
    at_48k = scorer.score(QUERIES[1:], [resample(estimate, 16000, RATE)], [resample(mixture, 16000, RATE)], [RATE])
    assert np.array_equal(at_16k, at_48k[0])


def test_text_features_are_computed_once_per_query(scorer):
    inputs = judge_inputs()
    scorer.score(QUERIES[:1], [inputs[0][1]], [inputs[0][0]], [RATE])
    cached = scorer._text[QUERIES[0]]
    scorer.score(QUERIES[:1], [inputs[0][1]], [inputs[0][0]], [RATE])
    assert scorer._text[QUERIES[0]] is cached


def test_an_estimate_of_another_length_than_its_mixture_is_one_clear_error(scorer):
    mixture, estimate = judge_inputs()[0]
    with pytest.raises(LassbenchError, match="item x: the estimate has .* frame by frame"):
        scorer.score_rows(["x"], QUERIES[:1], [estimate[:-400]], [mixture], [RATE])
    with pytest.raises(LassbenchError, match="too few"):
        scorer.score(QUERIES[:1], [estimate[:100]], [mixture[:100]], [RATE])


def test_every_tensor_is_loaded_and_the_settings_are_the_folders(scorer, folder):
    from lassbench.models.published.sam_audio_judge_loading import load_sam_audio_judge

    report = load_sam_audio_judge(folder).report
    assert report["keys_loaded"] == len(LAYOUT["checkpoint"])
    assert report["transformer"]["hidden_size"] == 32 and report["finetune_transformer"]["attention_bias"]
    assert report["nth_text_layer"] == 2 and report["settings_ignored"] == {}
    assert (scorer.sample_rate, scorer.net.hop_length) == (48000, 320)
    info = scorer.info
    assert info["metrics"] == list(METRICS) and info["checkpoint"] == str(folder)
    assert len(info["sha256"]) == 64 and set(info["definitions"]) == set(METRICS)


def test_a_safetensors_checkpoint_loads_the_same(folder, tmp_path):
    from safetensors.torch import save_file

    other = make_tiny_judge(tmp_path / "judge")
    (other / "checkpoint.pt").unlink()
    save_file(judge_state(), str(other / "model.safetensors"))
    mixture, estimate = judge_inputs()[0]
    scores = JudgeScorer(other).score(QUERIES[:1], [estimate], [mixture], [RATE])[0]
    assert _within(scores, GOLDEN["scores0"])


@pytest.mark.parametrize("change, needle", [
    ("not-a-folder", "not a folder"), ("no-config", "no config.json"), ("no-weights", "no judge weights"),
    ("no-tokenizer", "no usable tokenizer"), ("truncated", "truncated"), ("missing", "missing"),
    ("unexpected", "unexpected weight"), ("misshaped", "has shape"), ("unknown-setting", "not understood"),
    ("not-the-judge", "no SAM Audio judge weights"), ("text-layer", "nth_text_layer 5"),
    ("kv-heads", "num_key_value_heads"), ("layer-in-words", "wrong type or range"),
    ("width-as-text", "wrong type or range"),
])
def test_recognisable_mistakes_are_one_line_errors(tmp_path, change, needle):
    state, config = judge_state(), json.loads(json.dumps(LAYOUT["config"]))
    if change == "missing":
        state.pop("finetune_transformer.output.weight")
    elif change == "unexpected":
        state["finetune_transformer.extra.weight"] = torch.ones(2)
    elif change == "misshaped":
        state["head.weight"] = torch.ones(3, 3)
    elif change == "not-the-judge":
        state = {"transformer.output.weight": torch.ones(2)}
    elif change == "unknown-setting":
        config["in_channels"] = 768  # a SAM Audio separator's setting
    elif change == "text-layer":
        config["nth_text_layer"] = 5
    elif change == "kv-heads":
        config["transformer"]["num_key_value_heads"] = 1
    elif change == "layer-in-words":
        config["nth_text_layer"] = "two"
    elif change == "width-as-text":
        config["transformer"]["hidden_size"] = "32"
    folder = make_tiny_judge(tmp_path / "judge", state, config)
    if change == "not-a-folder":
        folder = tmp_path / "absent"
    elif change == "no-config":
        (folder / "config.json").unlink()
    elif change == "no-weights":
        (folder / "checkpoint.pt").unlink()
    elif change == "no-tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (folder / name).unlink(missing_ok=True)
    elif change == "truncated":
        file = folder / "checkpoint.pt"
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(LassbenchError, match=needle) as error:
        JudgeScorer(folder)
    assert "\n" not in str(error.value)
