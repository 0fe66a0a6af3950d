"""The SAM Audio judge (Shi et al., 2025): a network that scores a separated estimate against its mixture and text
query without a reference, as ``SAMAudioJudgeModel.forward`` of facebookresearch/sam-audio computes it.

Official code: facebookresearch/sam-audio ``sam_audio/model/judge.py`` (``SAMAudioJudgeModel``), ``model/codec.py``
(``DACVAEEncoder``: :class:`lassbench.models.published.dacvae.DACVAEEncoder`), perception_models' PE-AV
``Transformer`` (:mod:`lassbench.models.published.peav_transformer`) and a ModernBERT text model built by
transformers from the config (``AutoModel.from_config``). What one (mixture, estimate, query) goes through:

1. the query through ModernBERT: the CLS position of the hidden states after layer ``nth_text_layer`` (the last
   hidden state when it is None), projected by ``text_proj1``, then ``text_proj2`` and a LayerNorm;
2. the mixture and the estimate (48 kHz for the release, reflect-padded to whole codec frames) through the DAC-VAE
   encoder: the posterior means, [frames, codebook_dim] each, projected by ``data_proj`` and run through the first
   PE-AV transformer each on its own;
3. per frame, [estimate, mixture] features projected by ``cat_audio_proj``, joined with the query's vector by
   ``proj_audio_and_text``, projected by ``finetune_data_proj`` and run through the second PE-AV transformer;
4. a 4-way linear ``head`` per frame, averaged over the real frames, de-normalised (``* std + mean``): overall,
   recall, precision, faithfulness, in that order.

Batches: the official forward passes the frame padding mask to the PE-AV transformers as ``padding_mask=``, a name
they do not read (they take ``attention_mask``), so in a batch of unequal lengths a shorter item's frames attend to
the padding and its scores change with its neighbours (the golden script records it). Here the mask is applied:
each item scores as it does in a batch of its own, which is what SAM Audio's benchmark runs (batch size 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lassbench.models.published.dacvae import DACVAEEncoder
from lassbench.models.published.peav_transformer import PeavShape, PeavTransformer

SCORES = ("overall", "recall", "precision", "faithfulness")  # SAMAudioJudgeOutput(*chunk(4)): the head's order


@dataclass(frozen=True)
class JudgeShape:
    """``SAMAudioJudgeConfig`` as far as inference reads it (from the config.json beside the weights)."""

    codec: dict  # DACVAEEncoder arguments: encoder_dim, encoder_rates, latent_dim, codebook_dim, sample_rate
    transformer: PeavShape
    finetune_transformer: PeavShape
    text_hidden_size: int
    nth_text_layer: int | None
    bottleneck_dim: int


class SAMAudioJudge(nn.Module):
    """``SAMAudioJudgeModel`` with its parts' key names; ``text_model`` is the ModernBERT the loader built."""

    def __init__(self, shape: JudgeShape, text_model: nn.Module) -> None:
        super().__init__()
        width, finetune, bottleneck = shape.transformer.hidden_size, shape.finetune_transformer.hidden_size, \
            shape.bottleneck_dim
        self.shape = shape
        self.data_proj = nn.Linear(shape.codec["codebook_dim"], width)
        self.audio_codec = DACVAEEncoder(**shape.codec)
        self.transformer = PeavTransformer(shape.transformer)
        self.finetune_transformer = PeavTransformer(shape.finetune_transformer)
        self.text_model = text_model
        self.cat_audio_proj = nn.Linear(2 * width, bottleneck)
        self.text_proj1 = nn.Linear(shape.text_hidden_size, width, bias=False)
        self.text_proj2 = nn.Linear(width, bottleneck)
        self.layer_norm = nn.LayerNorm(bottleneck)
        self.proj_audio_and_text = nn.Linear(2 * bottleneck, bottleneck)
        self.finetune_data_proj = nn.Linear(bottleneck, finetune)
        self.head = nn.Linear(finetune, len(SCORES), bias=False)
        self.mean = nn.Parameter(torch.zeros(len(SCORES)), requires_grad=False)
        self.std = nn.Parameter(torch.ones(len(SCORES)), requires_grad=False)

    @property
    def sample_rate(self) -> int:
        return int(self.audio_codec.sample_rate)

    @property
    def hop_length(self) -> int:
        return int(self.audio_codec.hop_length)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``text_proj1`` of the CLS features of layer ``nth_text_layer``: [B, hidden]."""
        nth = self.shape.nth_text_layer
        out = self.text_model(input_ids=input_ids, attention_mask=attention_mask,
                              output_hidden_states=nth is not None)
        hidden = out.last_hidden_state if nth is None else out.hidden_states[nth]
        return self.text_proj1(hidden[:, 0])

    def codec_features(self, waves: torch.Tensor) -> torch.Tensor:
        """[B, 1, T] (T whole frames) -> the codec's posterior means [B, T / hop, codebook_dim]."""
        return self.audio_codec(waves).transpose(1, 2)

    def scores(self, text: torch.Tensor, mixture: torch.Tensor, estimate: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 4] from the text features [B, hidden] and the codec features [B, frames, C] of the mixtures and the
        estimates; ``mask`` [B, frames] marks the real frames of a padded batch."""
        both = self.data_proj(torch.cat([mixture, estimate]))
        both_mask = torch.cat([mask, mask]) if mask is not None else None
        mixture_out, estimate_out = self.transformer(both, both_mask).chunk(2)
        audio = self.cat_audio_proj(torch.cat([estimate_out, mixture_out], dim=2))
        query = self.layer_norm(self.text_proj2(text)).unsqueeze(1).expand_as(audio)
        joined = self.proj_audio_and_text(torch.cat([audio, query], dim=2))
        per_frame = self.head(self.finetune_transformer(self.finetune_data_proj(joined), mask))
        if mask is None:
            pooled = per_frame.mean(dim=1)
        else:
            weights = mask.unsqueeze(-1).to(per_frame.dtype)
            pooled = (per_frame * weights).sum(dim=1) / weights.sum(dim=1)
        return pooled * self.std + self.mean
