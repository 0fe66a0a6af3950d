"""The dual-path RNN that AudioSep-DP puts on ResUNet30's bottleneck (apple-yinhan/TQ-SED ``LASS_codes/models/
FaSNet.py``, itself from yluo42/TAC), under the release's module names.

Each layer runs a bidirectional 2-layer GRU along the time axis, then one along the frequency axis, each followed by
a linear projection back to the channel width, a one-group GroupNorm and a residual sum; a PReLU + 1x1 convolution
closes the block.
"""

from __future__ import annotations

import torch
from torch import nn


class SingleRNN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        # the release always stacks 2 GRU layers and is always bidirectional in this use
        self.rnn = nn.GRU(input_size, hidden_size, 2, dropout=dropout, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(hidden_size * 2, input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.proj(out.reshape(-1, out.shape[2])).view(x.shape)


class DPRNN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.row_rnn = nn.ModuleList([SingleRNN(input_size, hidden_size, dropout) for _ in range(num_layers)])
        self.col_rnn = nn.ModuleList([SingleRNN(input_size, hidden_size, dropout) for _ in range(num_layers)])
        self.row_norm = nn.ModuleList([nn.GroupNorm(1, input_size, eps=1e-8) for _ in range(num_layers)])
        self.col_norm = nn.ModuleList([nn.GroupNorm(1, input_size, eps=1e-8) for _ in range(num_layers)])
        self.output = nn.Sequential(nn.PReLU(), nn.Conv2d(input_size, output_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, dim1, dim2): RNN along dim1 (time), then along dim2 (frequency)."""
        batch, _, dim1, dim2 = x.shape
        out = x
        for row_rnn, col_rnn, row_norm, col_norm in zip(self.row_rnn, self.col_rnn, self.row_norm, self.col_norm,
                                                        strict=True):
            rows = out.permute(0, 3, 2, 1).reshape(batch * dim2, dim1, -1)
            rows = row_rnn(rows).view(batch, dim2, dim1, -1).permute(0, 3, 2, 1)
            out = out + row_norm(rows.contiguous())
            cols = out.permute(0, 2, 3, 1).reshape(batch * dim1, dim2, -1)
            cols = col_rnn(cols).view(batch, dim1, dim2, -1).permute(0, 3, 1, 2)
            out = out + col_norm(cols.contiguous())
        return self.output(out)
