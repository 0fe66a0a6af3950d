"""Fine-tuning a published AudioSep-family system (``audiosep``, ``dcase2024-baseline``, ``audiosep-dp``) on a
built benchmark, by the official recipe (github.com/Audio-AGI/AudioSep at 944583f: ``models/audiosep.py``,
``losses.py``, ``config/audiosep_base.yaml``, ``train.py``):

- the separator (``ss_model``, ResUNet30) trains; the CLAP text encoder (``query_encoder``) stays frozen and in eval
  mode, as the official ``training_step`` calls ``ss_model.train()`` only and the optimiser holds only
  ``ss_model.parameters()``;
- loss: L1 on the waveform (``losses.l1_wav``, ``--loss l1``); mixtures: the official ``SegmentMixer``
  (``--mixing audiosep``, :func:`lassbench.train_data.segment_mix`);
- optimiser: AdamW with AMSGrad, betas (0.9, 0.999), eps 1e-8, no weight decay; under torchrun on GPUs, BatchNorm is
  synchronised over the processes (``sync_batchnorm: True``; torch has no CPU SyncBatchNorm), and DDP looks for unused
  parameters (the decoders'
  ``bn2`` and their FiLM biases exist but are never used: ``ddp_find_unused_parameters_true``).

Not the official schedule: its ``constant_warm_up`` holds the learning rate at 0.001x for 10,000 steps, 0.01x for the
next 10,000 and 0.1x for the next (a schedule for training from scratch); a fine-tune uses lassbench's warm-up and
cosine decay (:func:`lassbench.train.learning_rate`) from ``--lr``.

The result, ``OUT/model.ckpt``, is the ``--init`` file with its ``ss_model.*`` tensors replaced by the trained ones
(in their stored dtype) and every other entry — CLAP, torchlibrosa's STFT kernels — carried over unchanged: the
official layout, which ``lassbench run`` / ``separate`` and the official ``AudioSep.load_from_checkpoint`` read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.published.loading import load_published, read_checkpoint_file
from lassbench.models.published.systems import PUBLISHED, PublishedSeparator
from lassbench.models.registry import _write_checkpoint

SEPARATOR_PREFIX = "ss_model."


@dataclass
class FineTuneOrigin:
    """What ``last.pt`` of a fine-tune records in place of a lassbench model config."""

    system: str
    init: str
    text_encoder: str | None = None  # the tokenizer folder

    def to_dict(self) -> dict:
        return asdict(self)


class FineTunedSystem(nn.Module):
    """A published separator being fine-tuned: ``model(mixture, QueryBatch)`` as in ``run``, with only ``ss_model``
    trainable and CLAP frozen in eval mode (no dropout) whatever mode the whole is put in."""

    def __init__(self, separator: PublishedSeparator) -> None:
        super().__init__()
        self.separator = separator
        for parameter in separator.net.query_encoder.parameters():
            parameter.requires_grad_(False)

    @property
    def ss_model(self) -> nn.Module:
        return self.separator.net.ss_model

    def train(self, mode: bool = True) -> FineTunedSystem:
        super().train(mode)
        self.separator.net.query_encoder.eval()
        return self

    def forward(self, mixture: torch.Tensor, batch) -> torch.Tensor:
        return self.separator(mixture, batch)


def check_finetune(config, sample_rate: int | None = None) -> None:
    """What a published fine-tune needs beyond a lassbench run: its released weights, its own rate, CLAP frozen."""
    spec = PUBLISHED[config.model]
    if spec.family != "resunet30":
        raise LassbenchError(f"'{config.model}' cannot be fine-tuned by lassbench: of the published systems, "
                             "audiosep, dcase2024-baseline and audiosep-dp can")
    if not config.init:
        raise LassbenchError(f"fine-tuning {config.model} starts from its released checkpoint: pass --init FILE "
                             f"({spec.checkpoint})")
    if config.finetune_text:
        raise LassbenchError(f"--finetune-text: {config.model}'s recipe keeps its CLAP text encoder frozen")
    if sample_rate is not None and sample_rate != spec.sample_rate:
        raise LassbenchError(f"--data is at {sample_rate} Hz, {config.model} trains at {spec.sample_rate} Hz: "
                             f"build the benchmark with build-dataset --sample-rate {spec.sample_rate}")


def load_for_finetuning(config, sample_rate: int, device: str) -> FineTunedSystem:
    check_finetune(config, sample_rate)
    separator, _ = load_published(config.model, config.init, text_encoder=config.text_encoder, device=device)
    model = FineTunedSystem(separator)
    # torch's SyncBatchNorm runs on CUDA only: several CPU processes normalise by their own batch's statistics
    if device.startswith("cuda") and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        separator.net.ss_model = nn.SyncBatchNorm.convert_sync_batchnorm(separator.net.ss_model)
    return model.train()


def official_optimizer(model: FineTunedSystem, lr: float) -> torch.optim.Optimizer:
    """``AudioSep.configure_optimizers``: AdamW over the separator only."""
    return torch.optim.AdamW(model.ss_model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                             amsgrad=True)


def save_official(path: Path, model: FineTunedSystem, init: Path, step: int, provenance: dict) -> Path:
    """``init``'s checkpoint with the trained separator in it (the module docstring)."""
    payload = read_checkpoint_file(init)
    nested = isinstance(payload.get("state_dict"), dict)
    state = dict(payload["state_dict"] if nested else payload)
    trained = {SEPARATOR_PREFIX + k: v.detach().cpu() for k, v in model.ss_model.state_dict().items()}
    # lassbench's ResUNet30 computes the STFT with torch.stft: the file's STFT kernels are carried over, not trained
    missing = sorted(k for k in trained if k not in state)
    if missing:
        raise LassbenchError(f"{init}: the trained separator has weights the file lacks ({missing[0]}...)")
    for key, value in trained.items():
        state[key] = value.to(state[key].dtype)
    if not nested:  # a bare state dict stays one: the official code loads it strictly
        return _write_checkpoint(path, state)
    payload = {**payload, "state_dict": state, "global_step": int(payload.get("global_step") or 0) + step,
               "lassbench": provenance}  # plain data beside the weights; Lightning and lassbench ignore it
    return _write_checkpoint(path, payload)
