"""SAM Audio: the released folder layout (config.json + checkpoint.pt) loads strictly and reproduces the official
``SAMAudio.separate`` (goldens written by tests/golden/published/make_sam_audio_golden.py running
facebookresearch/sam-audio 68b48d4 on seeded weights of a tiny configuration, 16 midpoint steps); ``separate``,
``run`` and the registry run it."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch
from lassbench.models.published.loading import load_published
from lassbench.models.published.sam_audio import STEPS, midpoint_grid
from lassbench.models.published.sam_audio_loading import DROPPED
from lassbench.models.registry import MODELS, check_published_checkpoint

from support import published_fixtures as fx
from support.command_helpers import cli_exit_code

sys.path.insert(0, str(fx.GOLDEN))
from make_flowsep_golden import write_t5_tokenizer  # noqa: E402
from make_sam_audio_golden import QUERIES, SEED, initial_noise, sam_audio_inputs, tie_t5  # noqa: E402

GOLDEN = np.load(fx.GOLDEN / "sam-audio-golden.npz")
LAYOUT = json.loads((fx.GOLDEN / "sam-audio-layout.json").read_text())
# Of each stage's peak. 0.0 measured with the goldens' CPU and kernels; with torch held to AVX2 kernels (what
# another CPU runs) features and vector-field calls moved by up to 3e-6 and the decoded waveforms by up to 7e-4.
TOLERANCE = 1e-4
WAVEFORM_TOLERANCE = 5e-3


def write_t5(folder):
    """The tiny T5 the official code read: its tokenizer, config.json and weights, as save_pretrained writes."""
    from transformers import T5Config, T5EncoderModel

    write_t5_tokenizer(folder)
    t5 = T5EncoderModel(T5Config.from_dict(LAYOUT["t5_config"])).eval()
    t5.load_state_dict(tie_t5(fx.seeded_state(LAYOUT["t5"])))
    t5.save_pretrained(str(folder))
    return folder


def write_release(root, state: dict[str, torch.Tensor] | None = None, t5=None):
    """The checkpoint folder as the release ships it (config.json + checkpoint.pt) and the T5 folder."""
    release = root / "sam-audio-tiny"
    release.mkdir(parents=True, exist_ok=True)
    (release / "config.json").write_text(json.dumps({**LAYOUT["config"], "text_encoder": {
        **LAYOUT["config"]["text_encoder"], "name": "t5-tiny"}}))
    torch.save(fx.seeded_state(LAYOUT["checkpoint"]) if state is None else state, release / "checkpoint.pt")
    return release, t5 or write_t5(root / "t5-tiny")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("sam-audio"))


@pytest.fixture(scope="module")
def loaded(release):
    folder, t5 = release
    return load_published("sam-audio", folder, text_encoder=str(t5))


def _within(actual, golden, tolerance: float = TOLERANCE) -> bool:
    actual, golden = np.asarray(actual), np.asarray(golden)
    if actual.shape != golden.shape:
        return False
    drift = float(np.abs(actual - golden).max()) / float(np.abs(golden).max())
    print(f"max |lassbench - official| / peak: {drift:.3g}")  # `pytest -s`: the figures docs/models.md quotes
    return drift <= tolerance


@pytest.mark.parametrize("k", [0, 1])
def test_sam_audio_reproduces_the_official_separation_stage_by_stage(loaded, k):
    model, _ = loaded
    net = model.net
    assert net.steps == STEPS == 16 and net.seed == SEED
    wav = torch.from_numpy(sam_audio_inputs()[k])[None]
    ids, mask = net.tokenize(model.tokenizer, [QUERIES[k]])
    with torch.no_grad():
        cond = net.conditioning(wav, ids, mask)
        calls = [net.vector_field(torch.from_numpy(GOLDEN[f"call{k}_{j}_input"])[None],
                                  torch.from_numpy(GOLDEN[f"call{k}_{j}_time"]), cond) for j in range(2)]
        net.initial_noise = initial_noise(cond.features.shape[1])[0] if k == 1 else None
        try:
            target, residual = net.separate_one(wav, ids, mask)
        finally:
            net.initial_noise = None
    assert _within(cond.text[0], GOLDEN[f"text{k}"]) and cond.text_mask[0].numpy().tolist() == \
        GOLDEN[f"text_mask{k}"].tolist()
    assert _within(cond.features[0], GOLDEN[f"features{k}"])
    assert [float(GOLDEN[f"call{k}_{j}_time"][0]) for j in range(2)] == [0.0, 1 / 32]  # t0 and t0 + dt / 2
    assert all(_within(call[0], GOLDEN[f"call{k}_{j}_output"]) for j, call in enumerate(calls))
    assert _within(target[0], GOLDEN[f"target{k}"], WAVEFORM_TOLERANCE)
    assert _within(residual[0], GOLDEN[f"residual{k}"], WAVEFORM_TOLERANCE)


def test_the_seed_draws_the_official_noise_and_watermark_messages():
    """Seed S gives what ``torch.manual_seed(S); model.separate(batch)`` draws on the CPU: the noise, then the
    two messages (the second golden mixture was given its noise, so its messages are the first draw)."""
    generator = torch.Generator().manual_seed(SEED)
    noise = torch.randn(GOLDEN["noise0"][None].shape, generator=generator)
    message = torch.randint(0, 2, (2, 16), generator=generator, dtype=torch.float32)
    assert np.array_equal(noise[0].numpy(), GOLDEN["noise0"]) and np.array_equal(message.numpy(), GOLDEN["message0"])
    again = torch.randint(0, 2, (2, 16), generator=torch.Generator().manual_seed(SEED), dtype=torch.float32)
    assert np.array_equal(again.numpy(), GOLDEN["message1"])
    assert np.array_equal(GOLDEN["noise1"], initial_noise(GOLDEN["noise1"].shape[0])[0].numpy())


def test_the_midpoint_grid_is_torchdiffeqs_for_the_default_step():
    assert midpoint_grid(16).tolist() == [i / 16 for i in range(17)]
    assert midpoint_grid(3).tolist()[-1] == 1.0 and len(midpoint_grid(3)) == 4


def test_the_separator_returns_the_official_target_cut_to_the_mixture_length(loaded):
    model, _ = loaded
    mixture = sam_audio_inputs()[0]
    with torch.no_grad():
        estimate = model(torch.from_numpy(mixture)[None], QueryBatch(QUERIES[:1])).numpy()[0]
    golden = GOLDEN["target0"]
    assert estimate.shape == mixture.shape and len(golden) > len(mixture)  # the release pads to whole frames
    assert _within(estimate, golden[: len(mixture)], WAVEFORM_TOLERANCE)
    assert model.sampler == {"solver": "midpoint", "steps": 16, "seed": 0, "reranking_candidates": 1,
                             "initial_noise": False}


def test_an_estimate_does_not_depend_on_its_batch_neighbours_or_their_longer_descriptions(loaded):
    model, _ = loaded
    mixtures = torch.from_numpy(np.stack([sam_audio_inputs()[0], sam_audio_inputs()[1][:12062]]))
    queries = ["a dog barks loudly in the yard", QUERIES[0]]  # the second is padded in the batch
    with torch.no_grad():
        together = model(mixtures, QueryBatch(queries))
        alone = model(mixtures[1:], QueryBatch(queries[1:]))
    assert torch.equal(together[1:], alone)


def test_every_tensor_is_loaded_or_dropped_with_its_reason(loaded, tmp_path):
    _, report = loaded
    reasons = {rule.reason: rule for rule in DROPPED}
    vision = next(r for r in reasons if r.startswith("the Perception Encoder"))
    assert report["keys_dropped"] == {vision: 2}
    assert report["transformer"]["dim"] == 32 and report["transformer"]["n_layers"] == 2
    assert report["keys_loaded"] == len(LAYOUT["checkpoint"]) - 2
    assert (loaded[0].sample_rate, loaded[0].spec.hop) == (48000, 320)  # the codec of the folder's config.json


def test_a_safetensors_checkpoint_with_ranker_and_span_predictor_tensors_loads(release, tmp_path):
    from safetensors.torch import save_file

    _, t5 = release
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "config.json").write_text((release[0] / "config.json").read_text())
    state = {**fx.seeded_state(LAYOUT["checkpoint"]), "text_ranker.model.weight": torch.ones(2),
             "span_predictor.proj.weight": torch.ones(2)}
    save_file(state, str(folder / "model.safetensors"))
    _, report = load_published("sam-audio", folder, text_encoder=str(t5))
    assert sorted(report["keys_dropped"].values()) == [1, 1, 2] and report["weights"].endswith("model.safetensors")


@pytest.fixture(scope="module")
def seeded():
    return fx.seeded_state(LAYOUT["checkpoint"])


@pytest.mark.parametrize("change, needle", [
    ("truncated", "truncated"), ("missing", "missing"), ("unexpected", "unexpected weight"),
    ("misshaped", "has shape"), ("no-config", "config.json must sit beside"), ("t5-width", "width"),
    ("t5-weights", "no T5 weights"), ("not-sam-audio", "no SAM Audio weights"),
    ("width-as-text", "config.json: a setting has a value of the wrong type"),
])
def test_recognisable_mistakes_are_one_line_errors(tmp_path, release, seeded, change, needle):
    state = dict(seeded)
    if change == "missing":
        state.pop("transformer.output.weight")
    elif change == "unexpected":
        state["transformer.extra.weight"] = torch.ones(2)
    elif change == "misshaped":
        state["proj.weight"] = torch.ones(3, 3)
    elif change == "not-sam-audio":
        state = {"encoder.weight": torch.ones(2)}
    t5 = release[1]
    if change.startswith("t5"):
        t5 = tmp_path / "t5"
        write_t5_tokenizer(t5)
        config = {**LAYOUT["t5_config"], "d_model": 24} if change == "t5-width" else LAYOUT["t5_config"]
        (t5 / "config.json").write_text(json.dumps(config))
    if change in ("truncated", "no-config", "width-as-text") or change.startswith("t5"):  # refused before matching
        state = {"transformer.output.weight": torch.ones(2)}
    folder, _ = write_release(tmp_path, state, t5=t5)
    if change == "truncated":
        file = folder / "checkpoint.pt"
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    elif change == "no-config":
        (folder / "config.json").unlink()
    elif change == "width-as-text":
        config = json.loads((folder / "config.json").read_text())
        config["transformer"]["dim"] = "32"
        (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LassbenchError, match=needle) as error:
        load_published("sam-audio", folder, text_encoder=str(t5))
    assert "\n" not in str(error.value)


def test_sam_audio_is_listed_and_refuses_to_run_without_its_weights():
    assert MODELS["sam-audio"].published is not None
    with pytest.raises(LassbenchError, match="never downloaded here.*--checkpoint"):
        check_published_checkpoint("sam-audio", None)


def test_separate_cli_runs_sam_audio_from_its_folder_at_another_rate(tmp_path, release):
    folder, t5 = release
    mixture = sam_audio_inputs()[1][::3].copy()  # 16 kHz
    sf.write(tmp_path / "mix.wav", mixture, 16000, subtype="FLOAT")
    code = cli_exit_code(["separate", "--model", "sam-audio", "--checkpoint", str(folder), "--text-encoder",
                          str(t5), "--input", str(tmp_path / "mix.wav"), "--query", QUERIES[0], "--output",
                          str(tmp_path / "out.wav"), "--no-progress"])
    estimate, rate = sf.read(tmp_path / "out.wav")
    assert code == 0 and rate == 16000 and estimate.shape == mixture.shape and np.abs(estimate).max() > 0


def test_a_truncated_checkpoint_is_one_line_on_the_command_line(tmp_path, release, capsys):
    folder, t5 = release
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folder / "config.json").read_text())
    (broken / "checkpoint.pt").write_bytes((folder / "checkpoint.pt").read_bytes()[:100_000])
    sf.write(tmp_path / "mix.wav", sam_audio_inputs()[0], 48000, subtype="FLOAT")
    code = cli_exit_code(["separate", "--model", "sam-audio", "--checkpoint", str(broken / "checkpoint.pt"),
                          "--text-encoder", str(t5), "--input", str(tmp_path / "mix.wav"), "--query", "a dog barks",
                          "--output", str(tmp_path / "out.wav"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Traceback" not in "\n".join(err) and "truncated" in err[-1]


def test_run_records_the_sampler_and_hashes_the_weights_file(tmp_path, release):
    from lassbench.run import RunConfig, run_model

    folder, t5 = release
    bench = fx.write_benchmark(tmp_path / "bench", [sam_audio_inputs()[0]], 48000, QUERIES[:1])
    outcome, = run_model(RunConfig(model="sam-audio", data=str(bench), checkpoint=str(folder), text_encoder=str(t5),
                                   out=str(tmp_path / "results"), workers=0), log=lambda line: None)
    info = outcome.run_info
    assert info["sampler"]["seed"] == 0 and info["sampler"]["steps"] == 16
    assert info["checkpoint_bytes"] == (folder / "checkpoint.pt").stat().st_size


def test_the_step_grid_is_torchdiffeqs_including_its_extra_near_zero_steps():
    # torchdiffeq 0.2.5's _grid_constructor_from_step_size(1 / n) over [0, 1], compared for n = 1..200 (equal
    # grids); these n get one more, near-zero step, as the official solver takes it
    assert [n for n in range(1, 201) if len(midpoint_grid(n)) - 1 != n] == [61, 109, 115, 121, 122, 123]
