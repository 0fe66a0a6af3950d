"""SAM Audio's ``config.json`` as far as text-prompted inference reads it: the codec, the transformer's width, depth
and heads (so the size: small, base, large), the text and anchor settings, with the official defaults
(``SAMAudioConfig``) filling what the file leaves out. Settings that only training or other prompts read are named
and ignored; any other key is refused, so a file of another model never builds a wrong one."""

from __future__ import annotations

import dataclasses

from lassbench.errors import LassbenchError
from lassbench.models.published import sam_audio
from lassbench.models.published.dacvae import check_decoder_width
from lassbench.models.published.sam_audio_dit import DiTShape

CODEC_DEFAULTS = {"encoder_dim": 64, "encoder_rates": [2, 8, 10, 12], "latent_dim": 1024, "decoder_dim": 1536,
                  "decoder_rates": [12, 10, 8, 2], "codebook_dim": 128, "sample_rate": 48000}  # DACVAEConfig
CODEC_UNUSED = ("n_codebooks", "codebook_size", "quantizer_dropout", "mean", "std")  # never read by SAM Audio
TRANSFORMER_UNUSED = ("dropout", "context_embedder_dropout")  # inactive at inference
TEXT_DEFAULTS = {"name": "t5-base", "max_length": 512, "pad_mode": "longest", "dim": 768}  # T5EncoderConfig


def shape_of(config: dict) -> sam_audio.SAMAudioShape:
    """``SAMAudioConfig(**config)`` as far as text-prompted inference reads it, the release's defaults filling
    what the file leaves out."""
    codec = {**CODEC_DEFAULTS,
             **known_settings(config.get("audio_codec") or {}, CODEC_DEFAULTS, CODEC_UNUSED, "audio_codec")}
    problem = check_decoder_width(codec["decoder_dim"], codec["decoder_rates"])
    if problem:
        raise LassbenchError(f"config.json audio_codec: {problem}")
    fields = {f.name for f in dataclasses.fields(DiTShape)}
    transformer = known_settings(config.get("transformer") or {}, dict.fromkeys(fields), TRANSFORMER_UNUSED,
                                 "transformer")
    text = {**TEXT_DEFAULTS, **known_settings(config.get("text_encoder") or {}, TEXT_DEFAULTS, (), "text_encoder")}
    vision = config.get("vision_encoder") or {}
    return sam_audio.SAMAudioShape(
        in_channels=int(config.get("in_channels", 768)), codec=codec, text_dim=int(text["dim"]),
        text_max_length=text["max_length"], text_pad_mode=text["pad_mode"],
        vision_dim=int(vision.get("dim", 1024)), num_anchors=int(config.get("num_anchors", 3)),
        anchor_embedding_dim=int(config.get("anchor_embedding_dim", 128)), transformer=DiTShape(**transformer))


def known_settings(section: dict, known, unused: tuple[str, ...], name: str) -> dict:
    """The settings of ``section`` in ``known``; those in ``unused`` are dropped, any other key is refused."""
    unknown = [k for k in section if k not in known and k not in unused]
    if unknown:
        raise LassbenchError(f"config.json {name}: {', '.join(unknown)} not understood (not a SAM Audio setting)")
    return {k: v for k, v in section.items() if k in known}
