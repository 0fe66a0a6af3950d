"""CLAP's text branch as AudioSep uses it (``models/clap_encoder.py`` -> ``CLAP.get_text_embedding``).

RoBERTa's pooler output (dense + tanh on the first token) -> ``text_projection`` (Linear(768, 512)-ReLU-
Linear(512, 512)) -> L2 normalisation. Module names follow the release (``query_encoder.model.text_branch`` /
``.text_projection``) so the checkpoint's keys load as they are. The audio branch is not built: a text query never
uses it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClapText(nn.Module):
    def __init__(self, roberta: nn.Module, joint_dim: int = 512) -> None:
        super().__init__()
        self.text_branch = roberta
        width = roberta.config.hidden_size
        self.text_projection = nn.Sequential(nn.Linear(width, joint_dim), nn.ReLU(), nn.Linear(joint_dim, joint_dim))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.text_branch(input_ids=input_ids, attention_mask=attention_mask)["pooler_output"]
        return F.normalize(self.text_projection(pooled), dim=-1)


class ClapQueryEncoder(nn.Module):
    """``CLAP_Encoder``: holds the CLAP model under ``model`` (hence ``query_encoder.model.*`` keys)."""

    def __init__(self, roberta: nn.Module) -> None:
        super().__init__()
        self.model = ClapText(roberta)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask)


def tokenize(tokenizer, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """AudioSep pads every query to 512 tokens; padding to the longest gives the same pooled output (padding is
    masked out) at a fraction of the cost."""
    batch = tokenizer(queries, padding=True, truncation=True, max_length=512, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]
