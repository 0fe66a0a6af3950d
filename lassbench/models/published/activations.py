"""Activations shared by released systems: BigVGAN's SnakeBeta (FlowSep's vocoder, ``src/bigvgan/activations.py``)
and stable-audio-tools' SnakeBeta (SoloAudio's VAE) are the same function with log-scale parameters."""

from __future__ import annotations

import torch
from torch import nn


class SnakeBeta(nn.Module):
    """``x + 1 / (e^beta + 1e-9) * sin(e^alpha x)^2`` (log-scale alpha and beta, per channel)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(self.alpha.unsqueeze(0).unsqueeze(-1))
        beta = torch.exp(self.beta.unsqueeze(0).unsqueeze(-1))
        return x + (1.0 / (beta + 0.000000001)) * torch.pow(torch.sin(x * alpha), 2)
