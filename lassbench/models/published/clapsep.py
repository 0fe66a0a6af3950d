"""CLAPSep (Ma et al., 2024), module for module as its official code runs it at test time.

Official code: Aisaka0v0/CLAPSep 5404111 — ``model/CLAPSep.py`` (``LightningModule.test_step``, the evaluator of
``evaluation/eval_audiocaps.py``) and ``model/CLAPSep_decoder.py`` (``HTSAT_Decoder``), on top of LAION-CLAP
(``laion_clap/clap_module/htsat.py`` 1.1.7: HTSAT, Swin blocks) and torchlibrosa 0.1.0 (STFT, ISTFT, log-mel). What
one 10 s segment goes through:

1. the mixture at 32 kHz, its STFT (1024-point, hop 320, Hann, reflect-centred): magnitude, cos and sin of the phase;
2. the mixture resampled to 48 kHz (torchaudio ``Resample(32000, 48000)``: Hann-windowed sinc, 6 zero crossings,
   rolloff 0.99) into CLAP's HTSAT audio branch, a copy of CLAP's whose attention projections carry LoRA adapters:
   power spectrogram (1024 / 480), zero-padded to 1024 frames (a forward hook of the official code), 64 log-mel
   bands, BatchNorm, folded into a 256 x 256 image, patch embedding, four Swin stages. The patch embedding's and each
   stage's outputs are the decoder's skip features (forward hooks in the official code);
3. the queries: CLAP's text branch (RoBERTa, pooled, projected, L2-normalised; 77 tokens at most, as laion-clap's
   tokenizer) embeds the positive and the negative query; ``test_step`` concatenates the two 512-d vectors as they
   are (training normalises the 1024-d concatenation; evaluation does not). An absent negative query is a zero
   vector, as the authors' demo sends for an empty one;
4. ``HTSAT_Decoder``: FiLM on the last stage, four Swin decoder stages with patch expansion and FiLM-ed skip
   connections, an inverse patch embedding back to frames x 64, concatenated with the BatchNorm-ed magnitude, and a
   transformer (``mask_net``) predicting a sigmoid magnitude mask;
5. the masked magnitude with the mixture's phase through torchlibrosa's ISTFT.

The STFT, ISTFT and log-mel filters run with the kernels stored in the checkpoint (torchlibrosa keeps them as
weights), so they are torchlibrosa's to the bit. LoRA (loralib, ``merge_weights=False``) adds ``x A^T B^T / r`` to a
projection; lassbench merges ``W + B A / r`` once at load (equal up to float rounding). The architecture works on 10 s
segments (HTSAT's image is 1024 frames): longer inputs are cut into 10 s segments, the last one zero-padded, as the
authors' Hugging Face demo does (its ``inference``: zero-pad to a multiple of 10 s, separate each, concatenate).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lassbench.models.published.clap_text import ClapQueryEncoder

SAMPLE_RATE = 32000
CLAP_RATE = 48000
SEGMENT = 10 * SAMPLE_RATE
N_FFT, HOP = 1024, 320
CLAP_N_FFT, CLAP_HOP, MEL_BINS = 1024, 480, 64
SPEC_SIZE, PATCH, WINDOW = 256, 4, 8
HTSAT_FRAMES = SPEC_SIZE * (SPEC_SIZE // MEL_BINS)  # 1024: the spectrogram_padding hook's target
MAX_TOKENS = 77  # laion_clap hook.CLAP_Module.tokenizer: padding="max_length", truncation, max_length=77
# experiments/CLAPSep_base/config.json on HTSAT-base (laion-clap model_configs/HTSAT-base.json)
RELEASED_ENCODER = {"dim": 128, "depths": [2, 2, 12, 2], "heads": [4, 8, 16, 32]}
RELEASED_DECODER = {"dim": 128, "encoder_dim": 128, "condition": 1024, "depths": [1, 1, 1, 1],
                    "heads": [4, 8, 16, 32], "d_attn": 640, "masker_layers": 3}


# ------------------------------------------------------------------------------ torchlibrosa / torchaudio fronts


class ConvSTFT(nn.Module):
    """torchlibrosa ``STFT``: reflect-pad by n_fft/2, then two strided convolutions holding the windowed DFT."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(wav[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return self.conv_real(x)[:, None].transpose(2, 3), self.conv_imag(x)[:, None].transpose(2, 3)


