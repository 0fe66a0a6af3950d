"""AudioSep's separator, ResUNet30 (Audio-AGI/AudioSep ``models/resunet.py``), under the release's module names.

The same code, with STFT 1024 / 160, is the DCASE 2024 Task 9 baseline; AudioSep-DP (apple-yinhan/TQ-SED
``LASS_codes/models/resunet.py``) adds a dual-path RNN on the bottleneck. Every FiLM layer is a bias
(``nn.Linear(condition, C)``) named by its path joined with ``->``; the decoders' ``bn2`` and ``->beta2`` layers
exist in the release and its checkpoints but are never used in its forward pass, so they are kept (and loaded)
unused here too. The STFT is ``torch.stft``/``torch.istft`` with the periodic Hann window, which equals torchlibrosa's
conv-based STFT/ISTFT that the release uses (the equivalence test runs the release itself).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lassbench.models.published.dprnn import DPRNN

K = 3  # output channels per source: magnitude mask, mask phase (real, imag)


class ConvBlockRes(nn.Module):
    def __init__(self, cin: int, cout: int, momentum: float = 0.01) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, momentum=momentum)
        self.bn2 = nn.BatchNorm2d(cout, momentum=momentum)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.is_shortcut = cin != cout
        if self.is_shortcut:
            self.shortcut = nn.Conv2d(cin, cout, 1)
        self.has_film = True

    def forward(self, x: torch.Tensor, film: dict) -> torch.Tensor:
        # in place, as the release: the sum is a fresh tensor, and a second copy of every feature map costs time
        out = self.conv1(F.leaky_relu_(self.bn1(x) + film["beta1"], 0.01))
        out = self.conv2(F.leaky_relu_(self.bn2(out) + film["beta2"], 0.01))
        return (self.shortcut(x) if self.is_shortcut else x) + out


class EncoderBlockRes1B(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: tuple[int, int]) -> None:
        super().__init__()
        self.conv_block1 = ConvBlockRes(cin, cout)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, film: dict) -> tuple[torch.Tensor, torch.Tensor]:
        encoder = self.conv_block1(x, film["conv_block1"])
        return F.avg_pool2d(encoder, kernel_size=self.downsample), encoder


class DecoderBlockRes1B(nn.Module):
    def __init__(self, cin: int, cout: int, upsample: tuple[int, int], momentum: float = 0.01) -> None:
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(cin, cout, kernel_size=upsample, stride=upsample, bias=False)
        self.bn1 = nn.BatchNorm2d(cin, momentum=momentum)
        self.conv_block2 = ConvBlockRes(cout * 2, cout)
        self.bn2 = nn.BatchNorm2d(cin, momentum=momentum)  # unused by the release's forward; in its checkpoints
        self.has_film = True

    def forward(self, x: torch.Tensor, skip: torch.Tensor, film: dict) -> torch.Tensor:
        x = self.conv1(F.leaky_relu_(self.bn1(x) + film["beta1"], 0.01))
        return self.conv_block2(torch.cat((x, skip), dim=1), film["conv_block2"])


class ResUNet30_Base(nn.Module):  # noqa: N801 - the release's class name
    CHANNELS = (32, 64, 128, 256, 384, 384)

    def __init__(self, n_fft: int, hop: int, dprnn: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        self.bn0 = nn.BatchNorm2d(n_fft // 2 + 1, momentum=0.01)
        self.pre_conv = nn.Conv2d(1, 32, 1)
        c = self.CHANNELS
        ins = (32, *c[:-1])
        for i, (cin, cout) in enumerate(zip(ins, c, strict=True), start=1):
            self.add_module(f"encoder_block{i}", EncoderBlockRes1B(cin, cout, (1, 2) if i == 6 else (2, 2)))
        self.conv_block7a = EncoderBlockRes1B(c[5], c[5], (1, 1))
        decoder = [(c[5], c[5], (1, 2)), (c[5], c[4], (2, 2)), (c[4], c[3], (2, 2)), (c[3], c[2], (2, 2)),
                   (c[2], c[1], (2, 2)), (c[1], c[0], (2, 2))]
        for i, (cin, cout, up) in enumerate(decoder, start=1):
            self.add_module(f"decoder_block{i}", DecoderBlockRes1B(cin, cout, up))
        self.after_conv = nn.Conv2d(32, K, 1)
        if dprnn is not None:  # AudioSep-DP: (num_layers, hidden)
            self.DPRNN = nn.Sequential(DPRNN(c[5], dprnn[1], c[5], num_layers=dprnn[0]))

    def forward(self, mixture: torch.Tensor, film: dict) -> torch.Tensor:
        """mixture (B, L) -> estimate (B, L)."""
        length = mixture.shape[-1]
        stft = torch.stft(mixture, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True).transpose(1, 2)[:, None]  # (B, 1, T, F)
        real, imag = stft.real, stft.imag
        mag = torch.clamp(real ** 2 + imag ** 2, 1e-10, np.inf) ** 0.5
        cos_in, sin_in = real / mag, imag / mag
        x = self.bn0(mag.transpose(1, 3)).transpose(1, 3)
        frames = x.shape[2]
        x = F.pad(x, (0, 0, 0, -frames % 32))[..., :-1]  # pad time to a multiple of 32; 1025 -> 1024 bins
        x = self.pre_conv(x)
        skips = []
        for i in range(1, 7):
            x, skip = getattr(self, f"encoder_block{i}")(x, film[f"encoder_block{i}"])
            skips.append(skip)
        x, _ = self.conv_block7a(x, film["conv_block7a"])
        if hasattr(self, "DPRNN"):
            x = self.DPRNN(x)
        for i in range(1, 7):
            x = getattr(self, f"decoder_block{i}")(x, skips[-i], film[f"decoder_block{i}"])
        x = F.pad(self.after_conv(x), (0, 1))[:, :, :frames, :]
        return self._to_wav(x, mag, cos_in, sin_in, length)

    def _to_wav(self, x: torch.Tensor, mag: torch.Tensor, cos_in: torch.Tensor, sin_in: torch.Tensor,
                length: int) -> torch.Tensor:
        mask_mag = torch.sigmoid(x[:, 0])
        mask_real, mask_imag = torch.tanh(x[:, 1]), torch.tanh(x[:, 2])
        norm = torch.clamp((mask_real ** 2 + mask_imag ** 2) ** 0.5, 1e-10, np.inf)
        mask_cos, mask_sin = mask_real / norm, mask_imag / norm
        out_cos = cos_in[:, 0] * mask_cos - sin_in[:, 0] * mask_sin
        out_sin = sin_in[:, 0] * mask_cos + cos_in[:, 0] * mask_sin
        out_mag = F.relu_(mag[:, 0] * mask_mag)
        spec = torch.complex(out_mag * out_cos, out_mag * out_sin).transpose(1, 2)  # (B, F, T)
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=length)


def film_meta(module: nn.Module) -> dict:
    """``get_film_meta``: the per-block bias widths, in the release's pre-order (which fixes the layer names)."""
    meta: dict = {}
    if getattr(module, "has_film", False):
        meta["beta1"] = module.bn1.num_features
        meta["beta2"] = module.bn2.num_features
    for name, child in module.named_children():
        child_meta = film_meta(child)
        if child_meta:
            meta[name] = child_meta
    return meta


