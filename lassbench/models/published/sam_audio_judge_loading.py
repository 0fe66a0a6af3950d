"""The SAM Audio judge's released folder, loaded strictly and never downloaded: ``config.json`` +
``checkpoint.pt`` (a flat state dict, as ``SAMAudioJudgeModel.from_pretrained`` reads it; ``weights_only=True``) or a
``model.safetensors`` holding the same tensors, and the tokenizer files ``SAMAudioJudgeProcessor.from_pretrained``
reads with ``AutoTokenizer`` from the same folder. The ModernBERT text model is built from the config's
``text_model`` by transformers (``AutoModel.from_config``, as the official code does); its weights are in the
checkpoint. Every tensor of the checkpoint is loaded (:func:`~lassbench.models.published.checkpoint_files.match_state`:
a missing, unexpected or mis-shaped tensor is one error line)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.published.checkpoint_files import (
    first_line,
    match_state,
    read_state_file,
    settings_of,
)
from lassbench.models.published.peav_transformer import PeavShape
from lassbench.models.published.sam_audio_config import CODEC_DEFAULTS, CODEC_UNUSED, known_settings
from lassbench.models.published.sam_audio_judge import JudgeShape, SAMAudioJudge

if TYPE_CHECKING:  # transformers loads on use: importing it costs seconds
    from transformers import ModernBertConfig, PreTrainedTokenizerBase

CHECKPOINT_FILES = ("checkpoint.pt", "model.safetensors")
HINT = ("pass the SAM Audio judge's folder (config.json, checkpoint.pt and the tokenizer files, as "
        "facebook/sam-audio-judge ships them); nothing is downloaded")
SECTIONS = ("audio_codec", "transformer", "text_model", "finetune_transformer", "nth_text_layer", "bottleneck_dim")
CODEC_READ = ("encoder_dim", "encoder_rates", "latent_dim", "codebook_dim", "sample_rate")  # DACVAEEncoder's
CODEC_IGNORED = (*CODEC_UNUSED, "decoder_dim", "decoder_rates")  # the judge keeps no decoder


@dataclasses.dataclass
class LoadedJudge:
    net: SAMAudioJudge
    tokenizer: object  # the folder's transformers tokenizer
    weights: Path
    report: dict


def load_sam_audio_judge(folder: str | Path) -> LoadedJudge:
    """The judge in ``folder``; the cheap checks (files, config, tokenizer) come before the checkpoint is read."""
    from transformers.initialization import no_init_weights

    folder = Path(folder).expanduser()
    weights = _weights_file(folder)
    config = _read_config(folder / "config.json")
    with settings_of(folder / "config.json"):
        shape, text_config, ignored = judge_shape(config)
        with torch.device("meta"):  # a value no module accepts fails here, before the checkpoint is read
            SAMAudioJudge(shape, _text_model(text_config))
    tokenizer = _tokenizer(folder, text_config.vocab_size)
    state = _state(weights)
    with no_init_weights():
        net = SAMAudioJudge(shape, _text_model(text_config))
    match_state(net, state, [], weights)
    report = {"weights": str(weights), "keys_loaded": len(state), "codec": shape.codec,
              "transformer": dataclasses.asdict(shape.transformer),
              "finetune_transformer": dataclasses.asdict(shape.finetune_transformer),
              "text_model": {"model_type": text_config.model_type, "hidden_size": text_config.hidden_size,
                             "num_hidden_layers": text_config.num_hidden_layers},
              "nth_text_layer": shape.nth_text_layer, "settings_ignored": ignored}
    return LoadedJudge(net.eval(), tokenizer, weights, report)


def _weights_file(folder: Path) -> Path:
    if not folder.is_dir():
        raise LassbenchError(f"{folder}: not a folder; {HINT}")
    if not (folder / "config.json").is_file():
        raise LassbenchError(f"{folder}: no config.json, so not a SAM Audio judge folder; {HINT}")
    found = [folder / name for name in CHECKPOINT_FILES if (folder / name).is_file()]
    if not found:
        raise LassbenchError(f"{folder}: no judge weights ({' or '.join(CHECKPOINT_FILES)}); {HINT}")
    return found[0]


def _read_config(file: Path) -> dict:
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LassbenchError(f"{file}: not a readable JSON file ({first_line(exc)})") from exc
    if not isinstance(config, dict) or not all(isinstance(config.get(k) or {}, dict) for k in SECTIONS[:4]):
        raise LassbenchError(f"{file}: not a SAM Audio judge config.json (its sections are not objects)")
    unknown = [k for k in config if k not in SECTIONS]
    if unknown:  # SAMAudioJudgeConfig(**config) refuses them too
        raise LassbenchError(f"{file}: {', '.join(unknown)} not understood (not a SAM Audio judge setting); {HINT}")
    return config


def judge_shape(config: dict) -> tuple[JudgeShape, ModernBertConfig, dict[str, list[str]]]:
    """``SAMAudioJudgeConfig(**config)`` as far as inference reads it: (shape, ModernBertConfig, the settings that
    were named but are never read)."""
    from transformers import ModernBertConfig

    codec = {k: v for k, v in CODEC_DEFAULTS.items() if k in CODEC_READ}
    codec.update(known_settings(config.get("audio_codec") or {}, CODEC_READ, CODEC_IGNORED, "audio_codec"))
    ignored: dict[str, list[str]] = {}
    transformers = {}
    for name in ("transformer", "finetune_transformer"):
        transformers[name], ignored[name] = _peav_shape(config.get(name) or {}, name)
    try:
        text = ModernBertConfig(**(config.get("text_model") or {}))
    except (TypeError, ValueError) as exc:
        raise LassbenchError(f"config.json text_model: not a ModernBERT configuration ({first_line(exc)})") from exc
    nth = config.get("nth_text_layer", 22)
    if nth is not None and not 0 <= int(nth) <= text.num_hidden_layers:
        raise LassbenchError(f"config.json nth_text_layer {nth}: the text model has {text.num_hidden_layers} layers")
    shape = JudgeShape(codec=codec, transformer=transformers["transformer"],
                       finetune_transformer=transformers["finetune_transformer"], text_hidden_size=text.hidden_size,
                       nth_text_layer=None if nth is None else int(nth),
                       bottleneck_dim=int(config.get("bottleneck_dim", 256)))
    return shape, text, {k: v for k, v in ignored.items() if v}


def _peav_shape(section: dict, name: str) -> tuple[PeavShape, list[str]]:
    """``TransformerConfig(**section)`` as the PE-AV transformer reads it, and the keys it never reads (it takes any
    keyword: ``hidden_act``, ``rope_theta``, ``rope_scaling``, ``attention_dropout`` and unknown ones alike)."""
    fields = {f.name for f in dataclasses.fields(PeavShape)}
    heads = int(section.get("num_attention_heads", PeavShape.num_attention_heads))
    if section.get("num_key_value_heads") not in (None, heads):
        raise LassbenchError(f"config.json {name}: num_key_value_heads {section['num_key_value_heads']} differs "
                             f"from num_attention_heads {heads}; the PE-AV transformer has as many of each")
    shape = PeavShape(**{k: v for k, v in section.items() if k in fields})
    if shape.hidden_size % shape.num_attention_heads:
        raise LassbenchError(f"config.json {name}: hidden_size {shape.hidden_size} does not split into "
                             f"{shape.num_attention_heads} heads")
    return shape, sorted(k for k in section if k not in fields)


def _tokenizer(folder: Path, vocab_size: int) -> PreTrainedTokenizerBase:
    """``AutoTokenizer`` on the folder (never the hub), checked against the text model's vocabulary."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, TypeError... for a folder without one
        raise LassbenchError(f"{folder}: no usable tokenizer files ({first_line(exc)}); {HINT}") from exc
    size = len(tokenizer)
    if size <= len(tokenizer.all_special_tokens) or size > vocab_size:
        raise LassbenchError(f"{folder}: the tokenizer has {size:,} tokens but the text model's embedding has "
                             f"{vocab_size:,} rows: not the judge's tokenizer; {HINT}")
    return tokenizer


def _state(path: Path) -> dict[str, torch.Tensor]:
    state = read_state_file(path)
    if not any(k.startswith("finetune_transformer.") for k in state):
        raise LassbenchError(f"{path}: no SAM Audio judge weights (finetune_transformer.*, audio_codec.*) in this "
                             "file; the judge's checkpoint.pt is in the sam_audio revision of "
                             "facebook/sam-audio-judge")
    return state


def _text_model(config: ModernBertConfig) -> nn.Module:
    from transformers import AutoModel

    return AutoModel.from_config(config)