class ConvISTFT(nn.Module):
    """torchlibrosa ``ISTFT``: full spectrum by symmetry, inverse DFT as 1x1 convolutions, overlap-add divided by the
    summed squared window (clamped at 1e-11), centre trimmed."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.conv_real = nn.Conv1d(n_fft, n_fft, 1, bias=False)
        self.conv_imag = nn.Conv1d(n_fft, n_fft, 1, bias=False)
        self.register_buffer("ola_window", torch.zeros(n_fft))

    def forward(self, real: torch.Tensor, imag: torch.Tensor, length: int) -> torch.Tensor:
        real, imag = real[:, 0].transpose(1, 2), imag[:, 0].transpose(1, 2)
        full_real = torch.cat((real, torch.flip(real[:, 1:-1], dims=[1])), dim=1)
        full_imag = torch.cat((imag, -torch.flip(imag[:, 1:-1], dims=[1])), dim=1)
        frames = self.conv_real(full_real) - self.conv_imag(full_imag)
        samples = (frames.shape[-1] - 1) * self.hop + self.n_fft
        y = F.fold(frames, (1, samples), kernel_size=(1, self.n_fft), stride=(1, self.hop))[:, 0, 0]
        window = self.ola_window[None, :, None].repeat(1, 1, frames.shape[-1])
        window_sum = F.fold(window, (1, samples), kernel_size=(1, self.n_fft), stride=(1, self.hop)).squeeze()
        y = y / torch.clamp(window_sum, 1e-11, math.inf)[None]
        return y[:, self.n_fft // 2: self.n_fft // 2 + length]


def magphase(real: torch.Tensor, imag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mag = (real ** 2 + imag ** 2) ** 0.5
    safe = torch.clamp(mag, 1e-10, math.inf)
    return mag, real / safe, imag / safe


class Spectrogram(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stft = ConvSTFT(CLAP_N_FFT, CLAP_HOP)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(wav)
        return real ** 2 + imag ** 2


class LogmelFilterBank(nn.Module):
    """torchlibrosa ``LogmelFilterBank`` (ref 1, amin 1e-10, no top_db); ``melW`` comes from the checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.melW = nn.Parameter(torch.zeros(CLAP_N_FFT // 2 + 1, MEL_BINS), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(torch.matmul(power, self.melW), min=1e-10))


def sinc_resample(wav: torch.Tensor, source: int, target: int) -> torch.Tensor:
    """torchaudio ``transforms.Resample(source, target)`` with its defaults: the float64 kernel cached as float32,
    then a strided convolution (pytorch/audio ``_get_sinc_resample_kernel`` / ``_apply_sinc_resample_kernel``)."""
    gcd = math.gcd(source, target)
    orig, new = source // gcd, target // gcd
    width_zeros, rolloff = 6, 0.99
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float32)[:, None, None] / new + idx
    t = (t * base).clamp_(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t) * window * (base / orig)
    kernel = kernel.to(torch.float32).to(wav.device)
    length = wav.shape[-1]
    x = F.pad(wav[:, None], (width, width + orig))
    out = F.conv1d(x, kernel, stride=orig).transpose(1, 2).reshape(wav.shape[0], -1)
    return out[..., : int(math.ceil(new * length / orig))]


# ------------------------------------------------------------------------------------------ Swin (laion_clap htsat)


def window_partition(x: torch.Tensor, size: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // size, size, w // size, size, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, size, size, c)


def window_reverse(windows: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    b = int(windows.shape[0] / (h * w / size / size))
    x = windows.view(b, h // size, w // size, size, size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, size: int, heads: int) -> None:
        super().__init__()
        self.size, self.heads, self.scale = size, heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * size - 1) ** 2, heads))
        coords = torch.flatten(torch.stack(torch.meshgrid([torch.arange(size), torch.arange(size)], indexing="ij")), 1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
        relative[:, :, 0] += size - 1
        relative[:, :, 1] += size - 1
        relative[:, :, 0] *= 2 * size - 1
        self.register_buffer("relative_position_index", relative.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attn = (attn.view(b // windows, windows, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0))
            attn = attn.view(-1, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """``SwinTransformerBlock`` (norm_before_mlp='ln', mlp_ratio 4); shifted windows on odd blocks."""

    def __init__(self, dim: int, resolution: tuple[int, int], heads: int, shift: bool) -> None:
        super().__init__()
        self.resolution = resolution
        self.size, self.shift = WINDOW, WINDOW // 2 if shift else 0
        if min(resolution) <= self.size:  # the window covers the whole grid: no partition, no shift
            self.size, self.shift = min(resolution), 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.size, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.register_buffer("attn_mask", self._shift_mask() if self.shift else None)

    def _shift_mask(self) -> torch.Tensor:
        h, w = self.resolution
        image = torch.zeros((1, h, w, 1))
        spans = (slice(0, -self.size), slice(-self.size, -self.shift), slice(-self.shift, None))
        for count, (hs, ws) in enumerate((hs, ws) for hs in spans for ws in spans):
            image[:, hs, ws, :] = count
        windows = window_partition(image, self.size).view(-1, self.size * self.size)
        mask = windows.unsqueeze(1) - windows.unsqueeze(2)
        return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        shortcut, x = x, self.norm1(x).view(b, h, w, c)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(x, self.size).view(-1, self.size * self.size, c)
        x = window_reverse(self.attn(windows, self.attn_mask).view(-1, self.size, self.size, c), self.size, h, w)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x.view(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, resolution: tuple[int, int], dim: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class EncoderStage(nn.Module):
    """HTSAT's ``BasicLayer``: Swin blocks, then patch merging (all stages but the last)."""

    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, heads: int, merge: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(dim, resolution, heads, i % 2 == 1) for i in range(depth)])
        self.downsample = PatchMerging(resolution, dim) if merge else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, PATCH, PATCH)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class HTSATEncoder(nn.Module):
    """CLAPSep's ``audio_branch`` up to its last Swin stage; returns the patch embedding and every stage's output
    (what the official forward hooks collect). HTSAT's own head (norm, tscam_conv, head) is computed by the
    official forward but never read: it is not built here."""

    def __init__(self, dim: int, depths: list[int], heads: list[int]) -> None:
        super().__init__()
        self.spectrogram_extractor = Spectrogram()
        self.logmel_extractor = LogmelFilterBank()
        self.bn0 = nn.BatchNorm2d(MEL_BINS)
        self.patch_embed = PatchEmbed(dim)
        grid = SPEC_SIZE // PATCH
        self.layers = nn.ModuleList([
            EncoderStage(dim * 2 ** i, (grid // 2 ** i, grid // 2 ** i), depth, heads[i], i < len(depths) - 1)
            for i, depth in enumerate(depths)
        ])

    def forward(self, wav48k: torch.Tensor) -> list[torch.Tensor]:
        power = self.spectrogram_extractor(wav48k)
        power = F.pad(power, (0, 0, 0, HTSAT_FRAMES - power.size(2)))  # the official spectrogram_padding hook
        x = self.bn0(self.logmel_extractor(power).transpose(1, 3)).transpose(1, 3)
        x = _wav2img(x)
        features = [self.patch_embed(x)]
        for stage in self.layers:
            features.append(stage(features[-1]))
        return features


def _wav2img(x: torch.Tensor) -> torch.Tensor:
    """HTSAT ``reshape_wav2img`` for a 1024 x 64 input (no interpolation is needed at that size)."""
    ratio = SPEC_SIZE // MEL_BINS
    x = x.permute(0, 1, 3, 2).contiguous()
    x = x.reshape(x.shape[0], x.shape[1], x.shape[2], ratio, x.shape[3] // ratio)
    x = x.permute(0, 1, 3, 2, 4).contiguous()
    return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3], x.shape[4])


# ----------------------------------------------------------------------------------- decoder (CLAPSep_decoder.py)


class FiLM(nn.Module):
    def __init__(self, condition: int, dim: int) -> None:
        super().__init__()
        self.beta, self.gamma = nn.Linear(condition, dim), nn.Linear(condition, dim)

    def forward(self, x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        embed = embed.unsqueeze(1)
        return self.gamma(embed) * x + self.beta(embed)


class SkipTrans(nn.Module):
    def __init__(self, source: int, dim: int, condition: int) -> None:
        super().__init__()
        self.skip_conv = FiLM(condition, dim)
        self.feature_proj = nn.Linear(source, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, skip: torch.Tensor, embed: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        out = self.skip_conv(self.feature_proj(skip), embed)
        return self.norm(out) if x is None else self.norm(out + x)


class PatchExpand(nn.Module):
    """Undoes patch merging: Linear(dim, 2 dim), the channels regrouped as CLAPSep does, pixel shuffle x2."""

    def __init__(self, resolution: tuple[int, int], dim: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.expand = nn.Linear(dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(dim // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        x = self.expand(x)
        b, _, c = x.shape
        x0, x2, x1, x3 = x.view(b, h, w, c).chunk(4, dim=-1)
        x = torch.stack((x0, x1, x2, x3), dim=-1)
        x = torch.concat(torch.chunk(x, c // 4, dim=-2), dim=-1).squeeze(-2)
        x = F.pixel_shuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        return self.norm(x.reshape(b, -1, c // 4))


class DecoderStage(nn.Module):
    """``BasicLayerDec``: patch expansion first (all stages but the deepest), then Swin blocks."""

    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, heads: int, expand: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(dim, resolution, heads, i % 2 == 1) for i in range(depth)])
        self.downsample = PatchExpand((resolution[0] // 2, resolution[1] // 2), dim * 2) if expand else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        for block in self.blocks:
            x = block(x)
        return x


class InversePatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.ConvTranspose2d(dim, 1, PATCH, PATCH)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = SPEC_SIZE // PATCH
        return self.proj(self.norm(x).transpose(1, 2).unflatten(2, (grid, grid)).contiguous())


class MaskDecoder(nn.Module):
    """``HTSAT_Decoder`` as released (``phase: false``, ``conv: false``: a magnitude mask from a transformer)."""

    def __init__(self, dim: int, encoder_dim: int, condition: int, depths: list[int], heads: list[int],
                 d_attn: int, masker_layers: int, spec_factor: int = 8) -> None:
        super().__init__()
        grid, levels = SPEC_SIZE // PATCH, len(depths)
        self.inverse_patch_embed = InversePatchEmbed(dim)
        stages = [DecoderStage(dim * 2 ** i, (grid // 2 ** i, grid // 2 ** i), depths[i], heads[i], i < levels - 1)
                  for i in range(levels)]
        skips = [SkipTrans(encoder_dim * 2 ** i, dim * 2 ** i, condition) for i in range(levels)]
        self.layers = nn.ModuleList(stages[::-1])  # the official ModuleList is reversed: deepest stage first
        self.skip = nn.ModuleList(skips[::-1])
        bins = MEL_BINS * spec_factor + 1
        self.spec_norm = nn.BatchNorm2d(bins, momentum=0.01)
        layer = nn.TransformerEncoderLayer(d_model=d_attn, nhead=8, dim_feedforward=4 * d_attn, batch_first=True,
                                           dropout=0)
        masker = nn.TransformerEncoder(layer, num_layers=masker_layers, enable_nested_tensor=False)
        self.mask_net = nn.Sequential(nn.Linear(MEL_BINS + bins, d_attn), nn.LayerNorm(d_attn), masker,
                                      nn.Linear(d_attn, bins))
        self.film = SkipTrans(encoder_dim * 2 ** (levels - 1), dim * 2 ** (levels - 1), condition)

    def forward(self, hidden: torch.Tensor, skips: list[torch.Tensor], spec: torch.Tensor,
                embed: torch.Tensor) -> torch.Tensor:
        h = self.film(hidden, embed)
        for stage, feature, skip in zip(self.layers, skips[::-1], self.skip, strict=True):
            h = skip(feature, embed, x=stage(h))
        h = _img2wav(self.inverse_patch_embed(h)).squeeze(1)[:, : spec.size(2)]
        spec = self.spec_norm(spec.transpose(1, 3)).transpose(1, 3).squeeze(1)
        return torch.sigmoid(self.mask_net(torch.concat([spec, h], dim=-1)).unsqueeze(1))


def _img2wav(x: torch.Tensor) -> torch.Tensor:
    ratio = SPEC_SIZE // MEL_BINS
    x = x.reshape(x.shape[0], x.shape[1], ratio, x.shape[2] // ratio, x.shape[3]).permute(0, 1, 3, 2, 4).contiguous()
    return x.reshape(x.shape[0], x.shape[1], x.shape[2], x.shape[3] * x.shape[4]).permute(0, 1, 3, 2).contiguous()


# ------------------------------------------------------------------------------------------------------ system


class CLAPSepSystem(nn.Module):
    """The Lightning module's parts under its attribute names: ``clap_model``, ``audio_branch``, ``decoder_model``,
    ``stft``, ``istft``."""

    def __init__(self, roberta: nn.Module, encoder: dict, decoder: dict) -> None:
        super().__init__()
        self.clap_model = ClapQueryEncoder(roberta)  # clap_model.model.text_branch / .text_projection
        self.audio_branch = HTSATEncoder(**encoder)
        self.decoder_model = MaskDecoder(**decoder)
        self.stft = ConvSTFT(N_FFT, HOP)
        self.istft = ConvISTFT(N_FFT, HOP)

    def embed(self, positive: tuple[torch.Tensor, torch.Tensor],
              negative: tuple[torch.Tensor, torch.Tensor] | None, absent: list[bool]) -> torch.Tensor:
        """``concat(text(positive), text(negative))``; a row whose negative query is absent gets zeros there."""
        pos = self.clap_model(*positive)
        neg = torch.zeros_like(pos) if negative is None else self.clap_model(*negative)
        neg = neg * torch.tensor([0.0 if a else 1.0 for a in absent], device=neg.device)[:, None]
        return torch.concat([pos, neg], dim=1)

    def separate_segment(self, wav: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """``test_step`` on segments of at most 10 s at 32 kHz: [B, T] -> [B, T]."""
        mag, cos, sin = magphase(*self.stft(wav))
        features = self.audio_branch(sinc_resample(wav, SAMPLE_RATE, CLAP_RATE))
        mask = self.decoder_model(features[-1], features[:-1], mag, embed)
        estimate_mag = F.relu(mag * mask)
        return self.istft(estimate_mag * cos, estimate_mag * sin, wav.shape[-1])

    def separate(self, wav: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """Any length: 10 s segments, the last zero-padded (the authors' demo), estimates concatenated."""
        length = wav.shape[-1]
        padded = F.pad(wav, (0, -length % SEGMENT)) if length > SEGMENT else wav
        parts = [self.separate_segment(chunk, embed) for chunk in torch.split(padded, SEGMENT, dim=-1)]
        return torch.cat(parts, dim=-1)[..., :length]


MASKER_PREFIX = "decoder_model.mask_net.2.layers."


def shape_of(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(encoder, decoder) keyword arguments read from a checkpoint's tensors (the released model or a smaller one)."""

    def stages(prefix: str) -> dict[int, int]:
        found: dict[int, int] = {}
        for key in state:
            if key.startswith(prefix) and ".blocks." in key:
                stage, block = key[len(prefix):].split(".")[0], key.split(".blocks.")[1].split(".")[0]
                found[int(stage)] = max(found.get(int(stage), 0), int(block) + 1)
        return dict(sorted(found.items()))

    def heads(prefix: str, stage: int) -> int:
        return int(state[f"{prefix}{stage}.blocks.0.attn.relative_position_bias_table"].shape[1])

    enc, dec = stages("audio_branch.layers."), stages("decoder_model.layers.")
    encoder = {"dim": int(state["audio_branch.patch_embed.proj.weight"].shape[0]), "depths": list(enc.values()),
               "heads": [heads("audio_branch.layers.", i) for i in enc]}
    levels = len(dec)  # decoder_model.layers.k is stage levels-1-k (the official list is reversed)
    decoder = {"dim": int(state["decoder_model.inverse_patch_embed.proj.weight"].shape[0]),
               "encoder_dim": encoder["dim"],
               "condition": int(state["decoder_model.film.skip_conv.beta.weight"].shape[1]),
               "depths": [dec[levels - 1 - i] for i in range(levels)],
               "heads": [heads("decoder_model.layers.", levels - 1 - i) for i in range(levels)],
               "d_attn": int(state["decoder_model.mask_net.0.weight"].shape[0]),
               "masker_layers": len({k.split(".")[4] for k in state if k.startswith(MASKER_PREFIX)})}
    return encoder, decoder


def torchlibrosa_kernels(prefix_stft: str = "stft.", prefix_istft: str = "istft.") -> dict[str, torch.Tensor]:
    """CLAPSep's STFT / ISTFT tensors as torchlibrosa initialises them (``DFTBase.dft_matrix`` / ``idft_matrix``
    times a periodic Hann window, float64 then float32): for files saved without them."""
    import numpy as np
    from scipy.signal import get_window

    n = N_FFT
    x, y = np.meshgrid(np.arange(n), np.arange(n))
    window = get_window("hann", n, fftbins=True)
    dft = np.power(np.exp(-2 * np.pi * 1j / n), x * y)[:, : n // 2 + 1] * window[:, None]
    idft = np.power(np.exp(2 * np.pi * 1j / n), x * y) / n * window[None, :]
    return {
        prefix_stft + "conv_real.weight": torch.Tensor(np.real(dft).T)[:, None, :],
        prefix_stft + "conv_imag.weight": torch.Tensor(np.imag(dft).T)[:, None, :],
        prefix_istft + "conv_real.weight": torch.Tensor(np.real(idft).T)[:, :, None],
        prefix_istft + "conv_imag.weight": torch.Tensor(np.imag(idft).T)[:, :, None],
        prefix_istft + "ola_window": torch.Tensor(window ** 2),
    }


def merge_lora(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fold every ``lora_A`` / ``lora_B`` pair into its layer's weight: ``W + B A * (alpha / r)``, alpha = 1
    (``process_model`` leaves loralib's default)."""
    merged = dict(state)
    for key in [k for k in state if k.endswith(".lora_A")]:
        prefix = key[: -len("lora_A")]
        a, b = merged.pop(prefix + "lora_A").double(), merged.pop(prefix + "lora_B").double()
        weight = merged[prefix + "weight"]
        merged[prefix + "weight"] = (weight.double() + (b @ a) / a.shape[0]).to(weight.dtype)
    return merged


def tokenize(tokenizer, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """laion-clap truncates at 77 tokens; padding to the longest instead of 77 gives the same pooled output."""
    batch = tokenizer(queries, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]