class FiLM(nn.Module):
    """One ``nn.Linear(condition, C)`` per bias, registered as ``a->b->beta1`` like the release."""

    def __init__(self, meta: dict, condition_size: int) -> None:
        super().__init__()
        self.meta = meta
        for name, width in _flatten(meta):
            self.add_module(name, nn.Linear(condition_size, width))

    def forward(self, condition: torch.Tensor) -> dict:
        return self._nest(self.meta, condition, [])

    def _nest(self, meta: dict, condition: torch.Tensor, path: list[str]) -> dict:
        out = {}
        for key, value in meta.items():
            if isinstance(value, dict):
                out[key] = self._nest(value, condition, [*path, key])
            else:
                out[key] = getattr(self, "->".join([*path, key]))(condition)[:, :, None, None]
        return out


def _flatten(meta: dict, path: tuple[str, ...] = ()) -> list[tuple[str, int]]:
    items = []
    for key, value in meta.items():
        if isinstance(value, dict):
            items.extend(_flatten(value, (*path, key)))
        else:
            items.append(("->".join((*path, key)), value))
    return items


class ResUNet30(nn.Module):
    def __init__(self, n_fft: int, hop: int, condition_size: int = 512, dprnn: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.base = ResUNet30_Base(n_fft, hop, dprnn)
        self.film = FiLM(film_meta(self.base), condition_size)

    def forward(self, mixture: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.base(mixture, self.film(condition))

    @torch.no_grad()
    def chunk_inference(self, mixture: torch.Tensor, condition: torch.Tensor, rate: int = 32000) -> torch.Tensor:
        """AudioSep's long-audio inference (``ResUNet30.chunk_inference``): 5 s windows advancing by 3 s, keeping
        each window's middle 3 s (the first keeps its first 4 s, the last everything after its first second).
        ``rate`` is 32000 in the release whatever the model's rate (the 16 kHz baseline thus uses 10 s windows)."""
        film = self.film(condition)
        left, centre, right = rate, 3 * rate, rate
        window = left + centre + right
        length = mixture.shape[-1]
        if length <= window:  # the release returns silence here (its loop never runs); one window is the intent
            return self.base(mixture, film)
        out = torch.zeros_like(mixture)
        start = 0
        while start + window < length:
            chunk = self.base(mixture[..., start:start + window], film)
            if start == 0:
                out[..., : window - right] = chunk[..., :-right]
            else:
                out[..., start + left:start + window - right] = chunk[..., left:-right]
            start += centre
            if start < length:  # the release also separates the next (possibly shorter) window straight away
                chunk = self.base(mixture[..., start:start + window], film)
                out[..., start + left:start + chunk.shape[-1]] = chunk[..., left:]
        return out


def dprnn_shape(state: dict[str, torch.Tensor], prefix: str) -> tuple[int, int] | None:
    """(num_layers, hidden) of the DPRNN in a state dict, or None when it has none."""
    rows = {k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)}
    if not rows:
        return None
    hidden = state[f"{prefix}0.rnn.weight_hh_l0"].shape[1]
    return len(rows), int(hidden)

