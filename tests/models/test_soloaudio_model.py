"""SoloAudio: the released file layout loads strictly and reproduces the official ``tse_languageTSE.py`` (goldens
written by tests/golden/published/make_soloaudio_golden.py running WangHelin1997/SoloAudio d5aa243 on seeded weights
of a tiny configuration, 50 DDIM steps from the script's seeded noise); ``separate`` and the registry run it."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch
from lassbench.models.published import soloaudio
from lassbench.models.published.loading import load_published
from lassbench.models.published.soloaudio_loading import INDEX_BUFFERS, VAE_FILE, VAE_TRAINING_ONLY
from lassbench.models.registry import MODELS, check_published_checkpoint

from support import published_fixtures as fx
from support.command_helpers import cli_exit_code

sys.path.insert(0, str(fx.GOLDEN))
from make_soloaudio_golden import QUERIES, STEPS, soloaudio_inputs  # noqa: E402

GOLDEN = np.load(fx.GOLDEN / "soloaudio-golden.npz")
LAYOUT = json.loads((fx.GOLDEN / "soloaudio-layout.json").read_text())


def seeded(name: str) -> dict[str, torch.Tensor]:
    """The seeded tensors the official code was run on; its computed buffers (rotary frequencies, text index
    buffers) as the code computes them."""
    state = fx.seeded_state(LAYOUT[name])
    if name == "udit":
        shape = soloaudio.udit_shape(state, prefix="")
        state.update({k: v for k, v in soloaudio.UDiT(**shape).state_dict().items() if k.endswith("inv_freq")})
    if name == "clap":
        length = LAYOUT["clap_config"]["text_config"]["max_position_embeddings"]
        state["text_model.embeddings.position_ids"] = torch.arange(length)[None]
        state["text_model.embeddings.token_type_ids"] = torch.zeros(1, length, dtype=torch.long)
    return state


def write_release(root, *, clap_buffers: bool = True):
    """soloaudio_v2.pt with audio-vae.pt beside it; a CLAP folder as transformers saves laion/larger_clap_general."""
    from safetensors.torch import save_file

    weights = root / "pretrained_models"
    weights.mkdir(parents=True, exist_ok=True)
    torch.save({"model": seeded("udit")}, weights / "soloaudio_v2.pt")
    torch.save({"state_dict": {**seeded("vae"), "discriminator.conv.weight": torch.ones(2)}}, weights / VAE_FILE)
    clap = fx.write_roberta_vocab(root / "clap")
    (clap / "config.json").write_text(json.dumps(LAYOUT["clap_config"]))
    tensors = seeded("clap")
    if not clap_buffers:
        tensors = {k: v for k, v in tensors.items() if not k.endswith(("position_ids", "token_type_ids"))}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(clap / "model.safetensors"))
    return weights / "soloaudio_v2.pt", clap


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("soloaudio"))


@pytest.fixture(scope="module")
def loaded(release):
    checkpoint, clap = release
    return load_published("soloaudio", checkpoint, text_encoder=str(clap))


def test_soloaudio_reproduces_the_official_script_latent_by_latent_and_sample_by_sample(loaded):
    model, _ = loaded
    net = model.net
    assert net.steps == STEPS
    for k, (mixture, query) in enumerate(zip(soloaudio_inputs(), QUERIES, strict=True)):
        ids, mask = soloaudio.tokenize(model.tokenizer, [query])
        with torch.no_grad():
            timbre = net.timbre(ids, mask)
            latent = net.vae.encode(torch.from_numpy(mixture)[None], torch.Generator().manual_seed(net.encode_seed))
            final = net.sample(latent, timbre)
            estimate = net.vae.decode(final)[0].numpy()
        np.testing.assert_allclose(timbre[0].numpy(), GOLDEN[f"timbre{k}"], atol=1e-6)
        # Equal on the CPU that made the goldens and when both run on one machine; another CPU's float rounding
        # moves the latents by ~1e-5 and the decoded waveform by up to 1.1e-3 of its peak (docs/models.md).
        assert np.abs(latent[0].numpy() - GOLDEN[f"mixture_latent{k}"]).max() <= 1e-4 * np.abs(latent).max()
        peak = np.abs(GOLDEN[f"estimate{k}"]).max()
        for stage, value in (("mixture_latent", latent[0]), ("final_latent", final[0]), ("estimate", estimate)):
            golden = GOLDEN[f"{stage}{k}"]  # `pytest -s`: the figures docs/models.md quotes
            if np.shape(value) == golden.shape:
                print(f"input {k} {stage}: max |lassbench - official| / peak "
                      f"{np.abs(np.asarray(value) - golden).max() / np.abs(golden).max():.3g}")
        assert estimate.shape == GOLDEN[f"estimate{k}"].shape  # whole 480-sample frames, as the script saves
        assert np.abs(final[0].numpy() - GOLDEN[f"final_latent{k}"]).max() <= 1e-4 * np.abs(final).max()
        assert np.abs(estimate - GOLDEN[f"estimate{k}"]).max() <= 5e-3 * peak


def test_the_separator_returns_the_official_estimate_zero_filled_to_the_mixture_length(loaded):
    model, _ = loaded
    mixture = soloaudio_inputs()[0]
    with torch.no_grad():
        estimate = model(torch.from_numpy(mixture)[None], QueryBatch(QUERIES[:1])).numpy()[0]
    golden = GOLDEN["estimate0"]
    assert estimate.shape == mixture.shape and len(golden) < len(mixture)
    assert np.abs(estimate[: len(golden)] - golden).max() <= 5e-3 * np.abs(golden).max()
    assert not estimate[len(golden):].any()


def test_an_estimate_does_not_depend_on_its_batch_neighbours(loaded):
    model, _ = loaded
    mixtures = torch.from_numpy(np.stack([soloaudio_inputs()[1][:24000], soloaudio_inputs()[1][24000:48000]]))
    with torch.no_grad():
        together = model(mixtures, QueryBatch(QUERIES))
        alone = model(mixtures[1:], QueryBatch(QUERIES[1:]))
    assert (together[1:] - alone).abs().max() <= 1e-4 * alone.abs().max()  # batched CLAP text: float rounding only


def test_every_tensor_is_loaded_or_dropped_with_its_reason(loaded, tmp_path):
    _, report = loaded
    dropped = report["keys_dropped"]
    assert dropped[VAE_TRAINING_ONLY] == 1
    assert any("audio tower" in reason for reason in dropped) and any("temperatures" in r for r in dropped)
    assert INDEX_BUFFERS not in dropped
    assert report["udit"]["depth"] == 2 and report["udit"]["heads"] == 2
    assert report["vae"] == {"channels": 4, "c_mults": [1, 2, 4, 8], "strides": [2, 4, 6, 10], "latent_dim": 8}
    checkpoint, clap = write_release(tmp_path, clap_buffers=False)  # older transformers saved no index buffers
    assert load_published("soloaudio", checkpoint, text_encoder=str(clap))[1]["keys_dropped"][INDEX_BUFFERS] == 2


@pytest.mark.parametrize("change, needle", [
    ("vae-as-checkpoint", "SoloAudio's VAE"), ("no-vae", "must sit beside"), ("unexpected", "unexpected weight"),
    ("missing", "missing"), ("no-clap-weights", "no CLAP weights"), ("truncated", "truncated"),
])
def test_recognisable_mistakes_are_one_line_errors(tmp_path, change, needle):
    checkpoint, clap = write_release(tmp_path)
    if change == "vae-as-checkpoint":
        checkpoint = checkpoint.parent / VAE_FILE
    elif change == "no-vae":
        (checkpoint.parent / VAE_FILE).unlink()
    elif change == "unexpected":
        torch.save({"model": {**seeded("udit"), "extra.weight": torch.ones(2)}}, checkpoint)
    elif change == "missing":
        state = seeded("udit")
        state.pop("final_layer.linear.bias")
        torch.save({"model": state}, checkpoint)
    elif change == "no-clap-weights":
        (clap / "model.safetensors").unlink()
    elif change == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:4096])
    with pytest.raises(LassbenchError, match=needle) as error:
        load_published("soloaudio", checkpoint, text_encoder=str(clap))
    assert "\n" not in str(error.value)


def test_soloaudio_is_listed_and_refuses_to_run_without_its_weights():
    assert MODELS["soloaudio"].published is not None
    with pytest.raises(LassbenchError, match="never downloaded here.*--checkpoint"):
        check_published_checkpoint("soloaudio", None)


def test_separate_cli_runs_soloaudio_from_a_checkpoint_at_another_rate(tmp_path, release):
    checkpoint, clap = release
    mixture = soloaudio_inputs()[0]
    sf.write(tmp_path / "mix.wav", mixture[::3].copy(), 8000, subtype="FLOAT")
    code = cli_exit_code(["separate", "--model", "soloaudio", "--checkpoint", str(checkpoint), "--text-encoder",
                          str(clap), "--input", str(tmp_path / "mix.wav"), "--query", QUERIES[0], "--output",
                          str(tmp_path / "out.wav"), "--no-progress"])
    estimate, rate = sf.read(tmp_path / "out.wav")
    assert code == 0 and rate == 8000 and estimate.shape == (len(mixture[::3]),) and np.abs(estimate).max() > 0


def test_the_sampler_settings_are_the_official_defaults_until_replaced(loaded):
    model, _ = loaded
    assert model.sampler == {"solver": "ddim", "steps": 50, "seed": 2024, "encode_seed": soloaudio.ENCODE_SEED}
    model.set_sampler(steps=5)
    try:
        assert model.sampler["steps"] == 5 and model.sampler["seed"] == 2024
    finally:
        model.set_sampler(steps=soloaudio.STEPS)


@pytest.mark.parametrize("option, value, needle", [
    ("--steps", "1001", "soloaudio's sampler has 1000 steps at most"),
    ("--steps", "0", "at least one step"),
    ("--sampler-seed", str(2 ** 64), "a seed is from 0 to"),
    ("--sampler-seed", "-1", "a seed is from 0 to"),
])
def test_settings_the_sampler_cannot_run_are_refused_in_one_line_before_loading(tmp_path, capsys, option, value,
                                                                                 needle):
    """More DDIM steps than the 1000 training steps would give a stride of 0 (diffusers refuses them); torch's
    generator takes seeds from 0 to 2**64 - 1 only."""
    sf.write(tmp_path / "mix.wav", np.full(8000, 0.1, dtype=np.float32), 8000)
    code = cli_exit_code(["separate", "--model", "soloaudio", "--input", str(tmp_path / "mix.wav"), "--query", "a dog",
                          "--output", str(tmp_path / "o.wav"), option, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0] and not (tmp_path / "o.wav").exists()


def test_a_loaded_model_refuses_more_steps_than_its_schedule(loaded):
    model, _ = loaded
    with pytest.raises(LassbenchError, match="1000 steps at most"):
        model.set_sampler(steps=soloaudio.TRAIN_STEPS + 1)
    assert model.sampler["steps"] == soloaudio.STEPS
