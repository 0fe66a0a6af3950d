"""Published systems: the released checkpoints' layouts load strictly, reproduce the official code's outputs, and the
recognisable mistakes are refused with one line each.

The goldens in tests/golden/published/ were written by running the official code (liuxubo717/LASS,
Audio-AGI/AudioSep, Audio-AGI/dcase2024_task9_baseline, apple-yinhan/TQ-SED) on the seeded weights of
tests/published_fixtures.py; docs/models.md says how.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import published_fixtures as fx
import pytest
import torch

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch
from lassbench.models.published import clap_text, lassnet_release
from lassbench.models.published.loading import load_published, read_checkpoint_file
from lassbench.models.published.resunet30 import ResUNet30
from lassbench.models.registry import MODELS, load_model

SYSTEMS = list(fx.INPUTS)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Seeded checkpoints in each release's layout + the tiny tokenizer folders (written once per module)."""
    root = tmp_path_factory.mktemp("published")
    out = {"bert": fx.write_bert_vocab(root / "bert"), "roberta": fx.write_roberta_vocab(root / "roberta")}
    for name in SYSTEMS:
        suffix = ".pt" if name == "lassnet-release" else ".ckpt"
        out[name] = fx.write_checkpoint(name, root / f"{name}{suffix}", fx.seeded_state(fx.layout(name)))
    return out


def _tokenizer(name: str, files) -> str:
    return str(files["bert"] if name == "lassnet-release" else files["roberta"])


@pytest.fixture(scope="module")
def loaded(files):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_published(name, files[name], text_encoder=_tokenizer(name, files))
        return cache[name]

    return get


@pytest.mark.parametrize("name", SYSTEMS)
def test_the_official_output_is_reproduced_from_the_released_layout(name, loaded):
    model, report = loaded(name)
    golden = np.load(fx.GOLDEN / f"{name}-golden.npz")
    mixture = torch.from_numpy(fx.fixed_input(name))
    model.min_samples = 0  # the goldens feed the official model the short input itself, not padded to 10 s
    with torch.no_grad():
        estimate = model(mixture, QueryBatch(list(fx.QUERIES))).numpy()
        condition = _condition(model, name)
    n = int(golden["estimate_len"])  # the LASS-Net release returns (frames - 1) * hop samples; lassbench pads
    assert np.abs(estimate[:, :n:4] - golden["estimate_every4"]).max() <= 1e-4
    assert np.abs(estimate[:, n:]).max(initial=0.0) == 0.0
    assert np.abs(condition - golden["condition"]).max() <= 1e-4
    assert np.abs(golden["estimate_every4"]).mean() > 1e-3  # a real signal, not silence matching silence
    assert np.abs(condition[0] - condition[1]).max() > 1e-3  # the two queries condition differently
    assert report["keys_loaded"] + sum(report["keys_dropped"].values()) == len(fx.layout(name))


def _condition(model, name: str) -> np.ndarray:
    if name == "lassnet-release":
        ids, mask = lassnet_release.tokenize(model.tokenizer, list(fx.QUERIES))
        return model.net.module.text_embedder(ids, mask).numpy()
    ids, mask = clap_text.tokenize(model.tokenizer, list(fx.QUERIES))
    return model.net.query_encoder(ids, mask).numpy()


def test_lassnet_release_inputs_are_zero_padded_to_ten_seconds_like_its_load_wav(files):
    from transformers import BertTokenizer

    from lassbench.models.published.systems import PUBLISHED, PublishedSeparator

    seen = []

    class Halve(torch.nn.Module):
        def separate(self, wav, ids, mask):
            seen.append(wav)
            return wav * 0.5

    tokenizer = BertTokenizer.from_pretrained(str(files["bert"]))
    model = PublishedSeparator(PUBLISHED["lassnet-release"], Halve(), tokenizer, "bert")
    mixture = torch.ones(1, 8000)
    out = model(mixture, QueryBatch(["a dog barks"]))
    assert seen[0].shape[-1] == 320_000 and float(seen[0][0, 8000:].abs().max()) == 0.0
    assert out.shape == (1, 8000) and torch.allclose(out, mixture * 0.5)


