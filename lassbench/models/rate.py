"""Running a separator at its own sample rate on a benchmark at another one.

A model is trained at one rate (its STFT sizes are in samples): the tiny models at 16 kHz, the released LASS-Net and
AudioSep at 32 kHz. ``lassbench run`` sets ``input_rate`` to the benchmark's rate; the mixture is resampled (soxr) to
the model's rate, separated, and the estimate resampled back and cut to the input's length, as ``lassbench
separate`` does for a file. At equal rates nothing is resampled (and training never resamples).
"""

from __future__ import annotations

import numpy as np
import torch


def resample_batch(wav: torch.Tensor, source: int, target: int) -> torch.Tensor:
    """Resample the rows of ``wav`` [B, T] from ``source`` to ``target`` Hz (soxr, on the CPU; not differentiable)."""
    if source == target:
        return wav
    import soxr

    rows = [soxr.resample(row, source, target) for row in wav.detach().cpu().numpy().astype(np.float32)]
    return torch.from_numpy(np.stack(rows)).to(wav.device)


def fit_length(wav: torch.Tensor, length: int) -> torch.Tensor:
    """Cut or zero-pad the last axis to ``length``."""
    if wav.shape[-1] >= length:
        return wav[..., :length]
    return torch.nn.functional.pad(wav, (0, length - wav.shape[-1]))


def at_model_rate(separate, mixture: torch.Tensor, input_rate: int, model_rate: int) -> torch.Tensor:
    """``separate(mixture at model_rate)``, returned at ``input_rate`` with the input's length."""
    if input_rate == model_rate:
        return separate(mixture)
    estimate = separate(resample_batch(mixture, input_rate, model_rate))
    return fit_length(resample_batch(estimate, model_rate, input_rate), mixture.shape[-1])
