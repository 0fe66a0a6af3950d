"""Helper process for the DDP training test: `train()` for a few steps (not collected by pytest).

argv: DATA OUT BATCH_SIZE WORKERS [ACCUMULATE]. Under WORLD_SIZE=2 (gloo, CPU) each rank trains on its half of the
global batch.
"""

import os
import sys

import torch

from lassbench.train import TrainConfig, train


def main(data: str, out: str, batch_size: int, workers: int, accumulate: int = 1) -> None:
    torch.set_num_threads(1)
    config = TrainConfig(model="lassnet", data=data, out=out, steps=3, batch_size=batch_size, segment_seconds=0.5,
                         val_every=3, val_items=2, checkpoint_every=3, channels=[4, 8], cond_dim=16, workers=workers,
                         accumulate=accumulate)
    train(config)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *map(int, sys.argv[5:6]))
