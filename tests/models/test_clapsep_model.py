"""CLAPSep: the official checkpoint layout loads strictly and reproduces the official ``test_step`` (goldens written by
tests/golden/published/make_clapsep_golden.py running Aisaka0v0/CLAPSep 5404111 on seeded weights of a tiny
configuration); the negative query reaches the model through ``separate``, the Python API and ``run``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from lassbench.cli import main
from lassbench.errors import LassbenchError
from lassbench.manifests import read_item_manifest
from lassbench.models.lassnet import QueryBatch
from lassbench.models.published import clapsep
from lassbench.models.published.loading import KERNELS_COMPUTED, LORA_MERGED, load_published
from lassbench.models.registry import MODELS, takes_negative_query

from support import published_fixtures as fx
from support.command_helpers import cli_exit_code

sys.path.insert(0, str(fx.GOLDEN))
from make_clapsep_golden import NEGATIVE, POSITIVE, clapsep_input, keep  # noqa: E402

GOLDEN = np.load(fx.GOLDEN / "clapsep-golden.npz")


def official_state() -> dict[str, torch.Tensor]:
    """The seeded file the official code was run on: seeded weights in its layout, and the tensors the official code
    computes (DFT kernels, mel filters, Swin index and mask buffers) as it computes them."""
    layout = fx.layout("clapsep")
    state = fx.seeded_state(layout)
    encoder, decoder = clapsep.shape_of(state)
    computed = {**clapsep.torchlibrosa_kernels(),
                **clapsep.torchlibrosa_kernels("audio_branch.spectrogram_extractor.stft.", "unused.")}
    buffers = {k: v for k, v in clapsep.HTSATEncoder(**encoder).state_dict().items()
               if "relative_position_index" in k or "attn_mask" in k}
    buffers = {"audio_branch." + k: v for k, v in buffers.items()}
    buffers.update({"decoder_model." + k: v for k, v in clapsep.MaskDecoder(**decoder).state_dict().items()
                    if "relative_position_index" in k or "attn_mask" in k})
    melw = torch.from_numpy(GOLDEN["melW"])
    for key in [k for k in state if keep(k)]:
        short = key.removeprefix("clap_model.model.")
        if short.endswith("logmel_extractor.melW"):
            state[key] = melw
        elif short in computed:
            state[key] = computed[short]
        elif short in buffers:
            state[key] = buffers[short]
    return state


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("clapsep")
    state = official_state()
    return {"roberta": fx.write_roberta_vocab(root / "roberta"), "state": state,
            "ckpt": fx.write_checkpoint("clapsep", root / "clapsep.ckpt", state)}


@pytest.fixture(scope="module")
def loaded(files):
    return load_published("clapsep", files["ckpt"], text_encoder=str(files["roberta"]))


def test_clapsep_reproduces_the_official_test_step_with_and_without_a_negative_query(loaded):
    model, _ = loaded
    mixture = torch.from_numpy(clapsep_input())
    with torch.no_grad():
        with_negative = model(mixture, QueryBatch(POSITIVE, negatives=NEGATIVE)).numpy()
        without = model(mixture, QueryBatch(POSITIVE)).numpy()
    peak = np.abs(GOLDEN["estimate_every64"]).max()
    assert with_negative.shape[1] == int(GOLDEN["estimate_len"])
    assert np.abs(with_negative[:, ::64] - GOLDEN["estimate_every64"]).max() <= 1e-5 * peak
    assert np.abs(without[:, ::64] - GOLDEN["no_negative_every64"]).max() <= 1e-5 * peak
    assert np.abs(with_negative - without).max() > 1e-3 * peak  # the negative query changes the estimate


def test_the_query_embeddings_and_the_48_khz_resampling_equal_the_official_ones(loaded):
    model, _ = loaded
    with torch.no_grad():
        pos = model.net.clap_model(*clapsep.tokenize(model.tokenizer, POSITIVE)).numpy()
        resampled = clapsep.sinc_resample(torch.from_numpy(clapsep_input()), 32000, 48000).numpy()
    np.testing.assert_allclose(pos, GOLDEN["positive"], atol=1e-6)
    np.testing.assert_allclose(resampled[:, ::256], GOLDEN["resampled_every256"], atol=1e-7)  # torchaudio's kernel


def test_every_tensor_is_loaded_merged_or_dropped_with_its_reason(loaded):
    _, report = loaded
    dropped = report["keys_dropped"]
    assert dropped[LORA_MERGED] == 24  # qkv + proj of 6 HTSAT blocks, lora_A and lora_B each
    assert any("audio queries only" in reason for reason in dropped)
    assert any("classification head" in reason for reason in dropped)
    assert KERNELS_COMPUTED not in dropped
    assert report["encoder"] == {"dim": 16, "depths": [2, 2, 1, 1], "heads": [1, 2, 4, 8]}


def test_a_file_of_tuned_tensors_is_completed_from_the_clap_checkpoint_beside_the_tokenizer(tmp_path, files, loaded):
    state = files["state"]
    tuned = {k: v for k, v in state.items()  # model/CLAPSep.py on_save_checkpoint's selection
             if any(e in k for e in ["lora", "attn.qkv.bias", "attn.proj.bias", "decoder_model"])}
    # the CLAP file CLAPSep starts from: its audio branch is what CLAPSep copies before adding LoRA
    clap = {"module." + k.removeprefix("clap_model.model."): v for k, v in state.items()
            if k.startswith("clap_model.model.")}
    clap.update({"module." + k: v for k, v in state.items() if k.startswith("audio_branch.") and "lora" not in k})
    folder = fx.write_roberta_vocab(tmp_path / "clap")
    torch.save({"epoch": 15, "state_dict": clap}, folder / "music_audioset_epoch_15_esc_90.14.pt")
    torch.save(tuned, tmp_path / "best_model.ckpt")
    with pytest.raises(LassbenchError, match="music_audioset_epoch_15_esc_90.14.pt"):
        load_published("clapsep", tmp_path / "best_model.ckpt", text_encoder=str(files["roberta"]))
    model, report = load_published("clapsep", tmp_path / "best_model.ckpt", text_encoder=str(folder))
    assert report["keys_dropped"][KERNELS_COMPUTED] == 5
    mixture = torch.from_numpy(clapsep_input()[:1])
    with torch.no_grad():
        estimate = model(mixture, QueryBatch(POSITIVE[:1], negatives=NEGATIVE[:1])).numpy()
    assert np.abs(estimate[:, ::64] - GOLDEN["estimate_every64"][:1]).max() <= 1e-5 * np.abs(estimate).max()


@pytest.mark.parametrize("change, needle", [
    ("clap-file", "LAION-CLAP checkpoint"), ("audiosep", "AudioSep-family"), ("unexpected", "unexpected weight"),
    ("missing", "missing"), ("truncated", "truncated"),
])
def test_recognisable_mistakes_are_one_line_errors(tmp_path, files, change, needle):
    state = dict(files["state"])
    if change == "clap-file":
        state = {"module." + k.removeprefix("clap_model.model."): v for k, v in state.items()
                 if k.startswith("clap_model.model.")}
    elif change == "audiosep":
        state = {"ss_model.base.bn0.weight": torch.ones(3)}
    elif change == "unexpected":
        state["decoder_model.extra.weight"] = torch.ones(2)
    elif change == "missing":
        state.pop("decoder_model.spec_norm.weight")
    path = fx.write_checkpoint("clapsep", tmp_path / "x.ckpt", state)
    if change == "truncated":
        path.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(LassbenchError, match=needle) as error:
        load_published("clapsep", path, text_encoder=str(files["roberta"]))
    assert "\n" not in str(error.value)


def test_inputs_longer_than_ten_seconds_are_separated_in_ten_second_segments_like_the_demo(loaded):
    model, _ = loaded
    long = torch.from_numpy(np.concatenate([clapsep_input()[0], clapsep_input()[1][:64000]])[None])
    embed = model._clapsep_embedding(QueryBatch(POSITIVE[:1], negatives=NEGATIVE[:1]), "cpu")
    with torch.no_grad():
        whole = model.net.separate(long, embed)
        first = model.net.separate_segment(long[:, :320000], embed)
        rest = model.net.separate_segment(torch.nn.functional.pad(long[:, 320000:], (0, 256000)), embed)
    assert whole.shape == long.shape
    assert torch.equal(whole, torch.cat([first, rest[:, :64000]], dim=1))


def test_clapsep_is_listed_and_only_it_takes_a_negative_query():
    assert MODELS["clapsep"].published is not None and takes_negative_query("clapsep")
    assert not any(takes_negative_query(name) for name in MODELS if name != "clapsep")


def test_separate_refuses_a_negative_query_for_a_model_that_takes_none_in_one_line(tmp_path, capsys):
    sf.write(tmp_path / "mix.wav", (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    with pytest.raises(SystemExit) as exit_info:
        main(["separate", "--input", str(tmp_path / "mix.wav"), "--query", "a dog barks", "--negative-query",
              "a man speaks", "--output", str(tmp_path / "out.wav")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.count("\n") == 0
    assert "takes no negative query" in err and not (tmp_path / "out.wav").exists()


def test_the_python_api_passes_the_negative_query_to_clapsep(files):
    from lassbench.separate import load_separator

    separator = load_separator("clapsep", files["ckpt"], text_encoder=str(files["roberta"]))
    audio = clapsep_input()[0][:96000]
    plain = separator.separate(audio, 32000, "a dog barks")
    negative = separator.separate(audio, 32000, "a dog barks", negative_query="a man speaks")
    assert plain.shape == negative.shape == audio.shape
    assert np.abs(plain - negative).max() > 1e-4 * np.abs(plain).max()


@pytest.mark.slow
def test_run_on_a_clapsep_benchmark_sends_its_negative_captions_and_the_negative_control_swaps_them(tmp_path, files):
    from lassbench.run import RunConfig, run_model

    from support.clapsep_lists import build

    bench = build(tmp_path, "esc50").out
    outcomes = run_model(RunConfig(model="clapsep", data=str(bench), checkpoint=str(files["ckpt"]),
                                   text_encoder=str(files["roberta"]), out=str(tmp_path / "results"),
                                   save_audio=True, control="negative", batch_size=2, workers=0))
    assert [o.variant for o in outcomes] == ["default", "negative"]
    main_run, control = outcomes
    assert main_run.summary["headline"] == {"sdr": "bss_sdr", "sdri": "bss_sdri"}
    assert control.run_info["scored_against"] == "interferer"
    manifest = read_item_manifest(bench / "manifest.csv")
    model, _ = load_published("clapsep", files["ckpt"], text_encoder=str(files["roberta"]))
    row = manifest.iloc[0]
    mixture = torch.from_numpy(sf.read(bench / row["mixture_path"], dtype="float32")[0])[None]
    saved = sf.read(main_run.out_dir / "estimates" / f"{row['id']}.wav", dtype="float32")[0]
    with torch.no_grad():
        told = model(mixture, QueryBatch([row["query"]], negatives=[row["negative_query"]])).numpy()[0]
        untold = model(mixture, QueryBatch([row["query"]])).numpy()[0]
    assert np.abs(saved - told).max() < 1e-5 < np.abs(saved - untold).max()
    swapped = sf.read(control.out_dir / "estimates" / f"{row['id']}.wav", dtype="float32")[0]
    with torch.no_grad():
        expected = model(mixture, QueryBatch([row["negative_query"]], negatives=[row["query"]])).numpy()[0]
    assert np.abs(swapped - expected).max() < 1e-5
    assert json.loads((main_run.out_dir / "run.json").read_text())["model"] == "clapsep"


def test_separate_cli_takes_a_negative_query_for_clapsep_and_it_changes_the_output(tmp_path, files):
    sf.write(tmp_path / "mix.wav", clapsep_input()[0][:64000], 32000, subtype="FLOAT")
    common = ["separate", "--model", "clapsep", "--checkpoint", str(files["ckpt"]), "--text-encoder",
              str(files["roberta"]), "--input", str(tmp_path / "mix.wav"), "--query", "a dog barks", "--no-progress"]
    assert cli_exit_code([*common, "--output", str(tmp_path / "plain.wav")]) == 0
    assert cli_exit_code([*common, "--negative-query", "a man speaks", "--output", str(tmp_path / "negative.wav")]) == 0
    plain, negative = sf.read(tmp_path / "plain.wav")[0], sf.read(tmp_path / "negative.wav")[0]
    assert plain.shape == negative.shape == (64000,)
    assert np.abs(plain - negative).max() > 1e-4 * np.abs(plain).max()
