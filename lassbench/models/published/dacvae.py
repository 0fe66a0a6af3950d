"""DAC-VAE, the audio codec of SAM Audio, module for module as ``sam_audio/model/codec.py`` runs it.

Official code: facebookresearch/dacvae (``dacvae/model/dacvae.py``, ``dacvae/nn/layers.py``,
``dacvae/nn/bottleneck.py``) wrapped by facebookresearch/sam-audio ``DACVAE``. What SAM Audio uses of it:

* ``encode``: the waveform reflect-padded to a whole number of frames (``_pad``), the convolutional encoder (Snake
  residual units, strided convolutions), then the VAE bottleneck's ``in_proj`` and its *mean* half only — the codec
  features are deterministic (the posterior is never sampled);
* ``decode``: the bottleneck's ``out_proj`` and the decoder (:class:`DACVAE`; the SAM Audio judge holds the codec
  without it, :class:`DACVAEEncoder`). The decoder ends in the release's audio watermark: the
  decoded signal is ``tanh(conv(snake(x)))`` plus a quarter of a watermark residual computed from a 16-bit message
  by a small LSTM network running at 1/320 of the sample rate. When no message is given the official decoder draws
  one with ``torch.randint`` from torch's global generator; :meth:`DACVAE.decode` takes it as an argument (SAM Audio's
  separator draws it from its seeded generator, see :mod:`lassbench.models.published.sam_audio`).

Weight-normalised convolutions keep the release's ``weight_g`` / ``weight_v`` and recompute the weight at every call,
as ``torch.nn.utils.weight_norm``'s hook does. The watermark network's widths are fixed by the release (32 channels
at the audio rate, 512 at the bottom, messages of 16 bits, down-sampling 8-5-4-2), so the decoder is always
1,536 channels wide with four blocks; only the encoder, the latent and the strides vary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

WM_RATES = (8, 5, 4, 2)  # dacvae DAC.__init__: wm_rates default
WM_CHANNELS, WM_HIDDEN, WM_LATENT, WM_BITS = 32, 512, 128, 16  # Decoder -> Watermarker(...) as dacvae builds it
WM_ALPHA = WM_CHANNELS / WM_LATENT  # Decoder.alpha, the watermark residual's weight
SPLIT = 3  # DecoderBlock downsampling_factor: the watermark path is a third as wide as the decoder


class Snake1d(nn.Module):
    """``x + 1 / (alpha + 1e-9) * sin(alpha x)^2`` per channel, as dacvae's scripted ``snake``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(shape[0], shape[1], -1)
        x = x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)
        return x.reshape(shape)


