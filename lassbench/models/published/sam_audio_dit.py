"""SAM Audio's diffusion transformer, module for module: ``DiT`` of facebookresearch/sam-audio
``sam_audio/model/transformer.py`` with ``rope.py`` and ``patcher.py``.

A stack of blocks, each: RMS-normed self-attention (queries and keys RMS-normed per head, rotary positions) under an
adaLN shift / scale / gate from the timestep, cross-attention to the text memory (no positions, no modulation), and
a SwiGLU feed-forward under the same modulation. Before the stack a 1-D ResNet block (``x_embedder``, the
``Patcher`` with patch size 1); after it an RMS norm, a last shift / scale, and the output projection. Heads are
split with the head index *last* (``reshape(B, T, C // H, H)``), as the release does: the weights only fit that
layout. Dropout is inactive at inference and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lassbench.models.published.rms_norm import RMSNorm


@dataclass(frozen=True)
class DiTShape:
    """``TransformerConfig`` as far as inference reads it (the config.json's ``transformer`` entry)."""

    dim: int = 2048
    n_heads: int = 16
    n_layers: int = 16
    norm_eps: float = 1e-5
    qk_norm: bool = True
    fc_bias: bool = False
    ffn_exp: int = 4
    ffn_dim_multiplier: float = 1
    multiple_of: int = 64
    non_linearity: str = "swiglu"
    use_rope: bool = True
    max_positions: int = 10000
    frequency_embedding_dim: int = 256
    timestep_non_linearity: str = "swiglu"
    t_block_non_linearity: str = "silu"
    t_block_bias: bool = True
    context_dim: int = 2048
    context_non_linearity: str = "swiglu"
    context_norm: bool = False
    out_channels: int = 256
    in_channels: int | None = None


NONLINEARITIES = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu, "srelu": lambda x: F.relu(x) ** 2,
                  "approx_gelu": lambda x: F.gelu(x, approximate="tanh")}


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Rotary(nn.Module):
    """``RotaryEmbedding`` (scale factor 1): a 2 x 2 rotation per pair of channels, frequencies from theta
    ``max(10000, 2 x max_positions)``, precomputed for ``max_positions`` frames."""

    def __init__(self, head_dim: int, max_positions: int) -> None:
        super().__init__()
        theta = max(10000, 2 * max_positions)
        freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
        freqs = torch.outer(torch.arange(max_positions), freqs).float()
        cos, sin = freqs.cos(), freqs.sin()
        table = torch.stack((cos, -sin, sin, cos), dim=-1).view(*freqs.size(), 2, 2)
        self.register_buffer("freqs_cis", table.view(1, max_positions, 1, head_dim // 2, 2, 2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H, L, E] -> the same, rotated by position."""
        x = x.transpose(1, 2)
        pairs = x.reshape(*x.shape[:-1], -1, 1, 2)
        out = (pairs * self.freqs_cis[:, : x.size(1)]).sum(5).flatten(3)
        return out.transpose(1, 2).type_as(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, eps: float, qk_norm: bool, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(dim, dim, bias=bias) for _ in range(4))
        self.qk_norm = qk_norm
        if qk_norm:
            self.q_norm, self.k_norm = RMSNorm(dim // heads, eps), RMSNorm(dim // heads, eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        return x.reshape(b, t, c // self.heads, self.heads).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None, key_mask: torch.Tensor | None,
                rope: Rotary | None) -> torch.Tensor:
        source = x if context is None else context
        q, k, v = self._heads(self.wq(x)), self._heads(self.wk(source)), self._heads(self.wv(source))
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = rope(q), rope(k)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b, h, n, d = out.shape
        return self.wo(out.permute(0, 2, 1, 3).reshape(b, n, h * d))


class GatedLinear(nn.Module):
    """``FeedForward`` / ``ProjectionLayer``: ``w2(act(w1 x))``, or ``w2(silu(w1 x) * w3 x)`` for SwiGLU."""

    def __init__(self, cin: int, hidden: int, cout: int, non_linearity: str, bias: bool) -> None:
        super().__init__()
        self.swiglu = non_linearity == "swiglu"
        self.activation = None if self.swiglu else NONLINEARITIES[non_linearity]
        self.w1, self.w2 = nn.Linear(cin, hidden, bias=bias), nn.Linear(hidden, cout, bias=bias)
        if self.swiglu:
            self.w3 = nn.Linear(cin, hidden, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.silu(self.w1(x)) * self.w3(x) if self.swiglu else self.activation(self.w1(x))
        return self.w2(hidden)


def feed_forward_width(shape: DiTShape) -> int:
    hidden = int(shape.ffn_exp * shape.dim)
    if shape.non_linearity == "swiglu":  # same parameter count as a two-matrix MLP
        hidden = int(2 * hidden / 3)
    hidden = int(shape.ffn_dim_multiplier * hidden)
    return shape.multiple_of * ((hidden + shape.multiple_of - 1) // shape.multiple_of)


class DiTBlock(nn.Module):
    def __init__(self, shape: DiTShape) -> None:
        super().__init__()
        dim, eps = shape.dim, shape.norm_eps
        self.attention = Attention(dim, shape.n_heads, eps, shape.qk_norm, shape.fc_bias)
        self.feed_forward = GatedLinear(dim, feed_forward_width(shape), dim, shape.non_linearity, shape.fc_bias)
        self.attention_norm, self.ffn_norm = RMSNorm(dim, eps), RMSNorm(dim, eps)
        self.cross_attention = Attention(dim, shape.n_heads, eps, shape.qk_norm, shape.fc_bias)
        self.scale_shift_table = nn.Parameter(torch.zeros(6, dim))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None,
                memory_mask: torch.Tensor | None, rope: Rotary | None) -> torch.Tensor:
        biases = self.scale_shift_table[None] + t.reshape(x.size(0), 6, -1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = biases.chunk(6, dim=1)
        h = x + self.attention(_modulate(self.attention_norm(x), shift_msa, scale_msa), None, mask, rope) * gate_msa
        h = h + self.cross_attention(h, memory, memory_mask, None)
        return h + self.feed_forward(_modulate(self.ffn_norm(h), shift_mlp, scale_mlp)) * gate_mlp


class PaddedConv1d(nn.Conv1d):
    """The patcher's ``Conv1d``: padded (right-biased for even totals) so that every input frame has an output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = (self.kernel_size[0] - 1) * self.dilation[0] + 1
        stride = self.stride[0]
        total = kernel - stride
        frames = (x.shape[-1] - kernel + total) / stride + 1
        extra = (math.ceil(frames) - 1) * stride + (kernel - total) - x.shape[-1]
        right = total // 2
        return super().forward(F.pad(x, (total - right, right + extra)))


class ConvBlock1d(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.groupnorm = nn.GroupNorm(1, cin)
        self.project = PaddedConv1d(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(F.silu(self.groupnorm(x)))


class ResnetBlock1d(nn.Module):
    """The ``Patcher``'s block (patch size 1, equal widths: its shortcut is the identity)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block1, self.block2 = ConvBlock1d(dim, dim), ConvBlock1d(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x)) + x


class Patcher(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = ResnetBlock1d(dim)


class ContextEmbedder(nn.Module):
    def __init__(self, shape: DiTShape) -> None:
        super().__init__()
        self.context_norm = shape.context_norm
        if shape.context_norm:
            self.norm = RMSNorm(shape.context_dim, shape.norm_eps)
        self.projection = GatedLinear(shape.context_dim, shape.dim, shape.dim, shape.context_non_linearity,
                                      shape.fc_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.norm(x) if self.context_norm else x)


class TimestepEmbedder(nn.Module):
    def __init__(self, shape: DiTShape, max_period: int = 10000) -> None:
        super().__init__()
        self.size = shape.frequency_embedding_dim
        self.projection = GatedLinear(self.size, shape.dim, shape.dim, shape.timestep_non_linearity, shape.fc_bias)
        half = self.size // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t[:, None].float() * self.freqs[None]
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.size % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        return self.projection(embedding.to(t))


class DiT(nn.Module):
    def __init__(self, shape: DiTShape) -> None:
        super().__init__()
        if shape.in_channels is not None:  # built by the release, never called by its forward
            self.data_proj = nn.Linear(shape.in_channels, shape.dim)
        self.rope_embeddings = Rotary(shape.dim // shape.n_heads, shape.max_positions) if shape.use_rope else None
        self.layers = nn.ModuleList([DiTBlock(shape) for _ in range(shape.n_layers)])
        self.norm = RMSNorm(shape.dim, shape.norm_eps)
        self.output = nn.Linear(shape.dim, shape.out_channels, bias=shape.fc_bias)
        self.x_embedder = Patcher(shape.dim)
        self.y_embedder = ContextEmbedder(shape)
        self.t_embedder = TimestepEmbedder(shape)
        self.t_block_non_linearity = NONLINEARITIES[shape.t_block_non_linearity]
        self.t_block = nn.Linear(shape.dim, 6 * shape.dim, bias=shape.t_block_bias)
        self.final_layer_scale_shift_table = nn.Parameter(torch.zeros(2, shape.dim))

    def forward(self, x: torch.Tensor, time: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None,
                memory_mask: torch.Tensor | None) -> torch.Tensor:
        """x [B, T, dim], time [B], memory [B, S, context_dim] -> [B, T, out_channels]."""
        h = self.x_embedder.block(x.transpose(1, 2)).transpose(1, 2)
        t = self.t_embedder(time)
        t_mod = self.t_block(self.t_block_non_linearity(t))
        memory = self.y_embedder(memory)
        for layer in self.layers:
            h = layer(h, memory, t_mod, mask, memory_mask, self.rope_embeddings)
        shift, scale = (self.final_layer_scale_shift_table[None] + t[:, None]).chunk(2, dim=1)
        return self.output(_modulate(self.norm(h), shift, scale))
