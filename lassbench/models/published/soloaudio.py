"""SoloAudio (Wang et al., 2025), module for module as its official language-queried inference runs it.

Official code: WangHelin1997/SoloAudio d5aa243 — ``tse_languageTSE.py`` (``sample_diffusion`` and its ``__main__``),
``model/udit.py`` + ``model/attention.py`` + ``model/rotary.py`` (``UDiT``), ``vae_modules/autoencoder_wrapper.py``
and ``vae_modules/stable_vae`` (stable-audio-tools' Oobleck VAE, ``pretrained_models/config.json``), diffusers'
``DDIMScheduler`` (``config/SoloAudio.yaml``) and transformers' ``ClapModel.get_text_features``
(laion/larger_clap_general). What one mixture goes through:

1. the mixture at 24 kHz into the VAE encoder (Oobleck: weight-normalised convolutions, SnakeBeta activations,
   strides 2-4-6-10, so one latent frame per 480 samples); the VAE bottleneck *samples* the posterior
   (``mean + softplus(scale) + 1e-4`` times standard normal noise), which the official script draws from torch's
   unseeded global generator: lassbench draws it from a generator seeded :data:`ENCODE_SEED`;
2. the query through CLAP's text tower (tokenised to 10 tokens at most, padded to 10, as the script's processor
   call), projected and L2-normalised: the "timbre" vector;
3. DDIM (v-prediction, zero-terminal-SNR scaled-linear betas, trailing spacing, eta 0), :data:`STEPS` steps from
   noise drawn by a generator seeded :data:`SEED` (the script's defaults), each step one ``UDiT`` call: the noisy
   latent and the mixture's latent concatenated per frame, a U-shaped stack of adaLN-Zero DiT blocks with rotary,
   QK-normalised self-attention and long skips, conditioned on timestep + timbre;
4. the final latent through the VAE decoder (480 samples per frame, no final tanh).

Frames: the output has 480 samples per latent frame, i.e. the input's length rounded down to a multiple of 480; the
official script saves that; lassbench zero-fills the remaining (< 20 ms) tail so an estimate has its mixture's
length. Each mixture is sampled on its own, as the script does, so an estimate never depends on its batch neighbours.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lassbench.models.published.activations import SnakeBeta

SAMPLE_RATE = 24000
STEPS = 50  # tse_languageTSE.py --num_infer_steps
SEED = 2024  # tse_languageTSE.py --random-seed: the generator of the initial noise
ENCODE_SEED = 0  # lassbench's: the official script leaves the VAE posterior sample to the global generator
MAX_TOKENS = 10  # the script's processor call: max_length=10, padding="max_length", truncation=True
TRAIN_STEPS, BETA_START, BETA_END = 1000, 0.00085, 0.012  # config/SoloAudio.yaml ddim.diffusers
RELEASED_UDIT = {"input_dim": 256, "output_dim": 128, "timbre_dim": 512, "hidden": 768, "depth": 12, "heads": 12}
RELEASED_VAE = {"channels": 128, "c_mults": [1, 2, 4, 8], "strides": [2, 4, 6, 10], "latent_dim": 128}


# ------------------------------------------------------------------------------------ VAE (stable-audio Oobleck)


class WNConv1d(nn.Module):
    """``torch.nn.utils.weight_norm(nn.Conv1d(...))``: the weight recomputed from (g, v) at every call, as the
    official forward pre-hook does, so the released ``weight_g`` / ``weight_v`` load as they are."""

    transpose = False

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                 bias: bool = True) -> None:
        super().__init__()
        shape = (cin, cout, kernel) if self.transpose else (cout, cin, kernel)
        self.weight_g = nn.Parameter(torch.ones(shape[0], 1, 1))
        self.weight_v = nn.Parameter(torch.zeros(shape))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch._weight_norm(self.weight_v, self.weight_g, 0)
        if self.transpose:
            return F.conv_transpose1d(x, weight, self.bias, self.stride, self.padding)
        return F.conv1d(x, weight, self.bias, self.stride, self.padding, self.dilation)


class WNConvTranspose1d(WNConv1d):
    transpose = True


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(SnakeBeta(channels),
                                    WNConv1d(channels, channels, 7, dilation=dilation, padding=dilation * 3),
                                    SnakeBeta(channels), WNConv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class EncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(ResidualUnit(cin, 1), ResidualUnit(cin, 3), ResidualUnit(cin, 9), SnakeBeta(cin),
                                    WNConv1d(cin, cout, 2 * stride, stride=stride, padding=math.ceil(stride / 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        upsample = WNConvTranspose1d(cin, cout, 2 * stride, stride=stride, padding=math.ceil(stride / 2))
        self.layers = nn.Sequential(SnakeBeta(cin), upsample, ResidualUnit(cout, 1), ResidualUnit(cout, 3),
                                    ResidualUnit(cout, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _Stack(nn.Module):
    """Holds a ``layers`` Sequential, as ``OobleckEncoder`` / ``OobleckDecoder`` do (hence their key names)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckVAE(nn.Module):
    """``AudioAutoencoder`` as ``Autoencoder(..., 'stable_vae', quantization_first=True)`` uses it: ``encoder``,
    the VAE bottleneck's sample, ``decoder`` (the keys are the file's ``autoencoder.*`` without the prefix)."""

    def __init__(self, channels: int, c_mults: list[int], strides: list[int], latent_dim: int) -> None:
        super().__init__()
        mults = [1, *c_mults]
        encoder = [WNConv1d(1, channels, 7, padding=3)]
        encoder += [EncoderBlock(mults[i] * channels, mults[i + 1] * channels, strides[i])
                    for i in range(len(strides))]
        encoder += [SnakeBeta(mults[-1] * channels), WNConv1d(mults[-1] * channels, 2 * latent_dim, 3, padding=1)]
        decoder = [WNConv1d(latent_dim, mults[-1] * channels, 7, padding=3)]
        decoder += [DecoderBlock(mults[i] * channels, mults[i - 1] * channels, strides[i - 1])
                    for i in range(len(strides), 0, -1)]
        decoder += [SnakeBeta(channels), WNConv1d(channels, 1, 7, padding=3, bias=False)]
        self.encoder, self.decoder = _Stack(encoder), _Stack(decoder)

    def encode(self, wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[B, T] -> [B, latent, frames]: ``VAEBottleneck.encode``'s sample, its noise from ``generator``."""
        mean, scale = self.encoder(wav[:, None]).chunk(2, dim=1)
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        return noise * (F.softplus(scale) + 1e-4) + mean

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent)[:, 0]


