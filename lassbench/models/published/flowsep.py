"""FlowSep (Yuan et al., 2025), module for module as its official language-queried inference runs it.

Official code: Audio-AGI/FlowSep d8164db — ``lass_inference.py`` (its ``main``), ``lass_config/2channel_flow.yaml``,
``src/latent_diffusion/models/ddpm_flow.py`` (``LatentDiffusion.generate_sample`` / ``solve_euler``),
``src/latent_diffusion/modules/diffusionmodules/openaimodel.py`` (``UNetModel``) + ``modules/attention.py``,
``src/latent_encoder/autoencoder.py`` (``AutoencoderKL``) + ``diffusionmodules/model.py`` (``Encoder`` / ``Decoder``),
``src/latent_diffusion/modules/encoders/modules.py`` (``FlanT5HiddenState``), ``src/bigvgan/model.py`` (``BigVGAN``)
and ``src/utilities`` (``AudioDataset.read_wav_file``, ``TacotronSTFT``). What one mixture goes through:

1. 10.24 s at 16 kHz (163,840 samples): mean removed, peak-normalised to 0.5, zero-padded to 10.24 s;
2. its log-mel spectrogram (Tacotron STFT: 1024-point Hann, hop 160, 64 Slaney mel bands 0-8 kHz, ``log(max(x,
   1e-5))``), 1,024 frames;
3. the mel VAE's encoder (``AutoencoderKL``): the posterior *sampled* (``mean + std * N(0, 1)``) and scaled by
   ``scale_factor``: an 8 x 256 x 16 latent. The official script draws that noise from torch's global generator
   after ``seed_everything(0)`` and several other draws; lassbench draws it from a generator seeded
   :data:`ENCODE_SEED`;
4. the query through FLAN-T5's encoder (tokenised to 50 tokens, padded to 50): the cross-attention context and mask;
5. rectified flow: :data:`STEPS` Euler steps (``lass_inference.py --infer_step``) from t = 0 to 1, from noise drawn
   by a generator seeded :data:`SEED`; each step one ``UNetModel`` call on the noisy latent and the mixture's latent
   concatenated along channels (the velocity is the first 8 output channels);
6. the latent unscaled, through the VAE's decoder: a 1024 x 64 log-mel spectrogram;
7. BigVGAN (anti-aliased SnakeBeta, 160 samples per frame, final tanh): 163,840 samples.

The model reads 10.24 s; lassbench runs a longer mixture as consecutive 10.24 s segments (the official script cuts
a random 10.24 s window) and returns every estimate at its mixture's level (the script returns it at the level of
the peak-normalised mixture). Each mixture is sampled on its own, so an estimate never depends on its batch
neighbours.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
SEGMENT = 163840  # lass_inference.py: noise_waveform[0][:163840], 10.24 s
STEPS = 20  # lass_inference.py --infer_step default
SEED = 0  # lassbench's: the official script draws the initial noise from the global generator (seed_everything(0))
ENCODE_SEED = 1  # lassbench's: likewise the VAE posterior sample of the mixture
MAX_TOKENS = 50  # FlanT5HiddenState: max_length=self.return_length (50), padding="max_length", truncation=True
LATENT_CHANNELS = 8  # 2channel_flow.yaml model.params.channels
N_FFT, HOP, N_MELS, MEL_FMAX, FRAMES = 1024, 160, 64, 8000, 1024  # preprocessing; target_length = 10.24 s / hop
PEAK = 0.5  # AudioDataset.normalize_wav: "Manually limit the maximum amplitude into 0.5"
UPSAMPLE_RATES = [5, 4, 2, 2, 2]  # src/bigvgan/config.json (not recorded in the weights)
RESBLOCK_DILATIONS = [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
HEAD_CHANNELS = 32  # unet_config num_head_channels (not recorded in the weights)
RELEASED_UNET = {"in_channels": 16, "model_channels": 128, "out_channels": 16, "num_res_blocks": 2,
                 "attention_resolutions": [2, 4, 8], "channel_mult": [1, 2, 3, 5], "transformer_depth": 1,
                 "context_dim": 1024}
RELEASED_VAE = {"ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "z_channels": 8, "embed_dim": 8}
RELEASED_VOCODER = {"num_mels": 64, "initial_channel": 512, "upsample_kernels": [16, 16, 8, 4, 4],
                    "resblock_kernels": [3, 7, 11]}


# ---------------------------------------------------------------------------- front end (utilities/audio/stft.py)


def normalize_segment(wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``normalize_wav`` on [B, T]: (normalised, gain) with normalised = (wav - mean) * gain."""
    centred = wav - wav.mean(dim=-1, keepdim=True)
    peak = centred.abs().amax(dim=-1, keepdim=True) + 1e-8
    return centred / peak * PEAK, PEAK / peak


