"""FlowSep's flow network, module for module: ``UNetModel`` of
``src/latent_diffusion/modules/diffusionmodules/openaimodel.py`` with the spatial
transformers of ``modules/attention.py`` (text cross-attention), as the release configures it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HEAD_CHANNELS = 32  # unet_config num_head_channels (not recorded in the weights)


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(nn.GroupNorm(32, out_channels), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class CrossAttention(nn.Module):
    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = (self._split(t) for t in (self.to_q(x), self.to_k(context), self.to_v(context)))
        sim = torch.einsum("b i d, b j d -> b i j", q, k) * self.scale
        if mask is not None:  # the tokenizer's padding: masked with the most negative float, as the original
            keep = mask.reshape(mask.shape[0], -1).repeat_interleave(self.heads, dim=0)[:, None, :] == 1
            sim = sim.masked_fill(~keep, -torch.finfo(sim.dtype).max)
        out = torch.einsum("b i j, b j d -> b i d", sim.softmax(dim=-1), v)
        b, n, d = out.shape
        return self.to_out(out.reshape(b // self.heads, self.heads, n, d).permute(0, 2, 1, 3).reshape(b // self.heads,
                                                                                                       n, -1))

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, inner = t.shape
        return t.reshape(b, n, self.heads, inner // self.heads).permute(0, 2, 1, 3).reshape(b * self.heads, n, -1)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """``BasicTransformerBlock``: self-attention, cross-attention (self-attention again without context), GEGLU."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context=context, mask=mask) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int | None) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)  # attention.py: Normalize(in_channels)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(inner, heads, dim_head, context_dim)
                                                 for _ in range(depth)])
        self.proj_out = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        b, c, height, width = x.shape
        h = self.proj_in(self.norm(x))
        h = h.reshape(b, h.shape[1], height * width).transpose(1, 2)
        for block in self.transformer_blocks:
            h = block(h, context, mask)
        return self.proj_out(h.transpose(1, 2).reshape(b, -1, height, width)) + x


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.Sequential):
    """``TimestepEmbedSequential``: within a stage the first spatial transformer attends to itself (the extra
    self-attention layer), the second to the text; any further one to itself."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor,  # type: ignore[override]
                mask: torch.Tensor) -> torch.Tensor:
        transformers = 0
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                with_text = transformers == 1
                x = layer(x, context if with_text else None, mask if with_text else None)
                transformers += 1
            else:
                x = layer(x)
        return x


class UNetModel(nn.Module):
    """``UNetModel`` as 2channel_flow.yaml configures it (use_spatial_transformer, extra_sa_layer, legacy heads,
    no scale-shift norm, convolutional resampling, one text context)."""

    def __init__(self, in_channels: int, model_channels: int, out_channels: int, num_res_blocks: int,
                 attention_resolutions: list[int], channel_mult: list[int], transformer_depth: int,
                 context_dim: int) -> None:
        super().__init__()
        self.model_channels = model_channels
        emb = 4 * model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb), nn.SiLU(), nn.Linear(emb, emb))

        def attention(ch: int) -> list[nn.Module]:
            heads = ch // HEAD_CHANNELS
            return [SpatialTransformer(ch, heads, ch // heads, transformer_depth, None),
                    SpatialTransformer(ch, heads, ch // heads, transformer_depth, context_dim)]

        self.input_blocks = nn.ModuleList([Stage(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
        chans, ch, ds = [model_channels], model_channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, emb, mult * model_channels)]
                ch = mult * model_channels
                layers += attention(ch) if ds in attention_resolutions else []
                self.input_blocks.append(Stage(*layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(Stage(Downsample(ch)))
                chans.append(ch)
                ds *= 2
        self.middle_block = Stage(ResBlock(ch, emb, ch), *attention(ch), ResBlock(ch, emb, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + chans.pop(), emb, model_channels * mult)]
                ch = model_channels * mult
                layers += attention(ch) if ds in attention_resolutions else []
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Stage(*layers))
        self.out = nn.Sequential(nn.GroupNorm(32, ch), nn.SiLU(), nn.Conv2d(model_channels, out_channels, 3,
                                                                             padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        skips, h = [], x
        for stage in self.input_blocks:
            h = stage(h, emb, context, mask)
            skips.append(h)
        h = self.middle_block(h, emb, context, mask)
        for stage in self.output_blocks:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, context, mask)
        return self.out(h)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """[cos | sin] of t (a flow time in [0, 1)) at geometric frequencies (``diffusionmodules/util.py``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half).to(t.device)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def unet_shape(state: dict[str, torch.Tensor], prefix: str = "unet.") -> dict:
    """The UNet's configuration read from its tensor names and shapes (heads: :data:`HEAD_CHANNELS` each): the
    input stages, level by level (a ``Downsample`` stage ends a level), give the widths, the residual blocks per
    level and where attention sits."""
    first = state[f"{prefix}input_blocks.0.0.weight"]
    model_channels = int(first.shape[0])
    levels: list[list[tuple[int, bool]]] = [[]]
    i = 1
    while any(f"{prefix}input_blocks.{i}.0.{leaf}" in state for leaf in ("op.weight", "in_layers.2.weight")):
        if f"{prefix}input_blocks.{i}.0.op.weight" in state:
            levels.append([])
        else:
            width = int(state[f"{prefix}input_blocks.{i}.0.in_layers.2.weight"].shape[0])
            levels[-1].append((width, f"{prefix}input_blocks.{i}.1.norm.weight" in state))
        i += 1
    depth = len({k.split(".")[-4] for k in state
                 if k.startswith(f"{prefix}middle_block.1.transformer_blocks.") and k.endswith("norm1.weight")})
    return {"in_channels": int(first.shape[1]), "model_channels": model_channels,
            "out_channels": int(state[f"{prefix}out.2.weight"].shape[0]), "num_res_blocks": len(levels[0]),
            "attention_resolutions": sorted(2 ** k for k, level in enumerate(levels) if level and level[0][1]),
            "channel_mult": [level[0][0] // model_channels for level in levels], "transformer_depth": depth,
            "context_dim": int(state[f"{prefix}middle_block.2.transformer_blocks.0.attn2.to_k.weight"].shape[1])}
