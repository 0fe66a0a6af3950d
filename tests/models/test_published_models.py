"""Published systems: the released checkpoints' layouts load strictly, reproduce the official code's outputs, and the
recognisable mistakes are refused with one line each.

The goldens in tests/golden/published/ were written by running the official code (liuxubo717/LASS,
Audio-AGI/AudioSep, Audio-AGI/dcase2024_task9_baseline, apple-yinhan/TQ-SED) on the seeded weights of
tests/support/published_fixtures.py; docs/models.md says how.
"""

from __future__ import annotations

import io
import pickle
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch
from lassbench.models.published import clap_text, lassnet_release
from lassbench.models.published.loading import load_published, read_checkpoint_file
from lassbench.models.published.resunet30 import ResUNet30
from lassbench.models.registry import CHECKPOINT_DIR, MODELS, load_model, read_checkpoint

from support import published_fixtures as fx

SYSTEMS = list(fx.INPUTS)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Seeded checkpoints in each release's layout + the tiny tokenizer folders (written once per module)."""
    root = tmp_path_factory.mktemp("published")
    out = {"bert": fx.write_bert_vocab(root / "bert"), "roberta": fx.write_roberta_vocab(root / "roberta")}
    for name in SYSTEMS:
        suffix = ".pt" if name == "lassnet-release" else ".ckpt"
        out[name] = fx.write_checkpoint(fx.model_name(name), root / f"{name}{suffix}",
                                        fx.seeded_state(fx.layout(name)))
    return out


def _tokenizer(name: str, files) -> str:
    return str(files["bert"] if name == "lassnet-release" else files["roberta"])


def _transformers5_folder(name: str, files, folder: Path) -> Path:
    """The tokenizer as transformers >= 5 ``save_pretrained`` writes it: tokenizer.json + tokenizer_config.json."""
    from transformers import AutoTokenizer

    from lassbench.models.published.loading import load_tokenizer
    from lassbench.models.published.systems import PUBLISHED

    load_tokenizer(PUBLISHED[name], _tokenizer(name, files)).save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return folder


@pytest.fixture(scope="module")
def loaded(files):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_published(fx.model_name(name), files[name], text_encoder=_tokenizer(name, files))
        return cache[name]

    return get


@pytest.mark.parametrize("name", SYSTEMS)
def test_the_official_output_is_reproduced_from_the_released_layout(name, loaded):
    model, report = loaded(name)
    _assert_module_golden(name, model)
    assert report["keys_loaded"] + sum(report["keys_dropped"].values()) == len(fx.layout(name))
    assert model.sample_rate == fx.INPUTS[name][1]  # AudioSep-DP: the 16 or 32 kHz variant, told by the file


@pytest.mark.parametrize("name", ["lassnet-release", "audiosep"])
def test_a_transformers5_tokenizer_folder_runs_the_published_system(name, files, tmp_path):
    folder = _transformers5_folder(name, files, tmp_path / "saved")
    model, _ = load_published(name, files[name], text_encoder=str(folder))
    _assert_module_golden(name, model)


def _assert_module_golden(name: str, model) -> None:
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
    with pytest.raises(LassbenchError, match="run them as dcase2024-baseline$"):
        load_published("audiosep", files["dcase2024-baseline"], text_encoder=str(files["roberta"]))
    with pytest.raises(LassbenchError, match="run them as audiosep-dp$"):
        load_published("dcase2024-baseline", files["audiosep-dp-32k"], text_encoder=str(files["roberta"]))


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
def test_an_empty_or_unrelated_tokenizer_folder_is_refused_before_the_checkpoint_is_read(
        tmp_path, files, monkeypatch, name, needle):
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


def _text(value: str) -> bytes:
    raw = value.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