def vae_shape(state: dict[str, torch.Tensor], prefix: str = "vae.") -> dict:
    """OobleckVAE's arguments read from its tensors: channels from the first convolution, each block's width and
    stride from its down-sampling convolution (kernel = 2 x stride), the latent size from the decoder's input."""
    channels = int(state[f"{prefix}encoder.layers.0.weight_v"].shape[0])
    mults, strides, k = [], [], 1
    while f"{prefix}encoder.layers.{k}.layers.4.weight_v" in state:
        out, _, kernel = state[f"{prefix}encoder.layers.{k}.layers.4.weight_v"].shape
        mults.append(int(out) // channels)
        strides.append(int(kernel) // 2)
        k += 1
    latent = int(state[f"{prefix}decoder.layers.0.weight_v"].shape[1])
    return {"channels": channels, "c_mults": mults, "strides": strides, "latent_dim": latent}


# ----------------------------------------------------------------------------------------- UDiT (model/udit.py)


class RotaryEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)))

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.arange(q.shape[-2], device=q.device, dtype=torch.float32)
        emb = torch.outer(t, self.inv_freq.float()).repeat(1, 2)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        return _rotate(q, cos, sin), _rotate(k, cos, sin)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.float().chunk(2, dim=-1)
    return (x.float() * cos + torch.cat((-x2, x1), dim=-1) * sin).type_as(x)


