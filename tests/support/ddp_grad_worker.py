"""Helper process for the DDP test: one training step's gradients, saved per rank (not collected by pytest)."""

import os
import sys
from pathlib import Path

import torch

from lassbench.distributed import init_distributed
from lassbench.models.lassnet import sized_config
from lassbench.models.registry import build_model
from lassbench.models.resunet import BackboneConfig
from lassbench.train import _wrap_ddp
from lassbench.train_data import open_training_data

GLOBAL_BATCH = 4


def main(data_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    dist = init_distributed("cpu")
    config = sized_config("tiny")
    config.backbone = BackboneConfig(channels=[4, 8], cond_dim=16)
    torch.manual_seed(0)
    model = build_model("lassnet", config)
    wrapped = _wrap_ddp(model, "cpu", dist)
    data = open_training_data(data_dir, mixing="remix", seed=0)
    batch = data.batch(0, GLOBAL_BATCH // dist.world, 4000, rank=dist.rank, world=dist.world)
    loss = (wrapped(batch.mixture, batch.query_batch("cpu")) - batch.target).abs().mean()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.save(grads, Path(out) / f"grads-world{dist.world}-rank{dist.rank}.pt")
    if dist.world > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main(sys.argv[1], sys.argv[2])
