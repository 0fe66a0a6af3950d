"""Strict, explained loading of published checkpoints.

Every tensor of the file is either loaded into the model or dropped by a named rule with its reason (:data:`DROPPED`);
anything else — a missing key, an unexpected key, a mis-shaped tensor — is one error line naming it. Files are read
with ``torch.load(..., weights_only=True)`` only; a Lightning checkpoint whose extra entries (hyper-parameters,
callbacks) hold objects that the weights-only unpickler refuses is read by :func:`read_tensors_only`, which rebuilds
tensors and plain containers and turns every other object into an inert placeholder — nothing from the file is ever
executed. Recognisable mistakes (the CLAP file given as the separator, the wrong sample-rate variant, a Lightning
checkpoint where LASS-Net's dict is expected, a truncated download) get their own message.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.published.resunet30 import dprnn_shape
from lassbench.models.published.systems import (
    PUBLISHED,
    VARIANTS,
    AudioSepSystem,
    PublishedSeparator,
    PublishedSpec,
)


@dataclass(frozen=True)
class DropRule:
    pattern: str  # regular expression matched against the whole key
    reason: str


DROPPED: dict[str, list[DropRule]] = {
    "lassnet-release": [
        DropRule(r"module\.text_embedder\.bert_layer\.embeddings\.(position_ids|token_type_ids)",
                 "index buffer saved by older transformers; recomputed"),
    ],
    "resunet30": [
        DropRule(r"ss_model\.base\.(stft|istft)\..*",
                 "torchlibrosa's frozen STFT/ISTFT kernels (fixed DFT and Hann window; torch.stft computes the same)"),
        DropRule(r"query_encoder\.model\.(audio_branch|audio_projection|audio_transform)\..*",
                 "CLAP's audio branch: unused for text queries"),
        DropRule(r"query_encoder\.model\.(text_transform\..*|logit_scale_a|logit_scale_t)",
                 "CLAP's contrastive-training heads: not part of get_text_embedding"),
        DropRule(r"query_encoder\.model\.text_branch\.embeddings\.(position_ids|token_type_ids)",
                 "index buffer saved by older transformers; recomputed"),
    ],
}

BERT_PREFIX = "module.text_embedder.bert_layer."
ROBERTA_PREFIX = "query_encoder.model.text_branch."
DPRNN_PREFIX = "ss_model.base.DPRNN.0.row_rnn."


def load_published(name: str, path: str | Path, *, text_encoder: str | None = None,
                   device: str = "cpu") -> tuple[PublishedSeparator, dict]:
    """Build published system ``name`` from ``path``; (model, report) where report names what was dropped."""
    from transformers.initialization import no_init_weights

    spec = PUBLISHED[name]
    path = Path(path)
    tokenizer = load_tokenizer(spec, text_encoder)  # before reading a checkpoint of up to 1.5 GB
    payload = read_checkpoint_file(path)
    if spec.family == "lassnet-release":
        state = _lassnet_state(payload, path)
    else:
        state = _audiosep_state(payload, path, spec, text_encoder)
        spec = _check_variant(state, spec, path)
    with no_init_weights():  # every weight comes from the file: skip initialising 50-180 M parameters first
        if spec.family == "lassnet-release":
            text = _text_model(state, BERT_PREFIX, "bert", path)
            net = _build_lassnet(text)
        else:
            text = _text_model(state, ROBERTA_PREFIX, "roberta", path)
            net = AudioSepSystem(spec, text, dprnn_shape(state, DPRNN_PREFIX))
    _check_vocabulary(spec, text_encoder, tokenizer, text.config.vocab_size)
    dropped = match_state(net, state, DROPPED[spec.family], path)
    model = PublishedSeparator(spec, net, tokenizer, str(text_encoder))
    report = {"model": name, "keys_loaded": len(state) - sum(dropped.values()), "keys_dropped": dropped}
    return model.to(device).eval(), report


def read_checkpoint_file(path: Path) -> dict:
    if not path.is_file():
        raise LassbenchError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if zipfile.is_zipfile(path) and "weights only" in str(exc).lower():
            payload = read_tensors_only(path)
        else:
            raise LassbenchError(
                f"{path}: truncated or not a PyTorch checkpoint ({path.stat().st_size:,} bytes; "
                f"torch.load: {_first_line(exc)}): download it again and compare its size"
            ) from exc
    if not isinstance(payload, dict):
        raise LassbenchError(f"{path}: not a checkpoint dict (got {type(payload).__name__})")
    return payload


def match_state(net: nn.Module, state: dict[str, torch.Tensor], rules: list[DropRule], path: Path) -> dict[str, int]:
    """Load ``state`` into ``net`` strictly; returns {reason: number of keys dropped for it}."""
    dropped: dict[str, int] = {}
    kept = {}
    for key, value in state.items():
        rule = next((r for r in rules if re.fullmatch(r.pattern, key)), None)
        if rule is None:
            kept[key] = value
        else:
            dropped[rule.reason] = dropped.get(rule.reason, 0) + 1
    expected = net.state_dict()
    missing = [k for k in expected if k not in kept]
    unexpected = [k for k in kept if k not in expected]
    if missing:
        raise LassbenchError(f"{path}: {len(missing)} weight(s) missing, e.g. {_names(missing)}")
    if unexpected:
        raise LassbenchError(f"{path}: {len(unexpected)} unexpected weight(s), e.g. {_names(unexpected)}")
    for key, value in kept.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise LassbenchError(f"{path}: weight {key} has shape {tuple(value.shape)}, the architecture needs "
                                 f"{tuple(expected[key].shape)}")
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in kept.items()}, strict=True)
    return dropped


def _lassnet_state(payload: dict, path: Path) -> dict[str, torch.Tensor]:
    if "state_dict" in payload or "pytorch-lightning_version" in payload:
        raise LassbenchError(f"{path}: a Lightning checkpoint (AudioSep family), not LASS-Net's {{'model': "
                             f"state_dict}}: run it as audiosep, dcase2024-baseline or audiosep-dp")
    _refuse_lassbench(payload, path)
    state = payload["model"] if isinstance(payload.get("model"), dict) else payload
    if not any(".UNet." in f".{k}" for k in state):
        raise LassbenchError(f"{path}: no LASS-Net separator weights (module.UNet.*) in this file")
    # saved without nn.DataParallel: same tensors, without the prefix
    return {k if k.startswith("module.") else f"module.{k}": v for k, v in _tensors(state).items()}


def _audiosep_state(payload: dict, path: Path, spec: PublishedSpec, folder: str | None) -> dict[str, torch.Tensor]:
    if "model" in payload and isinstance(payload["model"], dict) and any("UNet." in k for k in payload["model"]):
        raise LassbenchError(f"{path}: this is the LASS-Net release checkpoint: run it as lassnet-release")
    _refuse_lassbench(payload, path)
    state = _tensors(payload["state_dict"] if isinstance(payload.get("state_dict"), dict) else payload)
    if not any(k.startswith("ss_model.") for k in state):
        if any("audio_branch." in k for k in state) and any("text_branch." in k for k in state):
            raise LassbenchError(
                f"{path}: this is a CLAP encoder checkpoint (e.g. music_speech_audioset_epoch_15_esc_89.98.pt), not "
                f"an AudioSep separator: pass the separator's Lightning checkpoint (e.g. audiosep_base_4M_steps.ckpt)"
            )
        raise LassbenchError(f"{path}: no separator weights (ss_model.*) in this file")
    if not any(k.startswith(ROBERTA_PREFIX) for k in state):
        state.update(_clap_from_folder(folder, path))
    return state


def _clap_from_folder(folder: str | None, path: Path) -> dict[str, torch.Tensor]:
    """A separator saved without its CLAP half: AudioSep's pipeline builds CLAP from its own file
    (music_speech_audioset_epoch_15_esc_89.98.pt) before loading the separator, so take CLAP from that file when it
    sits in the --text-encoder folder."""
    files = sorted(Path(folder).glob("*.pt")) if folder else []
    if len(files) != 1:
        raise LassbenchError(
            f"{path}: no CLAP text branch (query_encoder.model.text_branch.*) in this file; put the CLAP checkpoint "
            f"(music_speech_audioset_epoch_15_esc_89.98.pt) alone beside the tokenizer in the --text-encoder folder"
        )
    payload = read_checkpoint_file(files[0])
    clap = _tensors(payload["state_dict"] if isinstance(payload.get("state_dict"), dict) else payload)
    state = {"query_encoder.model." + k.removeprefix("module."): v for k, v in clap.items()}
    if not any(k.startswith(ROBERTA_PREFIX) for k in state):
        raise LassbenchError(f"{files[0]}: not a CLAP checkpoint (no text_branch.* weights)")
    return state


def _check_variant(state: dict[str, torch.Tensor], spec: PublishedSpec, path: Path) -> PublishedSpec:
    """The variant of ``spec`` these weights are (AudioSep-DP: 16 or 32 kHz, told by the STFT size), or one error
    line naming the system they belong to."""
    bins = int(state["ss_model.base.bn0.weight"].shape[0]) if "ss_model.base.bn0.weight" in state else None
    spec = next((v for v in VARIANTS.get(spec.name, ()) if v.n_fft // 2 + 1 == bins), spec)
    has_dprnn = dprnn_shape(state, DPRNN_PREFIX) is not None
    if bins is not None and bins != spec.n_fft // 2 + 1:
        n_fft = 2 * (bins - 1)
        variants = [v for s in PUBLISHED.values() for v in VARIANTS.get(s.name, (s,))]
        fits = sorted({v.name for v in variants if v.family == "resunet30" and v.n_fft == n_fft
                       and v.dprnn == has_dprnn})
        raise LassbenchError(
            f"{path}: these weights use a {n_fft}-point STFT ({bins} bins), {spec.name} needs {spec.n_fft} "
            f"({spec.sample_rate // 1000} kHz): wrong sample-rate variant" + (f"; run them as {' or '.join(fits)}"
                                                                            if fits else "")
        )
    if spec.dprnn and not has_dprnn:
        raise LassbenchError(f"{path}: no DPRNN weights (ss_model.base.DPRNN.*): not AudioSep-DP; run it as "
                             f"dcase2024-baseline or audiosep")
    if has_dprnn and not spec.dprnn:
        raise LassbenchError(f"{path}: these weights include a DPRNN (AudioSep-DP): run them as audiosep-dp")
    return spec


def _refuse_lassbench(payload: dict, path: Path) -> None:
    if isinstance(payload.get("model"), str) and "config" in payload:
        raise LassbenchError(f"{path}: a lassbench checkpoint of model '{payload['model']}': run it as that model")


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _text_model(state: dict[str, torch.Tensor], prefix: str, kind: str, path: Path) -> nn.Module:
    """bert-mini / RoBERTa built from the shapes in the checkpoint (heads = hidden / 64, as in both releases)."""
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    embedding = state.get(f"{prefix}embeddings.word_embeddings.weight")
    if embedding is None:
        raise LassbenchError(f"{path}: no text encoder weights ({prefix}*) in this file")
    layers = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"encoder\.layer\.(\d+)\.", k))}
    hidden = int(embedding.shape[1])

    def rows(key: str) -> int:
        if prefix + key not in state:
            raise LassbenchError(f"{path}: weight {prefix + key} missing (the text encoder cannot be rebuilt)")
        return int(state[prefix + key].shape[0])

    common = dict(
        vocab_size=int(embedding.shape[0]), hidden_size=hidden, num_hidden_layers=len(layers),
        num_attention_heads=max(1, hidden // 64), intermediate_size=rows("encoder.layer.0.intermediate.dense.weight"),
        max_position_embeddings=rows("embeddings.position_embeddings.weight"),
        type_vocab_size=rows("embeddings.token_type_embeddings.weight"),
    )
    if kind == "bert":
        return BertModel(BertConfig(**common, layer_norm_eps=1e-12), add_pooling_layer=False).eval()
    config = RobertaConfig(**common, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    return RobertaModel(config, add_pooling_layer=True).eval()


def _build_lassnet(bert: nn.Module) -> nn.Module:
    from lassbench.models.published.lassnet_release import ReleasedLASSNet

    return ReleasedLASSNet(bert)


def load_tokenizer(spec: PublishedSpec, folder: str | None):
    """The tokenizer in a local folder (never downloaded), loaded before any checkpoint is read so that a wrong
    folder fails in a second: whatever ``AutoTokenizer`` loads from it (e.g. a ``save_pretrained`` folder holding
    only ``tokenizer.json`` + ``tokenizer_config.json``), else the release's own tokenizer class from its plain
    vocabulary files (BERT: ``vocab.txt``; RoBERTa: ``vocab.json`` + ``merges.txt``, as the hub ships them)."""
    from transformers import AutoTokenizer, BertTokenizer, RobertaTokenizer

    hint = f"{spec.name} needs the {spec.text_encoder}: pass --text-encoder DIR"
    if not folder:
        raise LassbenchError(f"no tokenizer given: {hint}")
    if not Path(folder).is_dir():
        raise LassbenchError(f"--text-encoder {folder}: not a folder; {hint}")
    release_class, files = ((BertTokenizer, ("vocab.txt",)) if spec.family == "lassnet-release"
                            else (RobertaTokenizer, ("vocab.json", "merges.txt")))
    not_one = f"--text-encoder {folder}: not a tokenizer folder (no tokenizer.json, no {' + '.join(files)})"
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, TypeError... for an unusable folder
        # transformers 5 builds the release's class with an empty vocabulary from any folder: only where its files are
        if not all((Path(folder) / name).is_file() for name in files):
            raise LassbenchError(f"{not_one}; {hint}") from exc
        try:
            tokenizer = release_class.from_pretrained(folder, local_files_only=True)
        except Exception as again:
            raise LassbenchError(f"--text-encoder {folder}: cannot load a tokenizer ({_first_line(again)}); "
                                 f"{hint}") from again
    if len(tokenizer.get_vocab()) <= len(tokenizer.all_special_tokens):  # e.g. a model's config.json, no vocabulary
        raise LassbenchError(f"{not_one}; {hint}")
    return tokenizer


def _check_vocabulary(spec: PublishedSpec, folder: str | None, tokenizer, vocab_size: int) -> None:
    if len(tokenizer) > vocab_size:
        raise LassbenchError(f"--text-encoder {folder}: {len(tokenizer):,} tokens but the checkpoint's embedding has "
                             f"{vocab_size:,} rows: not this model's tokenizer; {spec.name} needs the "
                             f"{spec.text_encoder}")


class _Opaque:
    """Stands for any pickled object that is not a tensor or a plain container; accepts and ignores everything."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass


_SAFE = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
}


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}


class _TensorsOnly(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, root: str) -> None:
        super().__init__(file)
        self.archive, self.root = archive, root

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]  # the storage's dtype stands for its class
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        return type(f"{module}.{name}", (_Opaque,), {})

    def persistent_load(self, pid):
        _, dtype, key, _, _ = pid
        if not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"unsupported storage type {dtype!r}")
        data = self.archive.read(f"{self.root}/data/{key}")
        untyped = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8) if data else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def read_tensors_only(path: Path) -> dict:
    """A torch zip checkpoint's tensors and plain containers, without executing anything it pickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            root = pickles[0].rsplit("/", 1)[0]
            with archive.open(pickles[0]) as file:
                return _TensorsOnly(file, archive, root).load()
    except (zipfile.BadZipFile, IndexError, KeyError, pickle.UnpicklingError, EOFError) as exc:
        raise LassbenchError(f"{path}: truncated or corrupt checkpoint ({_first_line(exc)})") from exc


def _names(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].split(". ")[0][:160] if text else type(exc).__name__
