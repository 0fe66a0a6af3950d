"""Baselines that share LASS-Net's backbone but not its query, and the trivial ``mixture`` reference."""

from __future__ import annotations

import torch
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch, SeparatorConfig, TextQueriedSeparator
from lassbench.models.rate import at_model_rate
from lassbench.models.resunet import ConditionedResUNet


class TagQueriedSeparator(TextQueriedSeparator):
    """Queried by the target's class tags (label words through the same text encoder) instead of a caption."""

    query_type = "tags"

    def queries_of(self, batch: QueryBatch) -> list[str]:
        if any(not labels for labels in batch.labels):
            raise LassbenchError("tag-queried separation needs class labels for every item (manifest `labels`)")
        return [", ".join(labels) for labels in batch.labels]


class ClassConditionedSeparator(nn.Module):
    """The classic universal-separation baseline: a learned embedding of a one-hot class id; no free text."""

    query_type = "class-id"

    def __init__(self, config: SeparatorConfig) -> None:
        super().__init__()
        if not config.classes:
            raise LassbenchError("class-conditioned model needs a class list (taken from the training labels)")
        self.config = config
        self.class_index = {name: i for i, name in enumerate(config.classes)}
        self.backbone = ConditionedResUNet(config.backbone)
        self.embedding = nn.Embedding(len(config.classes), config.backbone.cond_dim)
        self.sample_rate = config.backbone.sample_rate  # the rate it was trained at
        self.input_rate = self.sample_rate  # the rate of the mixtures it is given (lassbench.models.rate)

    def class_ids(self, batch: QueryBatch) -> torch.Tensor:
        ids = []
        for labels in batch.labels:
            if not labels or labels[0] not in self.class_index:
                raise LassbenchError(
                    f"class-conditioned model knows classes {sorted(self.class_index)}; item has {labels or 'none'}"
                )
            ids.append(self.class_index[labels[0]])
        return torch.tensor(ids, device=self.embedding.weight.device)

    def forward(self, mixture: torch.Tensor, batch: QueryBatch) -> torch.Tensor:
        condition = self.embedding(self.class_ids(batch))
        return at_model_rate(lambda wav: self.backbone(wav, condition), mixture, self.input_rate, self.sample_rate)


class MixturePassThrough(nn.Module):
    """Returns the mixture: SDRi is 0 by definition, the floor every system must beat."""

    query_type = "none"

    def forward(self, mixture: torch.Tensor, batch: QueryBatch) -> torch.Tensor:
        return mixture.clone()