# every global the tensors-only reader hands out, and one it does not know
HANDED_OUT = [("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
              ("collections", "OrderedDict"), ("torch", "Size"), ("torch", "FloatStorage"), ("lightning", "Callback")]


def _poison_checkpoint(path: Path) -> Path:
    """A torch zip whose pickle sets attributes (``__defaults__``, ``poison``) on each global it is handed, then
    holds an object the weights-only unpickler refuses, so the tensors-only reader is the one that reads it."""
    body = pickle.PROTO + b"\x02"
    for module, name in HANDED_OUT:
        body += f"c{module}\n{name}\n".encode()
        body += pickle.EMPTY_DICT + _text("poison") + _text("yes") + pickle.SETITEM  # BUILD: obj.__dict__.update
        body += pickle.EMPTY_DICT + _text("__defaults__") + _text("poisoned") + pickle.TUPLE1 + pickle.SETITEM
        body += pickle.TUPLE2 + pickle.BUILD + pickle.POP  # ... and setattr(obj, "__defaults__", ("poisoned",))
    body += pickle.EMPTY_DICT + _text("hyper_parameters") + b"clightning\nAttributeDict\n" + pickle.EMPTY_TUPLE
    body += pickle.REDUCE + pickle.SETITEM + pickle.STOP
    return _torch_zip(path, body)


def _torch_zip(path: Path, pickled: bytes) -> Path:
    """A torch zip checkpoint whose ``data.pkl`` is ``pickled``; its one storage holds 4 floats (0, 1, 2, 3)."""
    saved = io.BytesIO()
    torch.save({"x": torch.arange(4.0)}, saved)
    with zipfile.ZipFile(io.BytesIO(saved.getvalue())) as source, zipfile.ZipFile(path, "w") as written:
        for info in source.infolist():
            written.writestr(info, pickled if info.filename.endswith("/data.pkl") else source.read(info))
    return path


def test_a_checkpoint_that_sets_attributes_on_what_it_unpickles_cannot_break_later_loads(tmp_path):
    defaults = torch._utils._rebuild_tensor_v2.__defaults__
    payload = read_checkpoint_file(_poison_checkpoint(tmp_path / "poison.ckpt"))
    assert set(payload) == {"hyper_parameters"}
    assert torch._utils._rebuild_tensor_v2.__defaults__ == defaults
    for owner in (torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, OrderedDict, torch.Size):
        assert not hasattr(owner, "poison")
    shipped = read_checkpoint(CHECKPOINT_DIR / "lassnet-tiny.pt")  # torch's own loader, after the poisoned load
    assert shipped["model"] == "lassnet" and shipped["state_dict"]


def _checkpoint_with(path: Path, size: int) -> Path:
    """{"hyper_parameters": <lightning object>, "a": a float tensor of ``size`` elements on a 4-element storage}."""
    storage = (pickle.MARK + _text("storage") + b"ctorch\nFloatStorage\n" + _text("0") + _text("cpu")
               + pickle.BININT1 + b"\x04" + pickle.TUPLE + pickle.BINPERSID)
    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n" + pickle.MARK + storage + pickle.BININT1 + b"\x00"
              + pickle.BININT1 + bytes([size]) + pickle.TUPLE1 + pickle.BININT1 + b"\x01" + pickle.TUPLE1
              + pickle.NEWFALSE + b"ccollections\nOrderedDict\n" + pickle.EMPTY_TUPLE + pickle.REDUCE
              + pickle.TUPLE + pickle.REDUCE)
    body = (pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + _text("hyper_parameters") + b"clightning\nAttributeDict\n"
            + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.SETITEM + _text("a") + tensor + pickle.SETITEM + pickle.STOP)
    return _torch_zip(path, body)


def test_a_tensor_reaching_past_its_storage_is_a_corrupt_checkpoint(tmp_path):
    assert torch.equal(read_checkpoint_file(_checkpoint_with(tmp_path / "fits.ckpt", 3))["a"], torch.arange(3.0))
    with pytest.raises(LassbenchError, match="truncated or corrupt checkpoint"):
        read_checkpoint_file(_checkpoint_with(tmp_path / "past.ckpt", 64))


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
    from support.tiny_benchmark import build_tiny_benchmark

    bench = build_tiny_benchmark(tmp_path, items=2)
    cmd = [sys.executable, "-m", "lassbench", "run", "dcase2024-baseline", "--checkpoint",
           str(files["dcase2024-baseline"]), "--data", str(bench), "--text-encoder", str(files["roberta"]),
           "--out", str(tmp_path / "results"), "--limit", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import json

    info = json.loads((tmp_path / "results" / bench.name / "dcase2024-baseline+first1" / "run.json").read_text())
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


# ---- end to end: the release's own inference, matched by `separate`, `run` and the Python API ----

def _inference_golden(name: str) -> list[np.ndarray]:
    golden = np.load(fx.GOLDEN / f"{name}-inference.npz")
    assert golden["lengths"].tolist() == [len(a) for a in fx.inference_inputs(name)]
    return [golden[f"estimate{k}_every{fx.STRIDE}"] for k in range(len(fx.INFERENCE_SECONDS))]


def _assert_official(estimate: np.ndarray, golden: np.ndarray, length: int) -> None:
    """Within 1e-4 of the official estimate's peak, at the input's length."""
    assert estimate.shape == (length,)
    peak = float(np.abs(golden).max())
    assert peak > 1e-2  # a real signal, not silence matching silence
    assert float(np.abs(estimate[:: fx.STRIDE] - golden).max()) <= 1e-4 * peak


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lassbench", *args], capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", SYSTEMS)
def test_separate_and_the_python_api_give_the_official_inference(name, files, tmp_path):
    import soundfile as sf

    from lassbench.separate import load_separator

    model, rate = fx.model_name(name), fx.INPUTS[name][1]
    separator = load_separator(model, files[name], text_encoder=_tokenizer(name, files))
    for k, (mixture, query, golden) in enumerate(zip(fx.inference_inputs(name), fx.INFERENCE_QUERIES,
                                                     _inference_golden(name), strict=True)):
        _assert_official(separator.separate(mixture, rate, query), golden, len(mixture))
        sf.write(tmp_path / f"mix{k}.wav", mixture, rate, subtype="FLOAT")
        result = _cli("separate", "--model", model, "--checkpoint", str(files[name]), "--text-encoder",
                      _tokenizer(name, files), "--input", str(tmp_path / f"mix{k}.wav"), "--query", query,
                      "--output", str(tmp_path / f"est{k}.wav"))
        assert result.returncode == 0, result.stderr
        assert "note:" not in result.stderr  # nothing differs from the official inference
        estimate, written_rate = sf.read(tmp_path / f"est{k}.wav", dtype="float32")
        assert written_rate == rate
        _assert_official(estimate, golden, len(mixture))


