"""The separation backbone: STFT magnitude masking with a FiLM-conditioned residual U-Net (LASS-Net's design).

The network sees the log-magnitude spectrogram of the mixture and predicts a sigmoid mask in [0, 1]; the estimate is
mask x mixture magnitude with the mixture's phase, back through the inverse STFT. Every residual block is modulated by
the condition vector (a projected text embedding, or a class embedding) through FiLM. LASS-Net's released FiLM adds a
per-channel bias only (``film="bias"``); ``"scale_bias"`` also learns a multiplicative scale, which lets a tiny
network switch channels off per query and is our default for the CPU-sized ``tiny`` models.

Normalisation is GroupNorm (per example), not BatchNorm, so that data-parallel training over several processes gives
exactly the gradients of one process on the concatenated batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BackboneConfig:
    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 160
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    cond_dim: int = 128  # width of the condition vector fed to FiLM
    film: str = "scale_bias"  # "bias" (LASS-Net release) or "scale_bias"
    blocks_per_level: int = 1


class STFT(nn.Module):
    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> complex (B, F, frames)."""
        return torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=length)


class FiLM(nn.Module):
    """Per-channel modulation from the condition vector: x * (1 + gamma) + beta (or + beta alone)."""

    def __init__(self, cond_dim: int, channels: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        out = channels * (2 if mode == "scale_bias" else 1)
        self.net = nn.Sequential(nn.Linear(cond_dim, cond_dim), nn.ReLU(), nn.Linear(cond_dim, out))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        params = self.net(cond)[:, :, None, None]
        if self.mode == "scale_bias":
            gamma, beta = params.chunk(2, dim=1)
            return x * (1 + gamma) + beta
        return x + params


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int, film: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(1, c_out)
        self.film = FiLM(cond_dim, c_out, film)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(1, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.film(self.norm1(self.conv1(x)), cond), 0.01)
        h = self.norm2(self.conv2(h))
        return F.leaky_relu(h + self.skip(x), 0.01)


class ConditionedResUNet(nn.Module):
    """Mixture waveform + condition vector -> estimated target waveform (magnitude mask, mixture phase)."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        freq_bins = config.n_fft // 2 + 1
        self.stft = STFT(config.n_fft, config.hop)
        # learnable per-frequency affine on the log-magnitude: input normalisation without batch statistics
        self.in_scale = nn.Parameter(torch.ones(freq_bins))
        self.in_shift = nn.Parameter(torch.zeros(freq_bins))
        self.stem = nn.Conv2d(1, c[0], 3, padding=1)
        self.encoder = nn.ModuleList(self._level(c[i - 1] if i else c[0], c[i]) for i in range(len(c)))
        self.bottleneck = self._level(c[-1], c[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(c[i], c[i], 2, stride=2) for i in reversed(range(len(c))))
        self.decoder = nn.ModuleList(
            self._level(2 * c[i], c[i - 1] if i else c[0]) for i in reversed(range(len(c)))
        )
        self.head = nn.Conv2d(c[0], 1, 1)

    def _level(self, c_in: int, c_out: int) -> nn.ModuleList:
        cfg = self.config
        blocks = [ResBlock(c_in, c_out, cfg.cond_dim, cfg.film)]
        blocks += [ResBlock(c_out, c_out, cfg.cond_dim, cfg.film) for _ in range(cfg.blocks_per_level - 1)]
        return nn.ModuleList(blocks)

    def mask(self, magnitude: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, F, frames) magnitude -> (B, F, frames) mask in [0, 1]."""
        bins, frames = magnitude.shape[1:]
        x = torch.log(magnitude.clamp_min(1e-5))
        x = x * self.in_scale[:, None] + self.in_shift[:, None]
        x = _pad_to_multiple(x[:, None], 2 ** len(self.encoder))
        x = self.stem(x)
        skips = []
        for level in self.encoder:
            x = _run_level(level, x, cond)
            skips.append(x)
            x = F.avg_pool2d(x, 2)
        x = _run_level(self.bottleneck, x, cond)
        for up, level, skip in zip(self.up, self.decoder, reversed(skips), strict=True):
            x = _run_level(level, torch.cat([up(x), skip], dim=1), cond)
        return torch.sigmoid(self.head(x))[:, 0, :bins, :frames]

    def forward(self, mixture: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, T) mixture, (B, cond_dim) condition -> (B, T) estimate."""
        spec = self.stft(mixture)
        mask = self.mask(spec.abs(), cond)
        return self.stft.inverse(spec * mask, mixture.shape[-1])


def _run_level(level: nn.ModuleList, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    for block in level:
        x = block(x, cond)
    return x


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    pad_f = (-x.shape[-2]) % multiple
    pad_t = (-x.shape[-1]) % multiple
    return F.pad(x, (0, pad_t, 0, pad_f), mode="replicate") if pad_f or pad_t else x
