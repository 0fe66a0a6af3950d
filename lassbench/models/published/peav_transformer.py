"""The PE-AV transformer: perception_models' ``core.audio_visual_encoder.transformer.Transformer`` (the audio-visual
Perception Encoder's sequence model, which the SAM Audio judge runs twice), module for module, with padding masks.

Official code: facebookresearch/perception_models ``core/audio_visual_encoder/{transformer,patcher,config}.py`` and
``core/transformer.py`` (``RotaryEmbedding``, ``apply_rotary_emb``, ``RMSNorm``). A sequence [B, T, hidden] goes
through:

1. ``embeddings``: a learned CLS vector prepended, then a residual block of two (GroupNorm of one group, SiLU,
   kernel-3 convolution) over time;
2. ``num_hidden_layers`` pre-norm layers: RMSNorm, attention (q/k RMS-normalised per head, rotary positions over
   the CLS + T positions with base ``max(10000, 2 * max_position_embeddings)``: the official code ignores
   ``rope_theta``), RMSNorm, a SwiGLU MLP (SiLU whatever ``hidden_act`` says);
3. a final RMSNorm and a linear ``output``; the CLS position is dropped from the returned sequence.

Padding: given a mask [B, T] (True for real frames), the group norm takes its statistics over the real frames and
zeroes the padded ones, so the convolutions see zeros past the end as they see their own zero padding when the
sequence is alone, and attention never attends to a padded frame. A real frame's output then equals the one it has
in a batch of its own sequence alone (:mod:`lassbench.models.published.sam_audio_judge` says why this matters).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.published.rms_norm import RMSNorm


@dataclass(frozen=True)
class PeavShape:
    """``core.audio_visual_encoder.config.TransformerConfig`` as far as inference reads it (its defaults)."""

    hidden_size: int = 1024
    intermediate_size: int = 2752
    num_hidden_layers: int = 16
    num_attention_heads: int = 8
    max_position_embeddings: int = 10_000
    rms_norm_eps: float = 1e-5
    attention_bias: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def rope_theta(self) -> float:
        return max(10_000, 2 * self.max_position_embeddings)  # Transformer.__init__, whatever rope_theta says


class ConvBlock1d(nn.Module):
    """GroupNorm (one group; over the real frames only, padded ones zeroed), SiLU, kernel-3 convolution."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.groupnorm = nn.GroupNorm(num_groups=1, num_channels=dim)
        self.activation = nn.SiLU()
        self.project = nn.Conv1d(dim, dim, kernel_size=3, padding="same")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.project(self.activation(self._norm(x, mask)))

    def _norm(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        norm = self.groupnorm
        if mask is None:
            return norm(x)
        weights = mask[:, None, :].to(x.dtype)  # [B, 1, L]
        count = weights.sum(dim=(1, 2), keepdim=True) * x.shape[1]
        mean = (x * weights).sum(dim=(1, 2), keepdim=True) / count
        var = (((x - mean) * weights) ** 2).sum(dim=(1, 2), keepdim=True) / count
        y = (x - mean) / torch.sqrt(var + norm.eps)
        return (y * norm.weight.view(1, -1, 1) + norm.bias.view(1, -1, 1)) * weights


class ResnetBlock1d(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block1 = ConvBlock1d(dim)
        self.block2 = ConvBlock1d(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.block2(self.block1(x, mask), mask) + x


class Embeddings(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.resnet_block = ResnetBlock1d(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.resnet_block(x.transpose(1, 2), mask).transpose(1, 2)


def rotary_table(head_dim: int, length: int, theta: float) -> torch.Tensor:
    """``RotaryEmbedding.precompute_freqs_cis``: [length, head_dim / 2, 2, 2] rotation matrices."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    angles = torch.outer(torch.arange(length), freqs).float()
    cos, sin = angles.cos(), angles.sin()
    return torch.stack((cos, -sin, sin, cos), dim=-1).view(*angles.shape, 2, 2)


def rotate(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``apply_rotary_emb`` on [B, heads, S, head_dim] with the table's first S rows."""
    pairs = x.reshape(*x.shape[:-1], -1, 1, 2)
    rotation = table[: x.shape[2]].view(1, 1, x.shape[2], -1, 2, 2)
    return (pairs * rotation).sum(5).flatten(3).type_as(x)


class Attention(nn.Module):
    def __init__(self, shape: PeavShape) -> None:
        super().__init__()
        width, bias = shape.num_attention_heads * shape.head_dim, shape.attention_bias
        self.head_dim = shape.head_dim
        self.q_proj = nn.Linear(shape.hidden_size, width, bias=bias)
        self.k_proj = nn.Linear(shape.hidden_size, width, bias=bias)
        self.v_proj = nn.Linear(shape.hidden_size, width, bias=bias)
        self.o_proj = nn.Linear(width, shape.hidden_size, bias=bias)
        self.q_norm = RMSNorm(shape.head_dim, shape.rms_norm_eps)
        self.k_norm = RMSNorm(shape.head_dim, shape.rms_norm_eps)

    def forward(self, x: torch.Tensor, table: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, _ = x.shape
        heads = (batch, length, -1, self.head_dim)
        q = rotate(self.q_norm(self.q_proj(x).view(heads)).transpose(1, 2), table)
        k = rotate(self.k_norm(self.k_proj(x).view(heads)).transpose(1, 2), table)
        v = self.v_proj(x).view(heads).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.o_proj(attended.transpose(1, 2).reshape(batch, length, -1))


class MLP(nn.Module):
    def __init__(self, shape: PeavShape) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(shape.hidden_size, shape.intermediate_size, bias=False)
        self.up_proj = nn.Linear(shape.hidden_size, shape.intermediate_size, bias=False)
        self.down_proj = nn.Linear(shape.intermediate_size, shape.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, shape: PeavShape) -> None:
        super().__init__()
        self.self_attn = Attention(shape)
        self.mlp = MLP(shape)
        self.input_layernorm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)

    def forward(self, x: torch.Tensor, table: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), table, key_mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class PeavTransformer(nn.Module):
    """``Transformer(config)``: [B, T, hidden] (+ mask [B, T]) -> [B, T, hidden], the CLS position dropped."""

    def __init__(self, shape: PeavShape) -> None:
        super().__init__()
        self.shape = shape
        self.embeddings = Embeddings(shape.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(shape) for _ in range(shape.num_hidden_layers))
        self.norm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        self.output = nn.Linear(shape.hidden_size, shape.hidden_size, bias=False)
        # computed on the CPU at construction, as the official module does (not saved in the checkpoint)
        self.register_buffer("rotary", rotary_table(shape.head_dim, shape.max_position_embeddings, shape.rope_theta),
                             persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[1] + 1 > self.shape.max_position_embeddings:
            raise LassbenchError(f"{x.shape[1]} frames: the judge's transformer takes at most "
                                 f"{self.shape.max_position_embeddings - 1} (its max_position_embeddings, less CLS)")
        if mask is not None:
            mask = F.pad(mask, (1, 0), value=True)  # the CLS position is always real
        h = self.embeddings(x, mask)
        key_mask = mask[:, None, None, :] if mask is not None else None
        for layer in self.layers:
            h = layer(h, self.rotary, key_mask)
        return self.output(self.norm(h))[:, 1:]
