"""LASS-Net as released (liuxubo717/LASS ``model/``), under the release's module names so its checkpoint loads as is.

What makes it differ from lassbench's own ``lassnet``: BatchNorm pre-activation residual blocks whose FiLM is a bias
from a two-layer MLP (Linear(256, 2C)-ReLU-Linear(2C, C)-ReLU) after each convolution and on the shortcut; 3x3
stride-2 transposed-convolution upsampling pruned by one time frame; linear magnitude input with the last two
frequency bins dropped; a sigmoid mask on the mixture magnitude, resynthesised with the mixture phase by the
release's own conv-based STFT (1024 / 512 at 32 kHz). The text side is bert-mini's [CLS] for the query tokenised
with a hand-prepended "[CLS] " and no [SEP], then Linear(256, 256) + ReLU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 32000
N_FFT = 1024
HOP = 512
CHANNELS = (32, 64, 128, 256, 384, 384)


class Film(nn.Module):
    """Bias-only FiLM (``model/film.py``)."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.linear = nn.Sequential(nn.Linear(cond_dim, channels * 2), nn.ReLU(), nn.Linear(channels * 2, channels),
                                    nn.ReLU())

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return x + self.linear(cond)[..., None, None]


class ConvBlockResCond(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.film1 = Film(cout, cond_dim)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.film2 = Film(cout, cond_dim)
        self.is_shortcut = cin != cout
        if self.is_shortcut:
            self.shortcut = nn.Conv2d(cin, cout, 1)
            self.film_res = Film(cout, cond_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # in place, as the release (model/modules.py): the normalised map is a fresh tensor
        out = self.film1(self.conv1(F.leaky_relu_(self.bn1(x), 0.01)), cond)
        out = self.film2(self.conv2(F.leaky_relu_(self.bn2(out), 0.01)), cond)
        residual = self.film_res(self.shortcut(x), cond) if self.is_shortcut else x
        return residual + out


class EncoderBlockRes2BCond(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int) -> None:
        super().__init__()
        self.conv_block1 = ConvBlockResCond(cin, cout, cond_dim)
        self.conv_block2 = ConvBlockResCond(cout, cout, cond_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoder = self.conv_block2(self.conv_block1(x, cond), cond)
        return F.avg_pool2d(encoder, kernel_size=(2, 2)), encoder


class DecoderBlockRes2BCond(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv_block2 = ConvBlockResCond(cout * 2, cout, cond_dim)
        self.conv_block3 = ConvBlockResCond(cout, cout, cond_dim)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.relu_(self.bn1(x)))[:, :, :-1, :]  # 2n+1 -> 2n frames; frequency 2n+1 fits the skip
        x = torch.cat((x, skip), dim=1)
        return self.conv_block3(self.conv_block2(x, cond), cond)


class UNetRes_FiLM(nn.Module):  # noqa: N801 - the release's class name
    """``model/resunet_film.py`` (the release conditions encoder and decoder on the same vector)."""

    def __init__(self, cond_dim: int = 256) -> None:
        super().__init__()
        c = CHANNELS
        ins = (1, *c[:-1])
        for i, (cin, cout) in enumerate(zip(ins, c, strict=True), start=1):
            self.add_module(f"encoder_block{i}", EncoderBlockRes2BCond(cin, cout, cond_dim))
        self.conv_block7 = ConvBlockResCond(c[-1], c[-1], cond_dim)
        decoder = [(c[5], c[5]), (c[5], c[4]), (c[4], c[3]), (c[3], c[2]), (c[2], c[1]), (c[1], c[0])]
        for i, (cin, cout) in enumerate(decoder, start=1):
            self.add_module(f"decoder_block{i}", DecoderBlockRes2BCond(cin, cout, cond_dim))
        self.after_conv_block1 = ConvBlockResCond(c[0], c[0], cond_dim)
        self.after_conv2 = nn.Conv2d(c[0], 1, 1)

    def forward(self, spec: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """spec (B, 1, T, 513) -> mask logits (B, 1, T, 513)."""
        frames = spec.shape[2]
        ratio = 2 ** len(CHANNELS)
        x = F.pad(spec, (0, 0, 0, -frames % ratio))[..., :-2]  # drop the last 2 bins: 511 halves down to 7
        skips = []
        for i in range(1, 7):
            x, skip = getattr(self, f"encoder_block{i}")(x, cond)
            skips.append(skip)
        x = self.conv_block7(x, cond)
        for i in range(1, 7):
            x = getattr(self, f"decoder_block{i}")(x, skips[-i], cond)
        x = self.after_conv2(self.after_conv_block1(x, cond))
        return F.pad(x, (0, 2))[:, :, :frames, :]


class ReleaseSTFT(nn.Module):
    """``utils/stft.py``: conv-based STFT with a pseudo-inverse synthesis basis and window-sum normalisation."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP) -> None:
        from scipy.signal import get_window  # on use: scipy.signal costs every `lassbench run` ~0.8 s of start-up

        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        basis = np.fft.fft(np.eye(n_fft))
        cutoff = n_fft // 2 + 1
        basis = np.vstack([np.real(basis[:cutoff]), np.imag(basis[:cutoff])])
        window = get_window("hann", n_fft, fftbins=True)
        forward = torch.FloatTensor(basis[:, None, :]) * torch.from_numpy(window).float()
        # The release synthesises with pinv(n_fft / hop * basis).T. Every spectrum it is given is the rfft of a real
        # frame (the imaginary parts at DC and Nyquist are 0), where all left inverses of the basis agree; the
        # irfft's, basis * w / n_fft with w = 1 at DC and Nyquist and 2 elsewhere, needs no 1026 x 1024 SVD (seconds).
        weights = np.full(cutoff, 2.0)
        weights[[0, -1]] = 1.0
        synthesis = np.concatenate([weights, weights])[:, None] * basis / n_fft / (n_fft / hop)
        inverse = torch.FloatTensor(synthesis[:, None, :]) * torch.from_numpy(window).float()
        # recomputed, never read from a checkpoint (the release keeps them outside its model)
        self.register_buffer("forward_basis", forward, persistent=False)
        self.register_buffer("inverse_basis", inverse, persistent=False)
        self.window_sq = window.astype(np.float32) ** 2

    def transform(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wav (B, L) -> magnitude, phase (B, 513, frames)."""
        half = self.n_fft // 2
        padded = F.pad(wav[:, None, None, :], (half, half, 0, 0), mode="reflect")[:, 0]
        spec = F.conv1d(padded, self.forward_basis, stride=self.hop)
        cutoff = half + 1
        real, imag = spec[:, :cutoff], spec[:, cutoff:]
        return torch.sqrt(real ** 2 + imag ** 2), torch.atan2(imag, real)

    def inverse(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """(B, 513, frames) x2 -> (B, (frames - 1) * hop)."""
        combined = torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)
        out = F.conv_transpose1d(combined, self.inverse_basis, stride=self.hop)
        window_sum = torch.from_numpy(self._window_sum(magnitude.shape[-1])).to(out.device)
        nonzero = window_sum > np.finfo(np.float32).tiny
        out[:, :, nonzero] /= window_sum[nonzero]
        out = out * (float(self.n_fft) / self.hop)
        half = self.n_fft // 2
        return out[:, 0, half:-half]

    def _window_sum(self, frames: int) -> np.ndarray:
        total = np.zeros(self.n_fft + self.hop * (frames - 1), dtype=np.float32)
        for i in range(frames):
            start = i * self.hop
            total[start:start + self.n_fft] += self.window_sq[: max(0, min(self.n_fft, len(total) - start))]
        return total


class TextEmbedder(nn.Module):
    """``model/text_encoder.py``: bert-mini without pooler; [CLS] state -> Linear + ReLU."""

    def __init__(self, bert: nn.Module, dim: int = 256) -> None:
        super().__init__()
        self.bert_layer = bert
        self.linear_layer = nn.Sequential(nn.Linear(bert.config.hidden_size, dim), nn.ReLU())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert_layer(input_ids=input_ids, attention_mask=attention_mask)[0]
        return self.linear_layer(hidden[:, 0, :])


def tokenize(tokenizer, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's tokenisation: "[CLS] " prepended by hand, no special tokens added (so no [SEP])."""
    batch = tokenizer(["[CLS] " + q for q in queries], add_special_tokens=False, padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


class LASSNet(nn.Module):
    """``model/LASSNet.py``: mixture magnitude + query -> sigmoid mask."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.text_embedder = TextEmbedder(bert)
        self.UNet = UNetRes_FiLM(cond_dim=256)

    def forward(self, magnitude: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        cond = self.text_embedder(input_ids, attention_mask)
        return torch.sigmoid(self.UNet(magnitude, cond))


class ReleasedLASSNet(nn.Module):
    """Waveform in, waveform out, as ``inference.py`` does it (without its peak-normalising ``save_wav``)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.module = LASSNet(bert)  # the checkpoint was saved from nn.DataParallel: keys start with "module."
        self.stft = ReleaseSTFT()

    def separate(self, wav: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """wav (B, L) at 32 kHz -> estimate (B, L); the release's ISTFT returns (frames - 1) * hop samples."""
        magnitude, phase = self.stft.transform(wav)
        mask = self.module(magnitude.transpose(2, 1)[:, None], input_ids, attention_mask)
        estimate = self.stft.inverse((mask[:, 0] * magnitude.transpose(2, 1)).transpose(2, 1), phase)
        return F.pad(estimate, (0, wav.shape[-1] - estimate.shape[-1]))[:, : wav.shape[-1]]