class Attention(nn.Module):
    """Self-attention with per-head LayerNorm on queries and keys and shared rotary embeddings."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_q, self.norm_k = nn.LayerNorm(dim // heads), nn.LayerNorm(dim // heads)
        self.proj = nn.Linear(dim, dim)
        self.rotary = RotaryEmbedding(dim // heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = (layer(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
                   for layer in (self.to_q, self.to_k, self.to_v))
        q, k = self.rotary(self.norm_q(q), self.norm_k(k))
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    """adaLN-Zero block; the decoder half first fuses its long skip (concat, LayerNorm, Linear)."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int, skip: bool) -> None:
        super().__init__()
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim, mlp_hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None

    def forward(self, x: torch.Tensor, c: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip_linear is not None:
            cat = torch.cat([x, skip], dim=-1)
            x = self.skip_linear(F.layer_norm(cat, cat.shape[-1:], eps=1e-6))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(_modulate(_norm(x), shift_msa, scale_msa))
        return x + gate_mlp.unsqueeze(1) * self.mlp(_modulate(_norm(x), shift_mlp, scale_mlp))


def _norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int, frequencies: int = 256) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequencies // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(0, half, dtype=torch.float32) / half).to(t.device)
        args = t[:, None].float() * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(_modulate(_norm(x), shift, scale))


