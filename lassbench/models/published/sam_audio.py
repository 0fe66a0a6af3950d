"""SAM Audio (Shi et al., 2025), text-prompted, as ``SAMAudio.separate`` of facebookresearch/sam-audio runs it.

Official code: facebookresearch/sam-audio ``sam_audio/model/model.py`` (``SAMAudio``), ``processor.py``
(``SAMAudioProcessor``, ``Batch``), ``model/{transformer,rope,patcher,align,codec,text_encoder}.py`` and the DAC-VAE
codec (:mod:`lassbench.models.published.dacvae`). What one mixture (mono, 48 kHz) goes through:

1. the DAC-VAE encoder: the codec features, the posterior *mean* [frames, C] (C = ``codebook_dim``, 25 frames a
   second for the release's codec), stacked twice ([frames, 2C]: target and residual halves);
2. the description through T5's encoder (transformers' ``T5EncoderModel``; tokenised alone, truncated to
   ``max_length``, padded to the longest, i.e. not at all): the memory, projected by ``memory_proj`` and offset by a
   sinusoidal embedding of the flow time;
3. flow matching from noise at t = 0 to the target and residual features at t = 1: the official default ODE
   solver, torchdiffeq's fixed-grid *midpoint* method with step 2/32, i.e. :data:`STEPS` steps of two DiT calls;
   each call sees [noisy (2C), zeros (2C), features (2C)] projected by ``proj``, plus the video alignment term
   (``align_masked_video`` on all-zero video features: there is no video) and the anchor term (``embed_anchors``
   with the processor's default anchors: every frame points at ``<null>``, since no span is given);
4. the two halves decoded separately by the DAC-VAE decoder (each with its 16-bit watermark message): the target
   and the residual, ``frames x hop`` samples long (the input rounded up to a whole frame).

Randomness: the initial noise and the two watermark messages are the only random draws; the official code takes
them from torch's global generator (``torch.randn_like``, then ``torch.randint`` in the decoder). lassbench draws
them, in that order, from a generator seeded :attr:`SAMAudioSystem.seed`, so on the CPU seed S gives what
``torch.manual_seed(S); model.separate(batch)`` gives; ``initial_noise`` replaces the noise draw (the official
``noise`` argument). ``reranking_candidates`` is fixed at 1 (one candidate, no ranker) and ``predict_spans`` at False,
the README's text-prompting call. Each mixture is separated on its own, so an estimate never depends on its batch
neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lassbench.models.published.dacvae import DACVAE, WM_BITS
from lassbench.models.published.sam_audio_dit import DiT, DiTShape

SAMPLE_RATE = 48000  # DACVAEConfig.sample_rate; the config.json says which
STEPS = 16  # DFLT_ODE_OPT: {"method": "midpoint", "options": {"step_size": 2 / 32}} over t in [0, 1]
SEED = 0  # lassbench's: the official code draws from torch's unseeded global generator
NULL_ANCHOR, PAD_ANCHOR = 0, 3  # Batch.process_anchors: {"<null>": 0, "+": 1, "-": 2, "<pad>": 3}


@dataclass(frozen=True)
class SAMAudioShape:
    """``SAMAudioConfig`` as far as text-prompted inference reads it (from the config.json beside the weights)."""

    in_channels: int
    codec: dict  # DACVAE arguments
    text_dim: int  # text_encoder.dim
    text_max_length: int | None
    text_pad_mode: str
    vision_dim: int  # vision_encoder.dim: the width of the (zero) video features
    num_anchors: int
    anchor_embedding_dim: int
    transformer: DiTShape


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int, theta: float = 10000) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("inv_freq", torch.exp(-math.log(theta) * torch.arange(half).float() / half),
                             persistent=False)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        emb = torch.einsum("i, j -> i j", pos, self.inv_freq)
        return torch.cat((emb.cos(), emb.sin()), dim=-1)


class AlignModalities(nn.Module):
    """``align_masked_video``: 1 x 1 convolution, LayerNorm, tanh-gated residual."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, 1)
        self.layer_norm = nn.LayerNorm(cout)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, anchor: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return anchor + self.gate.tanh() * self.layer_norm(self.conv(video).permute(0, 2, 1))


class EmbedAnchors(nn.Module):
    def __init__(self, num: int, dim: int, out: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num + 1, dim, padding_idx=num)
        self.gate = nn.Parameter(torch.zeros(1))
        self.proj = nn.Linear(dim, out, bias=False)

    def forward(self, x: torch.Tensor, anchor_ids: torch.Tensor, alignment: torch.Tensor) -> torch.Tensor:
        return x + self.gate.tanh() * self.proj(self.embed(anchor_ids.gather(1, alignment)))


@dataclass
class Conditioning:
    """What every vector-field call of one mixture shares (``_get_forward_args``)."""

    features: torch.Tensor  # [B, T, 2C]
    text: torch.Tensor  # [B, S, text_dim]
    text_mask: torch.Tensor  # [B, S] bool
    video: torch.Tensor  # [B, vision_dim, T], zeros
    anchor_ids: torch.Tensor  # [B, 2]
    anchor_alignment: torch.Tensor  # [B, T]
    audio_mask: torch.Tensor  # [B, T] bool


