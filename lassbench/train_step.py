"""One optimisation step of ``lassbench train``: the loss, the precision, the micro-batches.

Loss (``--loss``): ``l1`` on the waveform (LASS-Net and AudioSep both train with it), or ``snr``, the thresholded
negative SNR of MixIT (Wisdom et al., NeurIPS 2020), per example in dB and then averaged:
``10 log10(|s - ŝ|² + τ|s|²) - 10 log10(|s|²)`` with τ = 10^(-30/10) (no reward past 30 dB), and for a silent target
``10 log10(|ŝ|² + τ|x|²) - 10 log10(|x|²)`` (x the mixture). L1 weighs an example by its level, so a quiet target
gets little gradient and turning the whole output down is a cheap way to lower it (SDRi rewards that, SI-SDRi does
not); the SNR loss weighs every example alike and keeps the level, unlike negative SI-SDR.

Precision (``--precision``): ``32`` (float32), ``bf16`` (autocast to bfloat16; weights, gradients, optimiser state
and the loss stay float32) or ``16-mixed`` (autocast to float16 with a dynamic loss scaler, which skips a step whose
gradients overflow). ``--accumulate N`` splits each process's batch of ``N × --batch-size`` examples into N
micro-batches whose gradients add up before one optimiser step, so it trains on the examples — and, up to rounding,
with the gradients — of ``--batch-size N × B`` in a fraction of the activation memory.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from lassbench.errors import LassbenchError
from lassbench.train_data import TrainBatch


class StepResult(float):
    """A step's loss (this process's batch; a float) and the global gradient norm before clipping (NaN or inf when
    the step was skipped by the loss scaler)."""

    grad_norm: float

    def __new__(cls, loss: float, grad_norm: float) -> StepResult:
        result = super().__new__(cls, loss)
        result.grad_norm = grad_norm
        return result


@dataclass
class Precision:
    """Autocast and loss scaling for one ``--precision`` on one device type."""

    name: str = "32"
    device_type: str = "cpu"
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def of(cls, name: str, device: str) -> Precision:
        if name not in PRECISIONS:
            raise LassbenchError(f"--precision {name}: one of {', '.join(PRECISIONS)}")
        device_type = torch.device(device).type
        if name == "bf16" and device_type == "cuda" and not torch.cuda.is_bf16_supported():
            raise LassbenchError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16; use "
                                 "16-mixed")
        scaler = torch.amp.GradScaler(device_type) if name == "16-mixed" else None
        return cls(name, device_type, scaler)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name == "32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16 if self.name == "bf16" else torch.float16)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, clip_grad: float) -> float:
        """Unscale, measure (and clip) the gradient norm, step; returns the norm before clipping."""
        if self.scaler:
            self.scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if clip_grad:
            norm = torch.nn.utils.clip_grad_norm_(params, clip_grad)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if self.scaler:
            self.scaler.step(optimizer)  # skipped when the norm is not finite (an overflow); the scale then drops
            self.scaler.update()
        else:
            optimizer.step()
        return float(norm)


PRECISIONS = ("32", "bf16", "16-mixed")


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: TrainBatch, device: str,
               loss_name: str = "l1", *, accumulate: int = 1, precision: Precision | None = None,
               clip_grad: float = 0.0) -> StepResult:
    """One optimisation step over ``batch`` in ``accumulate`` equal micro-batches; returns the loss of the whole
    batch (this process's) and the gradient norm."""
    precision = precision or Precision()
    model.train()
    optimizer.zero_grad(set_to_none=True)
    parts = micro_batches(batch, accumulate)
    total = 0.0
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        # DDP all-reduces the gradients once, on the last micro-batch's backward
        with contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
            with precision.autocast():
                mixture = part.mixture.to(device)
                estimate = model(mixture, part.query_batch(device))
            # the loss in float32: a bfloat16 mean over 10^5 samples loses the digits the gradient needs
            loss = LOSSES[loss_name](estimate.float(), part.target.to(device), mixture) / len(parts)
            precision.backward(loss)
        total += float(loss.detach())
    return StepResult(total, precision.step(optimizer, clip_grad))


def micro_batches(batch: TrainBatch, count: int) -> list[TrainBatch]:
    """``batch`` cut into ``count`` equal consecutive parts (its size is a multiple of ``count``)."""
    size = len(batch.queries) // count
    return [TrainBatch(batch.mixture[i * size:(i + 1) * size], batch.target[i * size:(i + 1) * size],
                       batch.queries[i * size:(i + 1) * size], batch.labels[i * size:(i + 1) * size])
            for i in range(count)]


def l1_loss(estimate: torch.Tensor, target: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    return (estimate - target).abs().mean()


SNR_THRESHOLD = 10.0 ** (-30.0 / 10.0)  # τ: an example stops paying past 30 dB SNR
SILENT_TARGET = 1e-6  # a target under -60 dB of its mixture counts as silent
POWER_FLOOR = 1e-8  # sums of squares below this (an all-zero example) are floored: no -inf, no NaN gradient


def snr_loss(estimate: torch.Tensor, target: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """MixIT's thresholded negative SNR in dB, averaged over the batch (the module docstring)."""
    estimate, target, mixture = estimate.float(), target.float(), mixture.float()  # float16 power sums overflow
    target_power = target.square().sum(-1)
    mixture_power = mixture.square().sum(-1).clamp_min(POWER_FLOOR)
    active = target_power > SILENT_TARGET * mixture_power
    error = (target - estimate).square().sum(-1)
    with_target = 10 * torch.log10((error + SNR_THRESHOLD * target_power).clamp_min(POWER_FLOOR)
                                   / target_power.clamp_min(POWER_FLOOR))
    without = 10 * torch.log10((estimate.square().sum(-1) + SNR_THRESHOLD * mixture_power) / mixture_power)
    return torch.where(active, with_target, without).mean()


LOSSES = {"l1": l1_loss, "snr": snr_loss}