def fourier_basis() -> torch.Tensor:
    """``STFT.forward_basis``: the real and imaginary DFT rows up to Nyquist, Hann-windowed, [1026, 1, 1024]."""
    basis = np.fft.fft(np.eye(N_FFT))
    cutoff = N_FFT // 2 + 1
    basis = torch.FloatTensor(np.vstack([np.real(basis[:cutoff]), np.imag(basis[:cutoff])])[:, None, :])
    return basis * torch.hann_window(N_FFT, periodic=True, dtype=torch.float64).float()


def mel_basis() -> torch.Tensor:
    """``librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0, fmax=8000)``: Slaney scale and area norm."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=N_MELS, min_frequency=0.0,
                           max_frequency=float(MEL_FMAX), sampling_rate=SAMPLE_RATE, norm="slaney",
                           mel_scale="slaney")
    return torch.from_numpy(bank.T.astype(np.float32))


def log_mel(wav: torch.Tensor, basis: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """``wav_feature_extraction``: [B, 163840] -> [B, 1, 1024, 64] (the 1,025th frame cut, as ``pad_spec`` does)."""
    padded = F.pad(wav.clamp(-1, 1)[:, None, None], (N_FFT // 2, N_FFT // 2, 0, 0), mode="reflect")[:, 0]
    spectrum = F.conv1d(padded, basis, stride=HOP)
    real, imag = spectrum[:, : N_FFT // 2 + 1], spectrum[:, N_FFT // 2 + 1:]
    magnitude = torch.sqrt(real ** 2 + imag ** 2)
    return torch.log(torch.clamp(torch.matmul(mel, magnitude), min=1e-5)).transpose(1, 2)[:, None, :FRAMES]


# ------------------------------------------------------------------ mel VAE (latent_encoder/autoencoder.py)


def _group_norm(channels: int, eps: float = 1e-6) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=eps)


class VAEResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _group_norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class VAEAttention(nn.Module):
    """``AttnBlock``: single-head self-attention over all time-frequency positions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, height, width = h.shape
        q = self.q(h).reshape(b, c, -1).permute(0, 2, 1)
        k, v = self.k(h).reshape(b, c, -1), self.v(h).reshape(b, c, -1)
        weights = torch.softmax(torch.bmm(q, k) * (int(c) ** (-0.5)), dim=2)
        return x + self.proj_out(torch.bmm(v, weights.permute(0, 2, 1)).reshape(b, c, height, width))


class _Level(nn.Module):
    """One resolution of the encoder or decoder: ``block`` (+ an empty ``attn``, as attn_resolutions is [])."""

    def __init__(self, blocks: list[nn.Module], resample: nn.Module | None, name: str) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        if resample is not None:
            setattr(self, name, resample)