class SAMAudioSystem(nn.Module):
    """``audio_codec``, ``transformer``, ``proj``, ``align_masked_video``, ``embed_anchors``, ``memory_proj`` under
    the release's names, and T5's encoder (``text``, from the --text-encoder folder, not the checkpoint)."""

    def __init__(self, shape: SAMAudioShape, text: nn.Module | None) -> None:
        super().__init__()
        dim = shape.transformer.dim
        self.shape = shape
        self.text = text
        self.audio_codec = DACVAE(**shape.codec)
        self.transformer = DiT(shape.transformer)
        self.proj = nn.Linear(shape.in_channels, dim)
        self.align_masked_video = AlignModalities(shape.vision_dim, dim)
        self.embed_anchors = EmbedAnchors(shape.num_anchors, shape.anchor_embedding_dim, dim)
        self.memory_proj = nn.Linear(shape.text_dim, dim)
        self.timestep_emb = SinusoidalEmbedding(dim)
        self.steps, self.seed = STEPS, SEED
        self.initial_noise: torch.Tensor | None = None  # [frames, 2C]: replaces the seeded noise draw

    @property
    def sampler(self) -> dict:
        """The sampling settings an estimate depends on (run.json's ``sampler``)."""
        return {"solver": "midpoint", "steps": self.steps, "seed": self.seed, "reranking_candidates": 1,
                "initial_noise": self.initial_noise is not None}

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """``T5TextEncoder.forward``: the last hidden state and the mask as booleans."""
        hidden = self.text(input_ids=input_ids, attention_mask=attention_mask)["last_hidden_state"]
        return hidden, attention_mask.bool()

    def audio_features(self, wav: torch.Tensor) -> torch.Tensor:
        """``_get_audio_features``: [B, T] -> [B, frames, 2C]."""
        features = self.audio_codec(wav[:, None]).transpose(1, 2)
        return torch.cat([features, features], dim=2)

    def tokenize(self, tokenizer, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return tokenize(tokenizer, queries, self.shape.text_max_length, self.shape.text_pad_mode)

    def separate(self, wav: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] at 48 kHz -> the targets [B, T]: each row on its own; padded to the longest, a description loses
        the batch's padding (the processor tokenises one description alone)."""
        rows = []
        for w, ids, mask in zip(wav, input_ids, attention_mask, strict=True):
            keep = mask.bool() if self.shape.text_pad_mode == "longest" else torch.ones_like(mask, dtype=torch.bool)
            target, _ = self.separate_one(w[None], ids[keep][None], mask[keep][None])
            rows.append(target[:, : wav.shape[-1]])
        return torch.cat(rows)

    def separate_one(self, wav: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mixture [1, T] -> (target, residual), each [1, frames x hop]."""
        generator = torch.Generator().manual_seed(self.seed)
        cond = self.conditioning(wav, input_ids, attention_mask)
        if self.initial_noise is None:
            noise = torch.randn(cond.features.shape, generator=generator)  # randn_like(audio_features)
        else:  # the official ``noise`` argument: the generator's first draw is then the messages
            noise = self.initial_noise.reshape(cond.features.shape)
        final = self.sample(noise.to(wav.device), cond)
        message = torch.randint(0, 2, (2, WM_BITS), generator=generator, dtype=torch.float32)
        return self.decode(final, message)

    def conditioning(self, wav: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
                     ) -> Conditioning:
        features = self.audio_features(wav)
        text, text_mask = self.text_features(input_ids, attention_mask)
        b, frames, _ = features.shape
        ids = torch.tensor([[NULL_ANCHOR, PAD_ANCHOR]] * b, device=wav.device)
        return Conditioning(features, text, text_mask, features.new_zeros(b, self.shape.vision_dim, frames), ids,
                            torch.zeros(b, frames, dtype=torch.long, device=wav.device),
                            torch.ones(b, frames, dtype=torch.bool, device=wav.device))

    def vector_field(self, noisy: torch.Tensor, time: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """``SAMAudio.forward``: one evaluation of the ODE's right-hand side, [B, T, 2C] -> [B, T, 2C]."""
        x = torch.cat([noisy, torch.zeros_like(cond.features), cond.features], dim=2)
        aligned = self.align_masked_video(self.proj(x), cond.video)
        aligned = self.embed_anchors(aligned, cond.anchor_ids, cond.anchor_alignment)
        memory = self.memory_proj(cond.text) + self.timestep_emb(time).unsqueeze(1)
        return self.transformer(aligned, time, memory, cond.audio_mask, cond.text_mask)

    def sample(self, noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """torchdiffeq ``odeint(..., method="midpoint", options={"step_size": 1 / steps})`` from t = 0 to 1:
        the same float32 grid and the same arithmetic in the same order."""
        grid = midpoint_grid(self.steps, noise.device)
        y = noise
        for t0, t1 in zip(grid[:-1], grid[1:], strict=True):
            dt = t1 - t0
            half = 0.5 * dt
            f0 = self.vector_field(y, t0.expand(y.size(0)), cond)
            y_mid = y + f0 * half
            y = y + dt * self.vector_field(y_mid, (t0 + half).expand(y.size(0)), cond)
        return y

    def decode(self, final: torch.Tensor, message: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, 2C] -> (target, residual) waveforms [B, T x hop], decoded as one batch of 2B."""
        b, frames, channels = final.shape
        features = final.transpose(1, 2).reshape(2 * b, channels // 2, frames)
        wavs = self.audio_codec.decode(features, message).view(b, 2, -1)
        return wavs[:, 0], wavs[:, 1]


def midpoint_grid(steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``FixedGridODESolver._grid_constructor_from_step_size`` for t in [0, 1]."""
    start, end = torch.tensor(0.0, device=device), torch.tensor(1.0, device=device)
    step_size = 1 / steps
    count = torch.ceil((end - start) / step_size + 1).item()
    grid = torch.arange(0, count, dtype=torch.float32, device=device) * step_size + start
    grid[-1] = end
    return grid


def tokenize(tokenizer, queries: list[str], max_length: int | None, pad_mode: str
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``T5TextEncoder``'s tokenizer call: truncated to ``max_length``, padded as ``pad_mode`` says."""
    batch = tokenizer(queries, truncation=True, max_length=max_length, padding=pad_mode, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]
