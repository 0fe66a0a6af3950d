"""FlowSep (Yuan et al., 2025), module for module as its official language-queried inference runs it.

Official code: Audio-AGI/FlowSep d8164db — ``lass_inference.py`` (its ``main``), ``lass_config/2channel_flow.yaml``,
``src/latent_diffusion/models/ddpm_flow.py`` (``LatentDiffusion.generate_sample`` / ``solve_euler``),
``src/latent_diffusion/modules/diffusionmodules/openaimodel.py`` (``UNetModel``) + ``modules/attention.py``,
``src/latent_encoder/autoencoder.py`` (``AutoencoderKL``) + ``diffusionmodules/model.py`` (``Encoder`` / ``Decoder``),
``src/latent_diffusion/modules/encoders/modules.py`` (``FlanT5HiddenState``), ``src/bigvgan/model.py`` (``BigVGAN``)
and ``src/utilities`` (``AudioDataset.read_wav_file``, ``TacotronSTFT``). What one mixture goes through:

1. 10.24 s at 16 kHz (163,840 samples): mean removed, peak-normalised to 0.5, zero-padded to 10.24 s;
2. its log-mel spectrogram (Tacotron STFT: 1024-point Hann, hop 160, 64 Slaney mel bands 0-8 kHz, ``log(max(x,
   1e-5))``), 1,024 frames;
3. the mel VAE's encoder (``AutoencoderKL``): the posterior *sampled* (``mean + std * N(0, 1)``) and scaled by
   ``scale_factor``: an 8 x 256 x 16 latent. The official script draws that noise from torch's global generator
   after ``seed_everything(0)`` and several other draws; lassbench draws it from a generator seeded
   :data:`ENCODE_SEED`;
4. the query through FLAN-T5's encoder (tokenised to 50 tokens, padded to 50): the cross-attention context and mask;
5. rectified flow: :data:`STEPS` Euler steps (``lass_inference.py --infer_step``) from t = 0 to 1, from noise drawn
   by a generator seeded :data:`SEED`; each step one ``UNetModel`` call on the noisy latent and the mixture's latent
   concatenated along channels (the velocity is the first 8 output channels);
6. the latent unscaled, through the VAE's decoder: a 1024 x 64 log-mel spectrogram;
7. BigVGAN (anti-aliased SnakeBeta, 160 samples per frame, final tanh): 163,840 samples.

The model reads 10.24 s; lassbench runs a longer mixture as consecutive 10.24 s segments (the official script cuts
a random 10.24 s window) and returns every estimate at its mixture's level (the script returns it at the level of
the peak-normalised mixture). Each mixture is sampled on its own, so an estimate never depends on its batch
neighbours.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lassbench.models.published.flowsep_unet import UNetModel
from lassbench.models.published.flowsep_vocoder import BigVGAN

SAMPLE_RATE = 16000
SEGMENT = 163840  # lass_inference.py: noise_waveform[0][:163840], 10.24 s
STEPS = 20  # lass_inference.py --infer_step default
SEED = 0  # lassbench's: the official script draws the initial noise from the global generator (seed_everything(0))
ENCODE_SEED = 1  # lassbench's: likewise the VAE posterior sample of the mixture
MAX_TOKENS = 50  # FlanT5HiddenState: max_length=self.return_length (50), padding="max_length", truncation=True
LATENT_CHANNELS = 8  # 2channel_flow.yaml model.params.channels
N_FFT, HOP, N_MELS, MEL_FMAX, FRAMES = 1024, 160, 64, 8000, 1024  # preprocessing; target_length = 10.24 s / hop
PEAK = 0.5  # AudioDataset.normalize_wav: "Manually limit the maximum amplitude into 0.5"
RELEASED_UNET = {"in_channels": 16, "model_channels": 128, "out_channels": 16, "num_res_blocks": 2,
                 "attention_resolutions": [2, 4, 8], "channel_mult": [1, 2, 3, 5], "transformer_depth": 1,
                 "context_dim": 1024}
RELEASED_VAE = {"ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "z_channels": 8, "embed_dim": 8}
RELEASED_VOCODER = {"num_mels": 64, "initial_channel": 512, "upsample_kernels": [16, 16, 8, 4, 4],
                    "resblock_kernels": [3, 7, 11]}


# ---------------------------------------------------------------------------- front end (utilities/audio/stft.py)


def normalize_segment(wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``normalize_wav`` on [B, T]: (normalised, gain) with normalised = (wav - mean) * gain."""
    centred = wav - wav.mean(dim=-1, keepdim=True)
    peak = centred.abs().amax(dim=-1, keepdim=True) + 1e-8
    return centred / peak * PEAK, PEAK / peak


