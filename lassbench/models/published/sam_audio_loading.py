"""SAM Audio's released files, loaded strictly: the checkpoint folder as ``SAMAudio.from_pretrained`` reads it
(``config.json`` + ``checkpoint.pt``, a flat state dict read with ``weights_only=True``; a ``model.safetensors``
holding the same tensors is read too), and T5's encoder with its tokenizer from the --text-encoder folder (the
release loads T5 from the hub, never from its checkpoint). The architecture — codec, transformer width, depth and
heads, so the size (small, base, large) — comes from the config.json beside the weights. Every tensor of the
checkpoint is loaded or dropped by a named rule (:mod:`lassbench.models.published.loading`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lassbench.audio import sha256_file
from lassbench.errors import LassbenchError
from lassbench.models.published import sam_audio
from lassbench.models.published.checkpoint_files import (
    DropRule,
    check_vocabulary,
    first_line,
    match_state,
    read_state_file,
    read_t5_config,
    settings_of,
)
from lassbench.models.published.sam_audio_config import shape_of
from lassbench.models.published.systems import PublishedSeparator, PublishedSpec

if TYPE_CHECKING:  # transformers loads on use: importing it costs seconds
    from transformers import T5Config, T5EncoderModel

CHECKPOINT_FILES = ("checkpoint.pt", "model.safetensors")  # BaseModel._from_pretrained reads checkpoint.pt
DROPPED = [
    DropRule(r"vision_encoder\..*",
             "the Perception Encoder of visual prompting: without a video its features are zeros and it never runs"),
    DropRule(r"span_predictor(_transform)?\..*", "the span predictor (PE-A-Frame): predict_spans is off"),
    DropRule(r"(visual_ranker|text_ranker)\..*", "the re-ranking models: reranking_candidates is 1"),
]



def load_sam_audio(spec: PublishedSpec, path: Path, folder: str | None, tokenizer,
                   device: str) -> tuple[PublishedSeparator, dict]:
    """``path``: the checkpoint folder, or its checkpoint file with config.json beside it."""
    from transformers.initialization import no_init_weights

    weights, config_file = _files(path)
    with settings_of(config_file):
        shape = shape_of(_read_config(config_file))
        with torch.device("meta"):  # a value no module accepts fails here, before a checkpoint of GBs is read
            sam_audio.SAMAudioSystem(shape, None)
    t5_config = _t5_config(folder, shape.text_dim)  # before reading a checkpoint of up to 12 GB
    check_vocabulary(spec, folder, tokenizer, t5_config.vocab_size)
    state = _state(weights)
    with no_init_weights():
        net = sam_audio.SAMAudioSystem(shape, None)
    dropped = match_state(net, state, DROPPED, weights)
    net.text = _t5_encoder(folder)
    hop = net.audio_codec.hop_length  # the rate and frame the config.json's codec sets
    spec = dataclasses.replace(spec, sample_rate=int(shape.codec["sample_rate"]), n_fft=hop, hop=hop)
    report = {"model": spec.name, "weights": str(weights), "keys_loaded": len(state) - sum(dropped.values()),
              "keys_dropped": dropped, "transformer": dataclasses.asdict(shape.transformer), "codec": shape.codec}
    separator = PublishedSeparator(spec, net, tokenizer, str(folder))
    separator.config_sha256 = sha256_file(config_file)
    return separator.to(device).eval(), report


def _files(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        found = [path / name for name in CHECKPOINT_FILES if (path / name).is_file()]
        if not found:
            raise LassbenchError(f"{path}: no SAM Audio weights here ({' or '.join(CHECKPOINT_FILES)})")
        path = found[0]
    config = path.parent / "config.json"
    if not config.is_file():
        raise LassbenchError(f"{path}: SAM Audio's config.json must sit beside the checkpoint (the release's "
                             f"folder, e.g. facebook/sam-audio-large); {config} not found")
    return path, config


def _read_config(file: Path) -> dict:
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LassbenchError(f"{file}: not a readable JSON file ({first_line(exc)})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("transformer", {}), dict):
        raise LassbenchError(f"{file}: not a SAM Audio config.json (no transformer settings)")
    return config


def _state(path: Path) -> dict[str, torch.Tensor]:
    state = read_state_file(path)
    if not any(k.startswith("transformer.") for k in state):
        raise LassbenchError(f"{path}: no SAM Audio weights (transformer.*, audio_codec.*) in this file")
    return state


T5_HINT = "SAM Audio needs its T5 folder (t5-base: config.json + weights + tokenizer) as --text-encoder"


def _t5_config(folder: str | None, dim: int) -> T5Config:
    """The folder's T5 configuration, of the width the checkpoint's ``memory_proj`` reads, with weights beside it."""
    config = read_t5_config(folder, T5_HINT)
    where = Path(folder)
    if config.d_model != dim:
        raise LassbenchError(f"--text-encoder {folder}: a {config.model_type} model of width {config.d_model}; the "
                             f"checkpoint's text projection reads T5 features of width {dim}; {T5_HINT}")
    if not any((where / name).is_file() for name in ("model.safetensors", "pytorch_model.bin",
                                                      "model.safetensors.index.json")):
        raise LassbenchError(f"--text-encoder {folder}: no T5 weights (model.safetensors or pytorch_model.bin); "
                             f"{T5_HINT}")
    return config


def _t5_encoder(folder: str) -> T5EncoderModel:
    """T5's encoder, strictly: every encoder weight in the folder (a full T5's decoder weights are not read)."""
    from transformers import T5EncoderModel

    try:
        model, info = T5EncoderModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    except Exception as exc:
        raise LassbenchError(f"--text-encoder {folder}: cannot load T5's encoder ({first_line(exc)}); "
                             f"{T5_HINT}") from exc
    missing = [k for k in info.get("missing_keys", ()) if "embed_tokens" not in k]  # tied to `shared`
    if missing:
        raise LassbenchError(f"--text-encoder {folder}: {len(missing)} T5 encoder weight(s) missing, e.g. "
                             f"{missing[0]}; {T5_HINT}")
    return model.float().eval()