def test_audiosep_dropped_keys_are_named_with_their_reasons(loaded):
    _, report = loaded("audiosep")
    reasons = " | ".join(report["keys_dropped"])
    assert "STFT" in reasons and "audio branch" in reasons and "contrastive" in reasons


class _Ramp(torch.nn.Module):
    """The same cheap, position-dependent stand-in for the separator that produced the golden stitching."""

    def forward(self, mixture, film):
        return mixture * torch.linspace(1.0, 2.0, mixture.shape[-1])


class _NoFilm(torch.nn.Module):
    def forward(self, condition):
        return {}


def test_chunked_long_audio_inference_stitches_like_the_release():
    golden = np.load(fx.GOLDEN / "audiosep-golden.npz")["chunk_every37"]
    with torch.device("meta"):
        net = ResUNet30(2048, 320)
    net.film = _NoFilm()
    net.base = _Ramp()
    long = torch.from_numpy(np.sin(np.arange(400_000) / 50.0).astype(np.float32))[None]
    out = net.chunk_inference(long, torch.zeros(1, 512)).numpy()[0]
    assert np.abs(out[::37] - golden).max() <= 1e-5


def test_audiosep_system_in_chunked_mode_runs_chunk_inference_per_row():
    from lassbench.models.published.systems import AudioSepSystem

    class ZeroQuery(torch.nn.Module):
        def forward(self, ids, mask):
            return torch.zeros(ids.shape[0], 512)

    system = AudioSepSystem.__new__(AudioSepSystem)
    torch.nn.Module.__init__(system)
    with torch.device("meta"):
        system.ss_model = ResUNet30(2048, 320)
    system.ss_model.film, system.ss_model.base = _NoFilm(), _Ramp()
    system.query_encoder, system.chunked = ZeroQuery(), True
    wav = torch.from_numpy(np.sin(np.arange(2 * 200_000) / 30.0).astype(np.float32)).reshape(2, -1)
    out = system.separate(wav, torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long))
    for row in range(2):
        expected = system.ss_model.chunk_inference(wav[row][None], torch.zeros(1, 512))[0]
        assert torch.equal(out[row], expected)
    assert not torch.equal(out, _Ramp()(wav, {}))  # stitched windows, not one pass


def test_lassnet_release_is_weight_incompatible_with_lassbench_lassnet_base():
    from lassbench.models.lassnet import sized_config
    from lassbench.models.registry import build_model

    own = set(build_model("lassnet", sized_config("base"), attach_encoder=False).state_dict())
    release = set(fx.layout("lassnet-release"))
    assert not own & release


# ---- refusals: one line each ----

def _small_lightning(path: Path, state: dict) -> Path:
    torch.save({"pytorch-lightning_version": "2.0.0", "state_dict": state}, path)
    return path


def test_a_clap_only_file_is_refused_as_a_separator(tmp_path, files):
    clap = {"epoch": 15, "state_dict": {"module.audio_branch.patch_embed.proj.weight": torch.zeros(2),
                                        "module.text_branch.embeddings.word_embeddings.weight": torch.zeros(2, 2)}}
    torch.save(clap, tmp_path / "music_speech_audioset_epoch_15_esc_89.98.pt")
    with pytest.raises(LassbenchError, match="CLAP encoder checkpoint") as err:
        load_published("audiosep", tmp_path / "music_speech_audioset_epoch_15_esc_89.98.pt",
                       text_encoder=str(files["roberta"]))
    assert "\n" not in str(err.value)


def test_a_separator_saved_without_clap_takes_it_from_the_clap_file_beside_the_tokenizer(tmp_path, files, loaded):
    state = fx.seeded_state(fx.layout("dcase2024-baseline"))
    clap = {"module." + k.removeprefix("query_encoder.model."): state.pop(k)
            for k in [k for k in state if k.startswith("query_encoder.")]}
    folder = fx.write_roberta_vocab(tmp_path / "clap-and-tokenizer")
    ckpt = fx.write_checkpoint("dcase2024-baseline", tmp_path / "separator-only.ckpt", state)
    with pytest.raises(LassbenchError, match="put the CLAP checkpoint"):
        load_published("dcase2024-baseline", ckpt, text_encoder=str(folder))
    torch.save({"epoch": 15, "state_dict": clap}, folder / "music_speech_audioset_epoch_15_esc_89.98.pt")
    model, _ = load_published("dcase2024-baseline", ckpt, text_encoder=str(folder))
    reference, _ = loaded("dcase2024-baseline")
    for key, value in reference.net.state_dict().items():
        assert torch.equal(model.net.state_dict()[key], value)


