"""FlowSep: the released checkpoint layout loads strictly and reproduces the official ``lass_inference.py`` (goldens
written by tests/golden/published/make_flowsep_golden.py running Audio-AGI/FlowSep d8164db on seeded weights of a
tiny configuration, 20 Euler steps from seeded noise); ``separate`` and the registry run it."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch
from lassbench.models.published import flowsep
from lassbench.models.published.flowsep_loading import DROPPED
from lassbench.models.published.loading import load_published
from lassbench.models.registry import MODELS, check_published_checkpoint

from support import published_fixtures as fx
from support.command_helpers import cli_exit_code

sys.path.insert(0, str(fx.GOLDEN))
from make_flowsep_golden import (  # noqa: E402
    QUERIES,
    SCALE_FACTOR,
    STEPS,
    STRIDE,
    flowsep_inputs,
    tame_vocoder,
    tie_t5,
    write_t5_tokenizer,
)

GOLDEN = np.load(fx.GOLDEN / "flowsep-golden.npz")
LAYOUT = json.loads((fx.GOLDEN / "flowsep-layout.json").read_text())


def seeded() -> dict[str, torch.Tensor]:
    """The seeded checkpoint the official code was run on; its anti-aliasing filters as the code computes them."""
    state = fx.seeded_state(LAYOUT["state"])
    for key in state:
        if key.endswith(".filter"):
            state[key] = torch.from_numpy(GOLDEN["vocoder_filter"])
    state["scale_factor"] = torch.tensor(SCALE_FACTOR)
    return tame_vocoder(tie_t5(state))


def write_release(root, state: dict[str, torch.Tensor] | None = None):
    """v2_100k.ckpt as Lightning saves it; a FLAN-T5 folder (config.json + tokenizer) as transformers saves it."""
    root.mkdir(parents=True, exist_ok=True)
    checkpoint = root / "v2_100k.ckpt"
    torch.save({"epoch": 3, "global_step": 100000, "state_dict": seeded() if state is None else state}, checkpoint)
    t5 = root / "flan-t5"
    write_t5_tokenizer(t5)
    (t5 / "config.json").write_text(json.dumps(LAYOUT["t5_config"]))
    return checkpoint, t5


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("flowsep"))


@pytest.fixture(scope="module")
def loaded(release):
    checkpoint, t5 = release
    return load_published("flowsep", checkpoint, text_encoder=str(t5))


def _peak_close(actual: np.ndarray, golden: np.ndarray) -> bool:
    return float(np.abs(actual - golden).max()) <= 1e-4 * float(np.abs(golden).max())


def test_flowsep_reproduces_the_official_script_stage_by_stage(loaded):
    model, _ = loaded
    net = model.net
    assert net.steps == STEPS
    for k, (mixture, query) in enumerate(zip(flowsep_inputs(), QUERIES, strict=True)):
        ids, mask = flowsep.tokenize(model.tokenizer, [query])
        with torch.no_grad():
            context = net.context(ids, mask)
            normalised, _ = flowsep.normalize_segment(torch.from_numpy(mixture)[None])
            mel = flowsep.log_mel(F.pad(normalised, (0, flowsep.SEGMENT - normalised.shape[-1])), net.stft_basis,
                                  net.mel_basis)
            latent = net.scale_factor * net.vae.encode(mel, torch.Generator().manual_seed(net.encode_seed))
            final = net.sample(latent, context, mask.float())
            decoded = net.vae.decode(final / net.scale_factor)
            estimate = net.vocoder(decoded[:, 0].transpose(1, 2))[0, 0].numpy()
        np.testing.assert_allclose(context[0].numpy(), GOLDEN[f"context{k}"], atol=1e-6)
        assert _peak_close(mel[0, 0, ::STRIDE].numpy(), GOLDEN[f"mixture_mel{k}_every{STRIDE}"])
        assert _peak_close(latent[0, :, ::STRIDE].numpy(), GOLDEN[f"mixture_latent{k}_every{STRIDE}"])
        assert _peak_close(final[0, :, ::STRIDE].numpy(), GOLDEN[f"final_latent{k}_every{STRIDE}"])
        assert _peak_close(decoded[0, 0, ::STRIDE].numpy(), GOLDEN[f"mel{k}_every{STRIDE}"])
        assert estimate[::STRIDE].shape == GOLDEN[f"estimate{k}_every{STRIDE}"].shape  # 163,872 samples, as saved
        assert _peak_close(estimate[::STRIDE], GOLDEN[f"estimate{k}_every{STRIDE}"])


def test_the_separator_returns_the_official_estimate_at_the_mixture_level_and_length(loaded):
    model, _ = loaded
    mixture = flowsep_inputs()[0]
    with torch.no_grad():
        estimate = model(torch.from_numpy(mixture)[None], QueryBatch(QUERIES[:1])).numpy()[0]
    _, gain = flowsep.normalize_segment(torch.from_numpy(mixture)[None])
    golden = GOLDEN[f"estimate0_every{STRIDE}"]
    assert estimate.shape == mixture.shape
    assert _peak_close(estimate[::STRIDE] * float(gain), golden[: len(estimate[::STRIDE])])


def test_a_mixture_longer_than_10_24_s_is_separated_segment_by_segment(loaded):
    model, _ = loaded
    first, tail = flowsep_inputs()[1], flowsep_inputs()[0][:8000]
    mixture = np.concatenate([first, tail])
    with torch.no_grad():
        estimate = model(torch.from_numpy(mixture)[None], QueryBatch(QUERIES[1:])).numpy()[0]
    _, gain = flowsep.normalize_segment(torch.from_numpy(first)[None])
    assert estimate.shape == mixture.shape and np.abs(estimate[flowsep.SEGMENT:]).max() > 0
    golden = GOLDEN[f"estimate1_every{STRIDE}"][: flowsep.SEGMENT // STRIDE]
    assert _peak_close(estimate[: flowsep.SEGMENT: STRIDE] * float(gain), golden)


def test_an_estimate_does_not_depend_on_its_batch_neighbours(loaded):
    model, _ = loaded
    mixtures = torch.from_numpy(np.stack([flowsep_inputs()[1][:16000], flowsep_inputs()[1][16000:32000]]))
    with torch.no_grad():
        together = model(mixtures, QueryBatch(QUERIES))
        alone = model(mixtures[1:], QueryBatch(QUERIES[1:]))
    assert (together[1:] - alone).abs().max() <= 1e-4 * alone.abs().max()  # batched T5: float rounding only


def test_every_tensor_is_loaded_or_dropped_and_the_unet_samples_with_the_ema_copy(loaded):
    model, report = loaded
    dropped = report["keys_dropped"]
    reasons = {rule.reason: rule for rule in DROPPED}
    training = next(r for r in reasons if "training weights" in r)
    unet_parameters = sum(1 for _ in model.net.unet.parameters())
    assert dropped[training] == unet_parameters and any("schedule" in r for r in dropped)
    state = seeded()
    ema = state["model_ema.diffusion_modelout2weight"]
    assert torch.equal(model.net.unet.out[2].weight, ema)
    assert not torch.equal(ema, state["model.diffusion_model.out.2.weight"])
    assert report["unet"]["channel_mult"] == [1, 2, 3] and report["unet"]["attention_resolutions"] == [2, 4]
    assert report["vocoder"]["initial_channel"] == 64 and report["vae"]["ch"] == 32
    assert float(model.net.scale_factor) == SCALE_FACTOR


@pytest.mark.parametrize("change, needle", [
    ("no-ema", "no EMA weights"), ("not-flowsep", "no FlowSep weights"), ("unexpected", "unexpected weight"),
    ("missing", "missing"), ("no-t5-config", "no T5 config.json.*flan-t5-large"), ("truncated", "truncated"),
])
def test_recognisable_mistakes_are_one_line_errors(tmp_path, change, needle):
    state = seeded()
    if change == "no-ema":
        state = {k: v for k, v in state.items() if not k.startswith("model_ema.")}
    elif change == "not-flowsep":
        state = {k: v for k, v in state.items() if k.startswith("first_stage_model.")}
    elif change == "unexpected":
        state["first_stage_model.extra.weight"] = torch.ones(2)
    elif change == "missing":
        state.pop("first_stage_model.vocoder.conv_post.bias")
    checkpoint, t5 = write_release(tmp_path, state)
    if change == "no-t5-config":
        (t5 / "config.json").unlink()
    elif change == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:4096])
    with pytest.raises(LassbenchError, match=needle) as error:
        load_published("flowsep", checkpoint, text_encoder=str(t5))
    assert "\n" not in str(error.value)


def test_flowsep_is_listed_and_refuses_to_run_without_its_weights():
    assert MODELS["flowsep"].published is not None
    with pytest.raises(LassbenchError, match="never downloaded here.*--checkpoint"):
        check_published_checkpoint("flowsep", None)


def test_separate_cli_runs_flowsep_from_a_checkpoint_at_another_rate(tmp_path, release):
    checkpoint, t5 = release
    mixture = flowsep_inputs()[0][::2].copy()
    sf.write(tmp_path / "mix.wav", mixture, 8000, subtype="FLOAT")
    code = cli_exit_code(["separate", "--model", "flowsep", "--checkpoint", str(checkpoint), "--text-encoder",
                          str(t5), "--input", str(tmp_path / "mix.wav"), "--query", QUERIES[0], "--output",
                          str(tmp_path / "out.wav"), "--no-progress"])
    estimate, rate = sf.read(tmp_path / "out.wav")
    assert code == 0 and rate == 8000 and estimate.shape == mixture.shape and np.abs(estimate).max() > 0


def test_steps_and_sampler_seed_replace_the_official_defaults_and_change_the_estimate(tmp_path, release):
    from lassbench.separator import load_separator

    checkpoint, t5 = release
    mixture = flowsep_inputs()[0]
    default = load_separator("flowsep", checkpoint, text_encoder=str(t5))
    assert default.model.sampler == {"solver": "euler", "steps": flowsep.STEPS, "seed": flowsep.SEED,
                                     "encode_seed": flowsep.ENCODE_SEED}
    chosen = load_separator("flowsep", checkpoint, text_encoder=str(t5), steps=3, sampler_seed=7)
    assert chosen.model.sampler["steps"] == 3 and chosen.model.sampler["seed"] == 7
    same = load_separator("flowsep", checkpoint, text_encoder=str(t5), steps=3, sampler_seed=7)
    first, again = (s.separate(mixture, 16000, QUERIES[0]) for s in (chosen, same))
    assert np.array_equal(first, again)  # a seed reproduces
    assert np.abs(first - default.separate(mixture, 16000, QUERIES[0])).max() > 1e-3

    sf.write(tmp_path / "mix.wav", mixture, 16000, subtype="FLOAT")
    common = ["separate", "--model", "flowsep", "--checkpoint", str(checkpoint), "--text-encoder", str(t5),
              "--input", str(tmp_path / "mix.wav"), "--query", QUERIES[0], "--no-progress"]
    assert cli_exit_code([*common, "--steps", "3", "--sampler-seed", "7", "--output", str(tmp_path / "a.wav")]) == 0
    assert np.allclose(sf.read(tmp_path / "a.wav", dtype="float32")[0], first, atol=1e-6)


@pytest.mark.parametrize("verb", ["separate", "run"])
def test_models_that_do_not_sample_refuse_steps_in_one_line_before_loading(tmp_path, capsys, verb):
    if verb == "separate":
        sf.write(tmp_path / "mix.wav", np.zeros(16000, dtype=np.float32) + 0.1, 16000)
        args = ["separate", "--input", str(tmp_path / "mix.wav"), "--query", "a dog", "--output",
                str(tmp_path / "o.wav"), "--steps", "4"]
    else:
        args = ["run", "lassnet", "--out", str(tmp_path / "r"), "--sampler-seed", "3"]
    assert cli_exit_code(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: lassnet does not sample: --steps / --sampler-seed are for the generative")
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "r").exists()