class NormConv1d(nn.Module):
    """dacvae's ``NormConv1d``: weight-normalised (``weight_g``, ``weight_v``) or plain (``weight``); ``pad_mode``
    "none" pads inside the convolution, "auto" pads before it (causal: all on the left) so every input sample has
    a whole output frame."""

    transpose = False

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1,
                 norm: str = "weight_norm", causal: bool = False, pad_mode: str = "none") -> None:
        super().__init__()
        shape = (cin, cout, kernel) if self.transpose else (cout, cin, kernel)
        if norm == "weight_norm":
            self.weight_g = nn.Parameter(torch.ones(shape[0], 1, 1))
            self.weight_v = nn.Parameter(torch.zeros(shape))
        else:
            self.weight = nn.Parameter(torch.zeros(shape))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.norm, self.causal, self.pad_mode = norm, causal, pad_mode

    def current_weight(self) -> torch.Tensor:
        if self.norm == "weight_norm":
            return torch._weight_norm(self.weight_v, self.weight_g, 0)
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_mode == "none":
            pad = (self.kernel - self.stride) * self.dilation // 2
            return F.conv1d(x, self.current_weight(), self.bias, self.stride, pad, self.dilation)
        return F.conv1d(self._auto_pad(x), self.current_weight(), self.bias, self.stride, 0, self.dilation)

    def _auto_pad(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        effective = (self.kernel - 1) * self.dilation + 1
        total = effective - self.stride
        frames = (length - effective + total) / self.stride + 1
        extra = (math.ceil(frames) - 1) * self.stride + (self.kernel - total) - length
        if self.causal:
            return F.pad(x, (total, extra))
        right = extra // 2
        return F.pad(x, (total - right, right + extra))


class NormConvTranspose1d(NormConv1d):
    """dacvae's ``NormConvTranspose1d``: "none" pads inside (odd strides with an output padding), "auto" trims the
    ``kernel - stride`` extra samples afterwards (causal: all from the end)."""

    transpose = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_mode == "none":
            padding, output_padding = (self.stride + 1) // 2, 1 if self.stride % 2 else 0
            return F.conv_transpose1d(x, self.current_weight(), self.bias, self.stride, padding, output_padding,
                                      1, self.dilation)
        y = F.conv_transpose1d(x, self.current_weight(), self.bias, self.stride, 0, 0, 1, self.dilation)
        total = self.kernel - self.stride
        if self.causal:
            return y[..., : y.shape[-1] - total]
        right = total // 2
        return y[..., total - right: y.shape[-1] - right]


class ResidualUnit(nn.Module):
    """Two convolutions (kernel, then 1) after activations, plus the input. Snake units are the codec's own; the
    ELU units (half width, causal, plain convolutions) belong to the watermark path."""

    def __init__(self, dim: int, kernel: int = 7, dilation: int = 1, act: str = "Snake", compress: int = 1,
                 pad_mode: str = "none", causal: bool = False, norm: str = "weight_norm",
                 true_skip: bool = False) -> None:
        super().__init__()
        hidden = dim // compress
        layers: list[nn.Module] = []
        for i, (size, dil) in enumerate(((kernel, dilation), (1, 1))):
            cin, cout = (dim, hidden) if i == 0 else (hidden, dim)
            layers += [Snake1d(dim) if act == "Snake" else nn.ELU(alpha=1.0),
                       NormConv1d(cin, cout, size, dilation=dil, norm=norm, causal=causal, pad_mode=pad_mode)]
        self.block = nn.Sequential(*layers)
        self.true_skip = true_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if not self.true_skip:
            pad = (x.shape[-1] - y.shape[-1]) // 2
            if pad > 0:
                x = x[..., pad:-pad]
        return y + x


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, stride: int) -> None:
        super().__init__()
        half = dim // 2
        self.block = nn.Sequential(ResidualUnit(half, dilation=1), ResidualUnit(half, dilation=3),
                                   ResidualUnit(half, dilation=9), Snake1d(half),
                                   NormConv1d(half, dim, 2 * stride, stride=stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Encoder(nn.Module):
    def __init__(self, d_model: int, strides: list[int], d_latent: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [NormConv1d(1, d_model, 7)]
        for stride in strides:
            d_model *= 2
            layers.append(EncoderBlock(d_model, stride))
        layers += [Snake1d(d_model), NormConv1d(d_model, d_latent, 3)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DecoderBlock(nn.Module):
    """The release's twelve layers in one list (their indices are the file's key names). The codec's path runs
    layers 0, 1, 4, 5, 8, 9; the watermark path borrows the rest: :meth:`wm_down` (2, 3, 6: up-sampling in time
    from the bottom of the watermark network) and :meth:`wm_up` (7, 10, 11: towards it). dacvae calls them
    ``downsample_group`` and ``upsample_group``."""

    def __init__(self, input_dim: int, output_dim: int, stride: int, wm_stride: int) -> None:
        super().__init__()
        wm_in, wm_out = input_dim // SPLIT, output_dim // SPLIT
        elu_unit = dict(kernel=3, act="ELU", compress=2, causal=True, pad_mode="auto", norm="none", true_skip=True)
        self.block = nn.ModuleList([
            Snake1d(input_dim), NormConvTranspose1d(input_dim, output_dim, 2 * stride, stride=stride),
            nn.ELU(alpha=1.0), NormConvTranspose1d(wm_in, wm_out, 2 * wm_stride, stride=wm_stride, norm="none",
                                                   causal=True, pad_mode="auto"),
            ResidualUnit(output_dim, dilation=1), ResidualUnit(output_dim, dilation=3),
            ResidualUnit(wm_out, **elu_unit), ResidualUnit(wm_out, **elu_unit),
            ResidualUnit(output_dim, dilation=9), nn.Identity(),
            nn.ELU(alpha=1.0), NormConv1d(wm_out, wm_in, 2 * wm_stride, stride=wm_stride, norm="none", causal=True,
                                          pad_mode="auto"),
        ])

    def _run(self, x: torch.Tensor, indices: tuple[int, ...]) -> torch.Tensor:
        for i in indices:
            x = self.block[i](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, (0, 1, 4, 5, 8, 9))

    def wm_down(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, (2, 3, 6))

    def wm_up(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, (7, 10, 11))


class LSTMBlock(nn.Module):
    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)


class MsgProcessor(nn.Module):
    """Adds the sum of one learned vector per message bit (``msg_processor``: 2 rows per bit) to every frame."""

    def __init__(self, bits: int, hidden: int) -> None:
        super().__init__()
        self.msg_processor = nn.Embedding(2 * bits, hidden)

    def forward(self, hidden: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        indices = 2 * torch.arange(message.shape[-1]).to(hidden.device)
        indices = (indices.repeat(message.shape[0], 1) + message).long()
        offsets = self.msg_processor(indices).sum(dim=-2)
        return hidden + offsets.unsqueeze(-1).repeat(1, 1, hidden.shape[2])


class _Stage(nn.Module):
    """The watermark encoder's and decoder's ``pre`` and ``post`` Sequentials (their key names)."""

    def __init__(self, pre: list[nn.Module], post: list[nn.Module]) -> None:
        super().__init__()
        self.pre, self.post = nn.Sequential(*pre), nn.Sequential(*post)


class Watermarker(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.encoder_block = _Stage(
            [Snake1d(dim), NormConv1d(dim, 1, 7), nn.Tanh(),
             NormConv1d(1, WM_CHANNELS, 7, norm="none", causal=True, pad_mode="auto")],
            [LSTMBlock(WM_HIDDEN, 2), nn.ELU(alpha=1.0),
             NormConv1d(WM_HIDDEN, WM_LATENT, 7, norm="none", causal=True, pad_mode="auto")])
        self.msg_processor = MsgProcessor(WM_BITS, WM_LATENT)
        self.decoder_block = _Stage(
            [NormConv1d(WM_LATENT, WM_HIDDEN, 7, norm="none", causal=True, pad_mode="auto"), LSTMBlock(WM_HIDDEN, 2)],
            [nn.ELU(alpha=1.0), NormConv1d(WM_CHANNELS, 1, 7, norm="none", causal=True, pad_mode="auto")])


class Decoder(nn.Module):
    def __init__(self, latent: int, channels: int, rates: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [NormConv1d(latent, channels, 7)]
        layers += [DecoderBlock(channels // 2 ** i, channels // 2 ** (i + 1), stride, wm_stride)
                   for i, (stride, wm_stride) in enumerate(zip(rates, WM_RATES, strict=False))]
        self.model = nn.ModuleList(layers)
        self.wm_model = Watermarker(channels // 2 ** len(rates))

    def forward(self, x: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        for layer in self.model:
            x = layer(x)
        return self.watermark(x, message)

    def watermark(self, x: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        """``Decoder.watermark`` (blending "linear"): the signal ``tanh(conv(snake(x)))`` plus the residual that
        carries ``message`` ([B, 16] of 0 / 1)."""
        wm = self.wm_model
        h = wm.encoder_block.pre(x)
        for block in reversed(self.model[1:]):
            h = block.wm_up(h)
        h = wm.encoder_block.post(h)
        h = wm.msg_processor(h, message.to(x.device))
        h = wm.decoder_block.pre(h)
        for block in self.model[1:]:
            h = block.wm_down(h)
        h = wm.decoder_block.post(h)
        return wm.encoder_block.pre[:3](x) + WM_ALPHA * h


class Bottleneck(nn.Module):
    """``VAEBottleneck``: ``in_proj`` gives the posterior's mean and scale, ``out_proj`` maps a latent back."""

    def __init__(self, latent: int, codebook_dim: int) -> None:
        super().__init__()
        self.in_proj = NormConv1d(latent, 2 * codebook_dim, 1)
        self.out_proj = NormConv1d(codebook_dim, latent, 1)


class DACVAEEncoder(nn.Module):
    """``DACVAEEncoder`` of ``sam_audio/model/codec.py``: the codec's ``encoder`` and ``quantizer`` (the bottleneck)
    without the decoder, as the SAM Audio judge holds it."""

    def __init__(self, encoder_dim: int, encoder_rates: list[int], latent_dim: int, codebook_dim: int,
                 sample_rate: int) -> None:
        super().__init__()
        self.encoder = Encoder(encoder_dim, encoder_rates, latent_dim)
        self.quantizer = Bottleneck(latent_dim, codebook_dim)
        self.hop_length = math.prod(encoder_rates)
        self.sample_rate = sample_rate

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, 1, T] -> the posterior means [B, codebook_dim, ceil(T / hop)]."""
        length = wav.shape[-1]
        if length % self.hop_length:
            wav = F.pad(wav, (0, self.hop_length - length % self.hop_length), "reflect")
        mean, _ = self.quantizer.in_proj(self.encoder(wav)).chunk(2, dim=1)
        return mean


class DACVAE(DACVAEEncoder):
    """SAM Audio's ``audio_codec``: ``encoder``, ``quantizer`` (the bottleneck), ``decoder``."""

    def __init__(self, encoder_dim: int, encoder_rates: list[int], latent_dim: int, decoder_dim: int,
                 decoder_rates: list[int], codebook_dim: int, sample_rate: int) -> None:
        super().__init__(encoder_dim, encoder_rates, latent_dim, codebook_dim, sample_rate)
        self.decoder = Decoder(latent_dim, decoder_dim, decoder_rates)

    def decode(self, features: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        """[B, codebook_dim, frames] -> [B, 1, frames x hop], watermarked with ``message`` [B, 16]."""
        return self.decoder(self.quantizer.out_proj(features), message)


def check_decoder_width(decoder_dim: int, decoder_rates: list[int]) -> str | None:
    """Why these widths cannot be the release's decoder (its watermark network's widths are fixed), or None."""
    if len(decoder_rates) != len(WM_RATES) or decoder_dim // 2 ** len(decoder_rates) != SPLIT * WM_CHANNELS \
            or decoder_dim // SPLIT != WM_HIDDEN:
        return (f"decoder_dim {decoder_dim} with {len(decoder_rates)} rates: the codec's watermark network needs "
                f"{SPLIT * WM_HIDDEN} channels and {len(WM_RATES)} rates")
    return None
