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

import torch

from lassbench.errors import LassbenchError
from lassbench.models.published import sam_audio
from lassbench.models.published.checkpoint_files import (
    DropRule,
    check_vocabulary,
    first_line,
    match_state,
    read_checkpoint_file,
    refuse_lassbench,
    tensors_of,
)
from lassbench.models.published.dacvae import check_decoder_width
from lassbench.models.published.sam_audio_dit import DiTShape
from lassbench.models.published.systems import PublishedSeparator, PublishedSpec

CHECKPOINT_FILES = ("checkpoint.pt", "model.safetensors")  # BaseModel._from_pretrained reads checkpoint.pt
DROPPED = [
    DropRule(r"vision_encoder\..*",
             "the Perception Encoder of visual prompting: without a video its features are zeros and it never runs"),
    DropRule(r"span_predictor(_transform)?\..*", "the span predictor (PE-A-Frame): predict_spans is off"),
    DropRule(r"(visual_ranker|text_ranker)\..*", "the re-ranking models: reranking_candidates is 1"),
]
CODEC_DEFAULTS = {"encoder_dim": 64, "encoder_rates": [2, 8, 10, 12], "latent_dim": 1024, "decoder_dim": 1536,
                  "decoder_rates": [12, 10, 8, 2], "codebook_dim": 128, "sample_rate": 48000}  # DACVAEConfig
CODEC_UNUSED = ("n_codebooks", "codebook_size", "quantizer_dropout", "mean", "std")  # never read by SAM Audio
TRANSFORMER_UNUSED = ("dropout", "context_embedder_dropout")  # inactive at inference
TEXT_DEFAULTS = {"name": "t5-base", "max_length": 512, "pad_mode": "longest", "dim": 768}  # T5EncoderConfig


def load_sam_audio(spec: PublishedSpec, path: Path, folder: str | None, tokenizer,
                   device: str) -> tuple[PublishedSeparator, dict]:
    """``path``: the checkpoint folder, or its checkpoint file with config.json beside it."""
    from transformers.initialization import no_init_weights

    weights, config_file = _files(path)
    shape = shape_of(_read_config(config_file))
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
    return PublishedSeparator(spec, net, tokenizer, str(folder)).to(device).eval(), report


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


def shape_of(config: dict) -> sam_audio.SAMAudioShape:
    """``SAMAudioConfig(**config)`` as far as text-prompted inference reads it, the release's defaults filling
    what the file leaves out."""
    codec = {**CODEC_DEFAULTS, **_known(config.get("audio_codec") or {}, CODEC_DEFAULTS, CODEC_UNUSED, "audio_codec")}
    problem = check_decoder_width(codec["decoder_dim"], codec["decoder_rates"])
    if problem:
        raise LassbenchError(f"config.json audio_codec: {problem}")
    fields = {f.name for f in dataclasses.fields(DiTShape)}
    transformer = _known(config.get("transformer") or {}, dict.fromkeys(fields), TRANSFORMER_UNUSED, "transformer")
    text = {**TEXT_DEFAULTS, **_known(config.get("text_encoder") or {}, TEXT_DEFAULTS, (), "text_encoder")}
    vision = config.get("vision_encoder") or {}
    return sam_audio.SAMAudioShape(
        in_channels=int(config.get("in_channels", 768)), codec=codec, text_dim=int(text["dim"]),
        text_max_length=text["max_length"], text_pad_mode=text["pad_mode"],
        vision_dim=int(vision.get("dim", 1024)), num_anchors=int(config.get("num_anchors", 3)),
        anchor_embedding_dim=int(config.get("anchor_embedding_dim", 128)), transformer=DiTShape(**transformer))


def _known(section: dict, known, unused: tuple[str, ...], name: str) -> dict:
    unknown = [k for k in section if k not in known and k not in unused]
    if unknown:
        raise LassbenchError(f"config.json {name}: {', '.join(unknown)} not understood (not a SAM Audio setting)")
    return {k: v for k, v in section.items() if k in known}


def _state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for a truncated header or body
            raise LassbenchError(f"{path}: truncated or not a safetensors file ({path.stat().st_size:,} bytes; "
                                 f"{first_line(exc)}): download it again and compare its size") from exc
    else:
        payload = read_checkpoint_file(path)
        refuse_lassbench(payload, path)
        state = tensors_of(payload)
    if not any(k.startswith("transformer.") for k in state):
        raise LassbenchError(f"{path}: no SAM Audio weights (transformer.*, audio_codec.*) in this file")
    return state


T5_HINT = "SAM Audio needs its T5 folder (t5-base: config.json + weights + tokenizer) as --text-encoder"


def _t5_config(folder: str | None, dim: int):
    """The folder's T5 configuration, of the width the checkpoint's ``memory_proj`` reads, with weights beside it."""
    from transformers import T5Config

    where = Path(folder) if folder else None
    if where is None or not (where / "config.json").is_file():
        raise LassbenchError(f"--text-encoder {folder}: no T5 config.json; {T5_HINT}")
    try:
        config = T5Config.from_pretrained(where, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError... for a config it cannot read
        raise LassbenchError(f"--text-encoder {folder}: config.json is not a T5 configuration; {T5_HINT}") from exc
    if config.model_type != "t5" or config.d_model != dim:
        raise LassbenchError(f"--text-encoder {folder}: a {config.model_type} model of width {config.d_model}; the "
                             f"checkpoint's text projection reads T5 features of width {dim}; {T5_HINT}")
    if not any((where / name).is_file() for name in ("model.safetensors", "pytorch_model.bin",
                                                      "model.safetensors.index.json")):
        raise LassbenchError(f"--text-encoder {folder}: no T5 weights (model.safetensors or pytorch_model.bin); "
                             f"{T5_HINT}")
    return config


def _t5_encoder(folder: str):
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