def test_a_truncated_file_is_refused_with_its_size(tmp_path, files):
    data = Path(files["dcase2024-baseline"]).read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 3])
    with pytest.raises(LassbenchError, match="truncated") as err:
        load_published("dcase2024-baseline", tmp_path / "cut.ckpt", text_encoder=str(files["roberta"]))
    assert f"{len(data) // 3:,} bytes" in str(err.value) and "\n" not in str(err.value)


def test_the_wrong_sample_rate_variant_is_refused_both_ways(files):
    with pytest.raises(LassbenchError, match="wrong sample-rate variant; run them as audiosep$"):
        load_published("dcase2024-baseline", files["audiosep"], text_encoder=str(files["roberta"]))
    with pytest.raises(LassbenchError, match="run them as dcase2024-baseline or audiosep-dp"):
        load_published("audiosep", files["dcase2024-baseline"], text_encoder=str(files["roberta"]))


def test_dprnn_weights_and_their_absence_name_the_right_system(files):
    with pytest.raises(LassbenchError, match="include a DPRNN.*audiosep-dp"):
        load_published("dcase2024-baseline", files["audiosep-dp"], text_encoder=str(files["roberta"]))
    with pytest.raises(LassbenchError, match="no DPRNN weights"):
        load_published("audiosep-dp", files["dcase2024-baseline"], text_encoder=str(files["roberta"]))


def test_a_lightning_checkpoint_is_refused_where_lassnets_plain_dict_is_expected(files):
    with pytest.raises(LassbenchError, match="a Lightning checkpoint"):
        load_published("lassnet-release", files["audiosep"], text_encoder=str(files["bert"]))
    with pytest.raises(LassbenchError, match="run it as lassnet-release"):
        load_published("audiosep", files["lassnet-release"], text_encoder=str(files["roberta"]))


@pytest.mark.parametrize("change", ["missing", "unexpected", "shape", "text"])
def test_every_key_is_consumed_or_named(tmp_path, files, change):
    state = fx.seeded_state(fx.layout("dcase2024-baseline"))
    key = "ss_model.base.encoder_block3.conv_block1.conv1.weight"
    if change == "missing":
        del state[key]
    elif change == "unexpected":
        state["ss_model.base.extra_head.weight"] = torch.zeros(3)
    elif change == "text":
        del state["query_encoder.model.text_branch.embeddings.token_type_embeddings.weight"]
    else:
        state[key] = torch.zeros(1, 2, 3, 3)
    path = fx.write_checkpoint("dcase2024-baseline", tmp_path / "x.ckpt", state)
    expected = {"missing": f"1 weight\\(s\\) missing, e.g. {key}$", "unexpected": "extra_head.weight",
                "shape": f"weight {key} has shape \\(1, 2, 3, 3\\)",
                "text": "token_type_embeddings.weight missing"}[change]
    with pytest.raises(LassbenchError, match=expected):
        load_published("dcase2024-baseline", path, text_encoder=str(files["roberta"]))


def test_a_tokenizer_must_be_given_and_fit_the_embedding(tmp_path, files):
    with pytest.raises(LassbenchError, match="no tokenizer given: audiosep needs the roberta-base tokenizer"):
        load_published("audiosep", files["audiosep"])
    big = fx.write_bert_vocab(tmp_path / "big")
    (big / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                             + [f"w{i}" for i in range(100)]) + "\n")
    with pytest.raises(LassbenchError, match="not this model's tokenizer"):
        load_published("lassnet-release", files["lassnet-release"], text_encoder=str(big))


@pytest.mark.parametrize("name, needle", [("audiosep", "no tokenizer.json, no vocab.json"),
                                          ("lassnet-release", "no tokenizer.json, no vocab.txt")])