class UDiT(nn.Module):
    """``UDiT`` with ``pos_method='none'`` (the release): depth // 2 blocks down, a middle block, depth // 2 up."""

    def __init__(self, input_dim: int, output_dim: int, timbre_dim: int, hidden: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        mlp_hidden = int(hidden * mlp_ratio)
        self.input_proj = nn.Linear(input_dim, hidden)
        self.t_embedder = TimestepEmbedder(hidden)
        self.timbre_proj = nn.Linear(timbre_dim, hidden)
        self.in_blocks = nn.ModuleList([DiTBlock(hidden, heads, mlp_hidden, False) for _ in range(depth // 2)])
        self.mid_block = DiTBlock(hidden, heads, mlp_hidden, False)
        self.out_blocks = nn.ModuleList([DiTBlock(hidden, heads, mlp_hidden, True) for _ in range(depth // 2)])
        self.final_layer = FinalLayer(hidden, output_dim)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, mixture: torch.Tensor,
                timbre: torch.Tensor) -> torch.Tensor:
        x = self.input_proj(torch.cat((x.transpose(2, 1), mixture.transpose(2, 1)), dim=-1))
        c = self.t_embedder(timestep.reshape(1).to(x.device)) + self.timbre_proj(timbre)
        skips = []
        for block in self.in_blocks:
            x = block(x, c)
            skips.append(x)
        x = self.mid_block(x, c)
        for block in self.out_blocks:
            x = block(x, c, skips.pop())
        return self.final_layer(x, c).transpose(2, 1)


def udit_shape(state: dict[str, torch.Tensor], prefix: str = "udit.") -> dict:
    hidden, input_dim = state[f"{prefix}input_proj.weight"].shape
    blocks = {int(k[len(prefix + "in_blocks."):].split(".")[0]) for k in state if k.startswith(prefix + "in_blocks.")}
    head_dim = int(state[f"{prefix}mid_block.attn.norm_q.weight"].shape[0])
    return {"input_dim": int(input_dim), "output_dim": int(state[f"{prefix}final_layer.linear.weight"].shape[0]),
            "timbre_dim": int(state[f"{prefix}timbre_proj.weight"].shape[1]), "hidden": int(hidden),
            "depth": 2 * len(blocks), "heads": int(hidden) // head_dim,
            "mlp_ratio": state[f"{prefix}mid_block.mlp.fc1.weight"].shape[0] / int(hidden)}


# --------------------------------------------------------------------------------- DDIM (diffusers 0.30, eta 0)


class DDIM:
    """diffusers' ``DDIMScheduler`` as config/SoloAudio.yaml sets it, for eta 0: the same float32 tensors and the
    same arithmetic in the same order."""

    def __init__(self, steps: int) -> None:
        betas = torch.linspace(BETA_START ** 0.5, BETA_END ** 0.5, TRAIN_STEPS, dtype=torch.float32) ** 2
        self.alphas_cumprod = torch.cumprod(1.0 - _zero_terminal_snr(betas), dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0)  # set_alpha_to_one
        self.stride = TRAIN_STEPS // steps
        # timestep_spacing="trailing"
        self.timesteps = torch.from_numpy(np.round(np.arange(TRAIN_STEPS, 0, -TRAIN_STEPS / steps)).astype(np.int64)
                                          - 1)

    def step(self, velocity: torch.Tensor, t: int, sample: torch.Tensor) -> torch.Tensor:
        alpha_t = self.alphas_cumprod[t]
        prev = t - self.stride
        alpha_prev = self.alphas_cumprod[prev] if prev >= 0 else self.final_alpha_cumprod
        beta_t = 1 - alpha_t
        original = (alpha_t ** 0.5) * sample - (beta_t ** 0.5) * velocity
        epsilon = (alpha_t ** 0.5) * velocity + (beta_t ** 0.5) * sample
        return alpha_prev ** 0.5 * original + (1 - alpha_prev) ** 0.5 * epsilon


def _zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2024, Algorithm 1, as diffusers writes it."""
    alphas_bar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt -= last
    alphas_bar_sqrt *= first / (first - last)
    alphas_bar = alphas_bar_sqrt ** 2
    return 1 - torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])


# ------------------------------------------------------------------------------------------------------ system


class SoloAudioSystem(nn.Module):
    """CLAP's text tower (``clap``: transformers' ``ClapTextModelWithProjection``), ``udit`` and ``vae``."""

    def __init__(self, clap: nn.Module, udit: dict, vae: dict) -> None:
        super().__init__()
        self.clap = clap
        self.udit = UDiT(**udit)
        self.vae = OobleckVAE(**vae)
        self.steps, self.seed, self.encode_seed = STEPS, SEED, ENCODE_SEED

    @property
    def sampler(self) -> dict:
        """The sampling settings an estimate depends on (run.json's ``sampler``)."""
        return {"solver": "ddim", "steps": self.steps, "seed": self.seed, "encode_seed": self.encode_seed}

    def timbre(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``ClapModel.get_text_features``: the projected pooled output, L2-normalised."""
        embeds = self.clap(input_ids=input_ids, attention_mask=attention_mask).text_embeds
        return F.normalize(embeds, dim=-1)

    def separate(self, wav: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] at 24 kHz -> [B, T]: each row sampled on its own with the seeded noise."""
        timbre = self.timbre(input_ids, attention_mask)
        rows = [self.separate_one(w[None], c[None]) for w, c in zip(wav, timbre, strict=True)]
        return torch.cat([F.pad(r, (0, wav.shape[-1] - r.shape[-1])) for r in rows])

    def separate_one(self, wav: torch.Tensor, timbre: torch.Tensor) -> torch.Tensor:
        """``sample_diffusion`` for one mixture [1, T] -> [1, 480 x frames]."""
        mixture = self.vae.encode(wav, torch.Generator().manual_seed(self.encode_seed))
        return self.vae.decode(self.sample(mixture, timbre))

    def sample(self, mixture: torch.Tensor, timbre: torch.Tensor) -> torch.Tensor:
        scheduler = DDIM(self.steps)
        noise = torch.randn(mixture.shape, generator=torch.Generator().manual_seed(self.seed))
        latent = noise.to(mixture.device)
        for t in scheduler.timesteps:
            velocity = self.udit(latent, t, mixture, timbre)
            latent = scheduler.step(velocity, int(t), latent)
        return latent


def tokenize(tokenizer, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(queries, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]
