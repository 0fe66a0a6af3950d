"""Oracle masks: the best an STFT magnitude mask (with the mixture's phase) can do, given the reference target.

``irm``: ideal ratio mask sqrt(|S|² / (|S|² + |N|²)) with N = X - S; ``ibm``: ideal binary mask 1[|S| > |N|].
Both use the same STFT as the models they bound.
"""

from __future__ import annotations

import torch
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch
from lassbench.models.resunet import STFT


class OracleMask(nn.Module):
    query_type = "oracle"

    def __init__(self, kind: str, n_fft: int = 512, hop: int = 160) -> None:
        super().__init__()
        if kind not in ("irm", "ibm"):
            raise ValueError(kind)
        self.kind = kind
        self.stft = STFT(n_fft, hop)

    def forward(self, mixture: torch.Tensor, batch: QueryBatch) -> torch.Tensor:
        if batch.targets is None:
            raise LassbenchError(f"oracle-{self.kind} needs the reference targets (it is an upper bound, not a model)")
        mix = self.stft(mixture)
        target = self.stft(batch.targets.to(mixture))
        noise = (mix - target).abs() ** 2
        power = target.abs() ** 2
        if self.kind == "irm":
            mask = torch.sqrt(power / (power + noise).clamp_min(1e-12))
        else:
            mask = (power > noise).to(mixture.dtype)
        return self.stft.inverse(mix * mask, mixture.shape[-1])