def test_an_empty_or_unrelated_tokenizer_folder_is_refused_before_the_checkpoint_is_read(tmp_path, files, monkeypatch, name,
                                                                            needle):
    import lassbench.models.published.loading as loading

    def never(*args, **kwargs):
        raise AssertionError("the checkpoint was read")

    monkeypatch.setattr(loading.torch, "load", never)
    (tmp_path / "empty").mkdir()
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "config.json").write_text('{"model_type": "bert"}')  # a model, but no tokenizer
    for folder in ("empty", "unrelated"):
        with pytest.raises(LassbenchError, match=needle) as err:
            load_published(name, files[name], text_encoder=str(tmp_path / folder))
        assert "\n" not in str(err.value)


_EXECUTED = []


def _side_effect():
    _EXECUTED.append(True)
    return {"lr": 1e-3}


class _Hyper:
    """Pickles as a call of _side_effect: torch's weights-only loader refuses it; lassbench must not run it."""

    def __reduce__(self):
        return (_side_effect, ())


def test_pickled_hyper_parameters_are_read_as_inert_placeholders_never_executed(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {"a": torch.arange(5.0), "half": base.half(), "view": base[1:, 1:3], "steps": torch.tensor(7)}
    torch.save({"state_dict": state, "hyper_parameters": _Hyper()}, tmp_path / "h.ckpt")
    with pytest.raises(Exception, match="(?i)weights only"):
        torch.load(tmp_path / "h.ckpt", weights_only=True)
    payload = read_checkpoint_file(tmp_path / "h.ckpt")
    for key, value in state.items():
        assert torch.equal(payload["state_dict"][key], value) and payload["state_dict"][key].dtype == value.dtype
    assert not _EXECUTED


def test_published_systems_are_listed_and_never_run_without_a_checkpoint(tmp_path):
    assert {"lassnet-release", "audiosep", "dcase2024-baseline", "audiosep-dp"} <= MODELS.keys()
    result = subprocess.run([sys.executable, "-m", "lassbench", "models"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in ("lassnet-release", "audiosep", "dcase2024-baseline", "audiosep-dp"):
        line = next(row for row in result.stdout.splitlines() if row.startswith(name + " "))
        assert "published" in line
    assert "published" not in next(r for r in result.stdout.splitlines() if r.startswith("lassnet "))
    result = subprocess.run([sys.executable, "-m", "lassbench", "run", "audiosep", "--data", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "huggingface.co/spaces/Audio-AGI/AudioSep" in result.stderr


def test_registry_load_model_routes_published_names(files):
    model, report = load_model(files["dcase2024-baseline"], expected="dcase2024-baseline",
                               text_encoder=str(files["roberta"]))
    assert model.sample_rate == 16000 and report["model"] == "dcase2024-baseline"


@pytest.mark.slow
def test_cli_runs_a_published_checkpoint_on_a_benchmark_and_separates_a_file(tmp_path, files):
    from tiny_benchmark import build_tiny_benchmark

    bench = build_tiny_benchmark(tmp_path, items=2)
    cmd = [sys.executable, "-m", "lassbench", "run", "dcase2024-baseline", "--checkpoint",
           str(files["dcase2024-baseline"]), "--data", str(bench), "--text-encoder", str(files["roberta"]),
           "--out", str(tmp_path / "results"), "--limit", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import json

    info = json.loads((tmp_path / "results" / bench.name / "dcase2024-baseline" / "run.json").read_text())
    assert info["checkpoint_bytes"] == Path(files["dcase2024-baseline"]).stat().st_size
    assert len(info["checkpoint_sha256"]) == 64 and info["text_encoder"] == str(files["roberta"])
    import soundfile as sf

    sf.write(tmp_path / "mix.wav", (0.2 * np.sin(np.arange(24000) / 7)).astype("float32"), 16000)
    cmd = [sys.executable, "-m", "lassbench", "separate", "--model", "lassnet-release", "--checkpoint",
           str(files["lassnet-release"]), "--text-encoder", str(files["bert"]), "--input", str(tmp_path / "mix.wav"),
           "--query", "a dog barks", "--output", str(tmp_path / "dog.wav")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    estimate, rate = sf.read(tmp_path / "dog.wav")
    assert rate == 16000 and len(estimate) == 24000 and np.abs(estimate).max() > 0
