"""RMS normalisation as Meta's released code writes it (SAM Audio's DiT, ``sam_audio/model/transformer.py``, and
perception_models' PE-AV transformer, ``core/transformer.py``): computed in float32, then cast back to the input's
dtype, so half-precision inputs round as the release rounds them."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).type_as(x)