class _Middle(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = VAEResnetBlock(channels, channels)
        self.attn_1 = VAEAttention(channels)
        self.block_2 = VAEResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Resample(nn.Module):
    """``Downsample`` (zero-pad right and bottom, 3x3 stride 2) or ``Upsample`` (nearest x2, 3x3)."""

    def __init__(self, channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(channels, channels, 3, stride=2 if down else 1, padding=0 if down else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MelEncoder(nn.Module):
    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, z_channels: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(1, ch, 3, padding=1)
        widths = [ch * m for m in [1, *ch_mult]]
        self.down = nn.ModuleList()
        for level in range(len(ch_mult)):
            blocks = [VAEResnetBlock(widths[level] if b == 0 else widths[level + 1], widths[level + 1])
                      for b in range(num_res_blocks)]
            last = level == len(ch_mult) - 1
            self.down.append(_Level(blocks, None if last else _Resample(widths[level + 1], True), "downsample"))
        self.mid = _Middle(widths[-1])
        self.norm_out = _group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], 2 * z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class MelDecoder(nn.Module):
    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, z_channels: int) -> None:
        super().__init__()
        width = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, width, 3, padding=1)
        self.mid = _Middle(width)
        levels = []
        for level in reversed(range(len(ch_mult))):
            out = ch * ch_mult[level]
            blocks = [VAEResnetBlock(width if b == 0 else out, out) for b in range(num_res_blocks + 1)]
            levels.insert(0, _Level(blocks, _Resample(out, False) if level else None, "upsample"))
            width = out
        self.up = nn.ModuleList(levels)
        self.norm_out = _group_norm(width)
        self.conv_out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class MelVAE(nn.Module):
    """``AutoencoderKL`` (image_key fbank, subband 1): ``encoder``, ``quant_conv``, ``post_quant_conv``,
    ``decoder`` under the file's ``first_stage_model.*`` names."""

    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, z_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.encoder = MelEncoder(ch, ch_mult, num_res_blocks, z_channels)
        self.decoder = MelDecoder(ch, ch_mult, num_res_blocks, z_channels)
        self.quant_conv = nn.Conv2d(2 * z_channels, 2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)

    def encode(self, mel: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``DiagonalGaussianDistribution(moments).sample()``, its noise from ``generator``."""
        mean, logvar = torch.chunk(self.quant_conv(self.encoder(mel)), 2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        return mean + std * torch.randn(mean.shape, generator=generator).to(mean.device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))


def vae_shape(state: dict[str, torch.Tensor], prefix: str = "vae.") -> dict:
    ch = int(state[f"{prefix}encoder.conv_in.weight"].shape[0])
    mults, level = [], 0
    while f"{prefix}encoder.down.{level}.block.0.conv1.weight" in state:
        mults.append(int(state[f"{prefix}encoder.down.{level}.block.0.conv1.weight"].shape[0]) // ch)
        level += 1
    blocks = len({k[len(prefix):].split(".")[4] for k in state if k.startswith(f"{prefix}encoder.down.0.block.")})
    return {"ch": ch, "ch_mult": mults, "num_res_blocks": blocks,
            "z_channels": int(state[f"{prefix}decoder.conv_in.weight"].shape[1]),
            "embed_dim": int(state[f"{prefix}post_quant_conv.weight"].shape[1])}


# ------------------------------------------------------------ flow network (diffusionmodules/openaimodel.py)


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
        self.norm = _group_norm(channels)
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


# ------------------------------------------------------------------------------ vocoder (src/bigvgan/model.py)


class SnakeBeta(nn.Module):
    """``x + 1 / (e^beta + 1e-9) * sin(e^alpha x)^2`` (snake_logscale)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(self.alpha.unsqueeze(0).unsqueeze(-1))
        beta = torch.exp(self.beta.unsqueeze(0).unsqueeze(-1))
        return x + (1.0 / (beta + 0.000000001)) * torch.pow(torch.sin(x * alpha), 2)


class _UpSample1d(nn.Module):
    """x2 with a 12-tap Kaiser-windowed sinc (the ``filter`` buffer, read from the file)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", torch.zeros(1, 1, 12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = 2 * F.conv_transpose1d(F.pad(x, (5, 5), mode="replicate"), self.filter.expand(x.shape[1], -1, -1),
                                   stride=2, groups=x.shape[1])
        return x[..., 15:-15]


class _LowPass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", torch.zeros(1, 1, 12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(F.pad(x, (5, 6), mode="replicate"), self.filter.expand(x.shape[1], -1, -1), stride=2,
                        groups=x.shape[1])


class _DownSample1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lowpass = _LowPass()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Activation1d(nn.Module):
    """Anti-aliased SnakeBeta: up x2, activation, low-pass and down x2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.act = SnakeBeta(channels)
        self.upsample, self.downsample = _UpSample1d(), _DownSample1d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


class AMPBlock1(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList([nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2)
                                     for d in dilations])
        self.convs2 = nn.ModuleList([nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)
                                     for _ in dilations])
        self.activations = nn.ModuleList([Activation1d(channels) for _ in range(2 * len(dilations))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations[::2], self.activations[1::2],
                                  strict=True):
            x = c2(a2(c1(a1(x)))) + x
        return x


class BigVGAN(nn.Module):
    """The generator after ``remove_weight_norm`` (``get_vocoder``), as the checkpoint stores it."""

    def __init__(self, num_mels: int, initial_channel: int, upsample_kernels: list[int],
                 resblock_kernels: list[int]) -> None:
        super().__init__()
        self.conv_pre = nn.Conv1d(num_mels, initial_channel, 7, padding=3)
        self.ups = nn.ModuleList([
            nn.ModuleList([nn.ConvTranspose1d(initial_channel // 2 ** i, initial_channel // 2 ** (i + 1), k, u,
                                              padding=(k - u) // 2)])
            for i, (u, k) in enumerate(zip(UPSAMPLE_RATES, upsample_kernels, strict=True))])
        self.resblocks = nn.ModuleList([AMPBlock1(initial_channel // 2 ** (i + 1), k, d)
                                        for i in range(len(self.ups))
                                        for k, d in zip(resblock_kernels, RESBLOCK_DILATIONS, strict=True)])
        ch = initial_channel // 2 ** len(self.ups)
        self.activation_post = Activation1d(ch)
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3)
        self.kernels = len(resblock_kernels)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up[0](x)
            xs = None
            for j in range(self.kernels):
                y = self.resblocks[i * self.kernels + j](x)
                xs = y if xs is None else xs + y
            x = xs / self.kernels
        return torch.tanh(self.conv_post(self.activation_post(x)))


def vocoder_shape(state: dict[str, torch.Tensor], prefix: str = "vocoder.") -> dict:
    pre = state[f"{prefix}conv_pre.weight"]
    ups = len({k[len(prefix):].split(".")[1] for k in state if k.startswith(f"{prefix}ups.")})
    return {"num_mels": int(pre.shape[1]), "initial_channel": int(pre.shape[0]),
            "upsample_kernels": [int(state[f"{prefix}ups.{i}.0.weight"].shape[2]) for i in range(ups)],
            "resblock_kernels": [int(state[f"{prefix}resblocks.{j}.convs1.0.weight"].shape[2])
                                 for j in range(len(RESBLOCK_DILATIONS))]}


# ------------------------------------------------------------------------------------------------------ system


class FlowSepSystem(nn.Module):
    """FLAN-T5's encoder (``text``: transformers' ``T5EncoderModel``), the flow ``unet``, the mel ``vae``, the
    ``vocoder`` and the latent ``scale_factor``."""

    def __init__(self, text: nn.Module, unet: dict, vae: dict, vocoder: dict) -> None:
        super().__init__()
        self.text = text
        self.unet = UNetModel(**unet)
        self.vae = MelVAE(**vae)
        self.vocoder = BigVGAN(**vocoder)
        self.register_buffer("scale_factor", torch.tensor(1.0))
        self.register_buffer("stft_basis", fourier_basis(), persistent=False)
        self.register_buffer("mel_basis", mel_basis(), persistent=False)
        self.steps, self.seed, self.encode_seed = STEPS, SEED, ENCODE_SEED

    def context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``FlanT5HiddenState.encode_text``: the encoder's last hidden state."""
        return self.text(input_ids=input_ids, attention_mask=attention_mask)[0]

    def separate(self, wav: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] at 16 kHz -> [B, T]: each row on its own, in 10.24 s segments, at its mixture's level."""
        context = self.context(input_ids, attention_mask)
        rows = []
        for w, c, m in zip(wav, context, attention_mask, strict=True):
            pieces = [self.separate_segment(w[None, s:s + SEGMENT], c[None], m[None].float())
                      for s in range(0, w.shape[-1], SEGMENT)]
            rows.append(torch.cat(pieces, dim=-1))
        return torch.cat(rows)

    def separate_segment(self, wav: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[1, <= 163840] -> the same length: the official estimate, divided by the normalisation gain."""
        normalised, gain = normalize_segment(wav)
        return self.separate_normalised(normalised, context, mask)[:, : wav.shape[-1]] / gain

    def separate_normalised(self, wav: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``generate_sample`` on an already normalised [1, <= 163840] -> its 163,840-sample waveform."""
        mel = log_mel(F.pad(wav, (0, SEGMENT - wav.shape[-1])), self.stft_basis, self.mel_basis)
        mixture = self.scale_factor * self.vae.encode(mel, torch.Generator().manual_seed(self.encode_seed))
        latent = self.sample(mixture, context, mask)
        return self.vocoder(self.vae.decode(latent / self.scale_factor)[:, 0].transpose(1, 2))[:, 0]

    def sample(self, mixture: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``solve_euler``: the same time grid, accumulated as the original accumulates it."""
        shape = (mixture.shape[0], LATENT_CHANNELS, *mixture.shape[2:])
        x = torch.randn(shape, generator=torch.Generator().manual_seed(self.seed)).to(mixture.device)
        grid = torch.linspace(0, 1, self.steps + 1, device=mixture.device)
        t, dt = grid[0], grid[1] - grid[0]
        for step in range(1, self.steps + 1):
            velocity = self.unet(torch.cat([x, mixture], dim=1), t.view(1).expand(x.shape[0]), context, mask)
            x = x + dt * velocity[:, :LATENT_CHANNELS]
            t = t + dt
            if step < self.steps:
                dt = grid[step + 1] - t
        return x


def tokenize(tokenizer, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(queries, max_length=MAX_TOKENS, padding="max_length", truncation=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]
