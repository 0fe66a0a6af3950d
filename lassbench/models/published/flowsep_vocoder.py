"""FlowSep's vocoder, module for module: ``BigVGAN`` of ``src/bigvgan/model.py`` (anti-aliased SnakeBeta activations,
160 samples per mel frame, final tanh)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lassbench.models.published.activations import SnakeBeta

UPSAMPLE_RATES = [5, 4, 2, 2, 2]  # src/bigvgan/config.json (not recorded in the weights)
RESBLOCK_DILATIONS = [[1, 3, 5], [1, 3, 5], [1, 3, 5]]


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