def fourier_basis() -> torch.Tensor:
    """``STFT.forward_basis``: the real and imaginary DFT rows up to Nyquist, Hann-windowed, [1026, 1, 1024]."""
    basis = np.fft.fft(np.eye(N_FFT))
    cutoff = N_FFT // 2 + 1
    basis = torch.FloatTensor(np.vstack([np.real(basis[:cutoff]), np.imag(basis[:cutoff])])[:, None, :])
    return basis * torch.hann_window(N_FFT, periodic=True, dtype=torch.float64).float()


def mel_basis() -> torch.Tensor:
    """``librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0, fmax=8000)``: Slaney scale and area norm."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=N_MELS, min_frequency=0.0,
                           max_frequency=float(MEL_FMAX), sampling_rate=SAMPLE_RATE, norm="slaney",
                           mel_scale="slaney")
    return torch.from_numpy(bank.T.astype(np.float32))


def log_mel(wav: torch.Tensor, basis: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """``wav_feature_extraction``: [B, 163840] -> [B, 1, 1024, 64] (the 1,025th frame cut, as ``pad_spec`` does)."""
    padded = F.pad(wav.clamp(-1, 1)[:, None, None], (N_FFT // 2, N_FFT // 2, 0, 0), mode="reflect")[:, 0]
    spectrum = F.conv1d(padded, basis, stride=HOP)
    real, imag = spectrum[:, : N_FFT // 2 + 1], spectrum[:, N_FFT // 2 + 1:]
    magnitude = torch.sqrt(real ** 2 + imag ** 2)
    return torch.log(torch.clamp(torch.matmul(mel, magnitude), min=1e-5)).transpose(1, 2)[:, None, :FRAMES]


# ------------------------------------------------------------------ mel VAE (latent_encoder/autoencoder.py)


def _group_norm(channels: int, eps: float = 1e-6) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=eps)


class VAEResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _group_norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class VAEAttention(nn.Module):
    """``AttnBlock``: single-head self-attention over all time-frequency positions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, height, width = h.shape
        q = self.q(h).reshape(b, c, -1).permute(0, 2, 1)
        k, v = self.k(h).reshape(b, c, -1), self.v(h).reshape(b, c, -1)
        weights = torch.softmax(torch.bmm(q, k) * (int(c) ** (-0.5)), dim=2)
        return x + self.proj_out(torch.bmm(v, weights.permute(0, 2, 1)).reshape(b, c, height, width))


class _Level(nn.Module):
    """One resolution of the encoder or decoder: ``block`` (+ an empty ``attn``, as attn_resolutions is [])."""

    def __init__(self, blocks: list[nn.Module], resample: nn.Module | None, name: str) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        if resample is not None:
            setattr(self, name, resample)