@pytest.mark.slow
@pytest.mark.parametrize("name", SYSTEMS)
@pytest.mark.parametrize("batch_size", [1, 8])
def test_run_on_items_of_unequal_length_gives_the_official_inference(name, batch_size, files, tmp_path):
    """Batch size 8 puts the three items of unequal length in one batch: it passes once batches are padding-free
    (an item's estimate must never see its neighbours' length)."""
    import soundfile as sf

    mixtures = fx.inference_inputs(name)
    bench = fx.write_benchmark(tmp_path / "unequal", mixtures, fx.INPUTS[name][1], fx.INFERENCE_QUERIES)
    model = fx.model_name(name)
    result = _cli("run", model, "--checkpoint", str(files[name]), "--text-encoder", _tokenizer(name, files),
                  "--data", str(bench), "--batch-size", str(batch_size), "--save-audio", "--out",
                  str(tmp_path / "results"))
    assert result.returncode == 0, result.stderr
    estimates = tmp_path / "results" / "unequal" / model / "estimates"
    for k, (mixture, golden) in enumerate(zip(mixtures, _inference_golden(name), strict=True)):
        estimate, _ = sf.read(estimates / f"test-{k:06d}.wav", dtype="float32")
        _assert_official(estimate, golden, len(mixture))


class _Recorder(torch.nn.Module):
    """Stands in for a published separator: halves its input and records each call's length and mode."""

    def __init__(self, name: str) -> None:
        import types

        from lassbench.models.published.systems import PUBLISHED

        super().__init__()
        self.spec = PUBLISHED[name]
        self.sample_rate, self.n_fft = self.spec.sample_rate, self.spec.n_fft
        self.net = types.SimpleNamespace(chunked=False)
        self.calls: list[tuple[int, bool]] = []

    def forward(self, mixture, batch):
        self.calls.append((mixture.shape[-1], self.net.chunked))
        return mixture * 0.5


def _separate_with(name: str, seconds: float, **kwargs) -> tuple[_Recorder, np.ndarray, np.ndarray, list[str]]:
    from lassbench.separate import Separator

    recorder = _Recorder(name)
    rate = recorder.sample_rate
    audio = (0.001 * np.sin(np.arange(int(seconds * rate)) / 9.0)).astype(np.float32)  # far below -20 dBFS
    notes: list[str] = []
    estimate = Separator(recorder, name, "caption").separate(audio, rate, "a dog barks", log=notes.append, **kwargs)
    return recorder, audio, estimate, notes


def test_a_published_system_separates_a_file_whole_at_its_own_level():
    recorder, audio, estimate, notes = _separate_with("dcase2024-baseline", 25.0)
    assert recorder.calls == [(len(audio), False)] and not notes
    assert np.array_equal(estimate, audio * np.float32(0.5))  # no gain on the way in or out


def test_past_thirty_seconds_the_audiosep_family_uses_its_own_chunk_inference_and_says_so():
    recorder, audio, estimate, notes = _separate_with("dcase2024-baseline", 31.0)
    assert recorder.calls == [(len(audio), True)] and recorder.net.chunked is False
    assert len(notes) == 1 and "chunk_inference" in notes[0]


def test_past_thirty_seconds_lassnet_release_uses_lassbench_chunks_and_says_so():
    recorder, audio, estimate, notes = _separate_with("lassnet-release", 31.0)
    assert len(recorder.calls) == 3 and all(length <= 19 * 32000 for length, _ in recorder.calls)
    assert len(notes) == 1 and "lassbench's 10 s chunks" in notes[0] and "docs/models.md" in notes[0]
    assert np.allclose(estimate, audio * 0.5, atol=1e-7)  # still no level change


def test_an_explicit_chunk_runs_a_published_system_in_lassbench_chunks_with_a_note():
    recorder, audio, estimate, notes = _separate_with("audiosep", 12.0, chunk_seconds=4.0, overlap_seconds=0.5)
    assert len(recorder.calls) > 1 and not any(chunked for _, chunked in recorder.calls)
    assert len(notes) == 1 and notes[0].startswith("note: --chunk given")
