"""Many processes, one result: the torchrun plumbing shared by ``train`` and ``run``.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every process joins one group — NCCL when it separates or trains on CUDA,
gloo on CPU — and owns ``cuda:$LOCAL_RANK``. Outside torchrun everything here is a no-op for a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch.distributed as torch_dist

    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Distributed(rank=torch_dist.get_rank(), world=torch_dist.get_world_size())


def process_device(device: str, dist: Distributed) -> str:
    """Under torchrun each process owns one GPU: ``cuda`` becomes ``cuda:$LOCAL_RANK``."""
    if dist.world > 1 and device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return device


def _reduce_device(device: str) -> str:
    return device if device.startswith("cuda") else "cpu"


def all_ranks_ok(ok: bool, dist: Distributed, device: str) -> bool:
    """True when every rank says ``ok`` (a failure on one rank stops them all instead of hanging the others)."""
    if dist.world <= 1:
        return ok
    import torch.distributed as torch_dist

    failed = torch.tensor([0 if ok else 1], device=_reduce_device(device))
    torch_dist.all_reduce(failed)
    return int(failed.item()) == 0


def mean_over_ranks(value: float, dist: Distributed, device: str) -> float:
    """The mean of one number over the ranks (e.g. the loss of the global batch: every rank's batch has the same
    size, so the mean of the ranks' means)."""
    if dist.world <= 1:
        return value
    import torch.distributed as torch_dist

    total = torch.tensor([value], dtype=torch.float64, device=_reduce_device(device))
    torch_dist.all_reduce(total)
    return float(total) / dist.world


def barrier(dist: Distributed, *, finish: bool = False) -> None:
    """Wait for every rank; ``finish`` also leaves the process group (the end of a command)."""
    if dist.world > 1:
        import torch.distributed as torch_dist

        torch_dist.barrier()
        if finish:
            torch_dist.destroy_process_group()