class _Middle(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = VAEResnetBlock(channels, channels)
        self.attn_1 = VAEAttention(channels)
        self.block_2 = VAEResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Resample(nn.Module):
    """``Downsample`` (zero-pad right and bottom, 3x3 stride 2) or ``Upsample`` (nearest x2, 3x3)."""

    def __init__(self, channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(channels, channels, 3, stride=2 if down else 1, padding=0 if down else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MelEncoder(nn.Module):
    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, z_channels: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(1, ch, 3, padding=1)
        widths = [ch * m for m in [1, *ch_mult]]
        self.down = nn.ModuleList()
        for level in range(len(ch_mult)):
            blocks = [VAEResnetBlock(widths[level] if b == 0 else widths[level + 1], widths[level + 1])
                      for b in range(num_res_blocks)]
            last = level == len(ch_mult) - 1
            self.down.append(_Level(blocks, None if last else _Resample(widths[level + 1], True), "downsample"))
        self.mid = _Middle(widths[-1])
        self.norm_out = _group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], 2 * z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class MelDecoder(nn.Module):
    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, z_channels: int) -> None:
        super().__init__()
        width = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, width, 3, padding=1)
        self.mid = _Middle(width)
        levels = []
        for level in reversed(range(len(ch_mult))):
            out = ch * ch_mult[level]
            blocks = [VAEResnetBlock(width if b == 0 else out, out) for b in range(num_res_blocks + 1)]
            levels.insert(0, _Level(blocks, _Resample(out, False) if level else None, "upsample"))
            width = out
        self.up = nn.ModuleList(levels)
        self.norm_out = _group_norm(width)
        self.conv_out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class MelVAE(nn.Module):
    """``AutoencoderKL`` (image_key fbank, subband 1): ``encoder``, ``quant_conv``, ``post_quant_conv``,
    ``decoder`` under the file's ``first_stage_model.*`` names."""

    def __init__(self, ch: int, ch_mult: list[int], num_res_blocks: int, z_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.encoder = MelEncoder(ch, ch_mult, num_res_blocks, z_channels)
        self.decoder = MelDecoder(ch, ch_mult, num_res_blocks, z_channels)
        self.quant_conv = nn.Conv2d(2 * z_channels, 2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)

    def encode(self, mel: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``DiagonalGaussianDistribution(moments).sample()``, its noise from ``generator``."""
        mean, logvar = torch.chunk(self.quant_conv(self.encoder(mel)), 2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        return mean + std * torch.randn(mean.shape, generator=generator).to(mean.device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))


def vae_shape(state: dict[str, torch.Tensor], prefix: str = "vae.") -> dict:
    ch = int(state[f"{prefix}encoder.conv_in.weight"].shape[0])
    mults, level = [], 0
    while f"{prefix}encoder.down.{level}.block.0.conv1.weight" in state:
        mults.append(int(state[f"{prefix}encoder.down.{level}.block.0.conv1.weight"].shape[0]) // ch)
        level += 1
    blocks = len({k[len(prefix):].split(".")[4] for k in state if k.startswith(f"{prefix}encoder.down.0.block.")})
    return {"ch": ch, "ch_mult": mults, "num_res_blocks": blocks,
            "z_channels": int(state[f"{prefix}decoder.conv_in.weight"].shape[1]),
            "embed_dim": int(state[f"{prefix}post_quant_conv.weight"].shape[1])}


# ------------------------------------------------------------------------------------------------------ system


class FlowSepSystem(nn.Module):
    """FLAN-T5's encoder (``text``: transformers' ``T5EncoderModel``), the flow ``unet``, the mel ``vae``, the
    ``vocoder`` and the latent ``scale_factor``."""

    def __init__(self, text: nn.Module, unet: dict, vae: dict, vocoder: dict) -> None:
        super().__init__()
        self.text = text
        self.unet = UNetModel(**unet)
        self.vae = MelVAE(**vae)
        self.vocoder = BigVGAN(**vocoder)
        self.register_buffer("scale_factor", torch.tensor(1.0))
        self.register_buffer("stft_basis", fourier_basis(), persistent=False)
        self.register_buffer("mel_basis", mel_basis(), persistent=False)
        self.steps, self.seed, self.encode_seed = STEPS, SEED, ENCODE_SEED

    @property
    def sampler(self) -> dict:
        """The sampling settings an estimate depends on (run.json's ``sampler``)."""
        return {"solver": "euler", "steps": self.steps, "seed": self.seed, "encode_seed": self.encode_seed}

    def context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``FlanT5HiddenState.encode_text``: the encoder's last hidden state."""
        return self.text(input_ids=input_ids, attention_mask=attention_mask)[0]

    def separate(self, wav: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] at 16 kHz -> [B, T]: each row on its own, in 10.24 s segments, at its mixture's level."""
        context = self.context(input_ids, attention_mask)
        rows = []
        for w, c, m in zip(wav, context, attention_mask, strict=True):
            pieces = [self.separate_segment(w[None, s:s + SEGMENT], c[None], m[None].float())
                      for s in range(0, w.shape[-1], SEGMENT)]
            rows.append(torch.cat(pieces, dim=-1))
        return torch.cat(rows)

    def separate_segment(self, wav: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[1, <= 163840] -> the same length: the official estimate, divided by the normalisation gain."""
        normalised, gain = normalize_segment(wav)
        return self.separate_normalised(normalised, context, mask)[:, : wav.shape[-1]] / gain

    def separate_normalised(self, wav: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``generate_sample`` on an already normalised [1, <= 163840] -> its 163,840-sample waveform."""
        mel = log_mel(F.pad(wav, (0, SEGMENT - wav.shape[-1])), self.stft_basis, self.mel_basis)
        mixture = self.scale_factor * self.vae.encode(mel, torch.Generator().manual_seed(self.encode_seed))
        latent = self.sample(mixture, context, mask)
        return self.vocoder(self.vae.decode(latent / self.scale_factor)[:, 0].transpose(1, 2))[:, 0]

    def sample(self, mixture: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``solve_euler``: the same time grid, accumulated as the original accumulates it."""
        shape = (mixture.shape[0], LATENT_CHANNELS, *mixture.shape[2:])
        x = torch.randn(shape, generator=torch.Generator().manual_seed(self.seed)).to(mixture.device)
        grid = torch.linspace(0, 1, self.steps + 1, device=mixture.device)
        t, dt = grid[0], grid[1] - grid[0]
        for step in range(1, self.steps + 1):
            velocity = self.unet(torch.cat([x, mixture], dim=1), t.view(1).expand(x.shape[0]), context, mask)
            x = x + dt * velocity[:, :LATENT_CHANNELS]
            t = t + dt
            if step < self.steps:
                dt = grid[step + 1] - t
        return x


def tokenize(tokenizer, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(queries, max_length=MAX_TOKENS, padding="max_length", truncation=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]
