"""LASS-Net (Liu et al., Interspeech 2022, "Separate What You Describe"): a text-queried ResUNet mask estimator.

The query goes through a text encoder (frozen by default), a small projection (LASS-Net: Linear + ReLU on bert-mini's
[CLS]; here two layers so that close sentences such as "high-pitched alarm" / "low-pitched alarm", cosine 0.91 with
MiniLM, can be pulled apart), and conditions every block of the backbone through FiLM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from lassbench.models.rate import at_model_rate
from lassbench.models.resunet import BackboneConfig, ConditionedResUNet
from lassbench.models.text_encoders import TextEncoder


@dataclass
class QueryBatch:
    """What a separator may look at besides the mixture. ``targets`` only reaches oracle references."""

    queries: list[str]
    labels: list[list[str]] = field(default_factory=list)
    targets: torch.Tensor | None = None
    negatives: list[str] | None = None  # what *not* to separate ("" for none), for models that take it (CLAPSep)

    def to_device(self, device: str | torch.device) -> QueryBatch:
        targets = None if self.targets is None else self.targets.to(device)
        return QueryBatch(self.queries, self.labels, targets, self.negatives)


@dataclass
class SeparatorConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    text_encoder: str = "minilm"
    classes: list[str] = field(default_factory=list)  # class-conditioned only
    size: str = "tiny"
    # LayerNorm on the text embedding before the projection: sentence embeddings come at an encoder-specific scale
    # (MiniLM's mean-pooled vectors: std ~0.3 per dim; sentence-transformers L2-normalises them), and a unit scale
    # lets FiLM learn the query as fast as a class embedding.
    text_norm: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SeparatorConfig:
        data = dict(data)
        data["backbone"] = BackboneConfig(**data.get("backbone", {}))
        data.setdefault("text_norm", False)  # checkpoints saved before the option existed had none
        return cls(**data)


SIZES: dict[str, dict] = {
    # CPU-sized: ~0.3 M backbone parameters, trains at a useful rate on 2 cores (see docs/performance.md)
    "tiny": {"backbone": BackboneConfig(n_fft=512, hop=256, channels=[8, 16, 32, 64, 128]), "text_encoder": "minilm"},
    # the release's sizes (32 kHz, STFT 1024/512, 6 levels 32..384, bias-only FiLM) in lassbench's own architecture:
    # not weight-compatible with the released checkpoint (that is `lassnet-release`, models/published/)
    "base": {
        "backbone": BackboneConfig(
            sample_rate=32000, n_fft=1024, hop=512, channels=[32, 64, 128, 256, 384, 384], cond_dim=256,
            film="bias", blocks_per_level=2,
        ),
        "text_encoder": "bert-mini",
    },
}


def sized_config(size: str, **overrides) -> SeparatorConfig:
    base = SIZES[size]
    return SeparatorConfig(backbone=base["backbone"], text_encoder=base["text_encoder"], size=size, **overrides)


class TextQueriedSeparator(nn.Module):
    """LASS-Net: mixture + free-text query -> estimate."""

    query_type = "caption"

    def __init__(self, config: SeparatorConfig, text_dim: int) -> None:
        super().__init__()
        self.config = config
        cond = config.backbone.cond_dim
        self.backbone = ConditionedResUNet(config.backbone)
        self.text_norm = nn.LayerNorm(text_dim) if config.text_norm else nn.Identity()
        self.proj = nn.Sequential(nn.Linear(text_dim, cond), nn.ReLU(), nn.Linear(cond, cond))
        self.encoder: TextEncoder | None = None
        self.sample_rate = config.backbone.sample_rate  # the rate it was trained at
        self.input_rate = self.sample_rate  # the rate of the mixtures it is given (lassbench.models.rate)

    def attach_text_encoder(self, encoder: TextEncoder) -> None:
        """Frozen encoders stay outside the state dict (checkpoints name them); trainable ones are saved."""
        if encoder.trainable:
            self.add_module("text_encoder", encoder)
        self.__dict__["encoder"] = encoder

    def queries_of(self, batch: QueryBatch) -> list[str]:
        return batch.queries

    def condition(self, batch: QueryBatch) -> torch.Tensor:
        if self.encoder is None:
            raise RuntimeError("attach a text encoder before separating")
        device = self.proj[0].weight.device
        return self.proj(self.text_norm(self.encoder.encode(self.queries_of(batch)).to(device)))

    def forward(self, mixture: torch.Tensor, batch: QueryBatch) -> torch.Tensor:
        condition = self.condition(batch)
        return at_model_rate(lambda wav: self.backbone(wav, condition), mixture, self.input_rate, self.sample_rate)
