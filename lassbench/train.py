"""``lassbench train``: fit a separator on a built benchmark, on CPU or GPU, one process or many (torchrun).

Training mixtures are remixed on the fly from the benchmark's training sources with the build protocol's own code
(fresh interferers and SNRs at every step), or read from the built fixed mixtures (``--mixing fixed``). The batch of
step ``k`` is a pure function of (seed, k), so a resumed run continues exactly where it stopped, and under
``torchrun`` each process draws its own slice of the same global batch.

The loss, the precision and ``--accumulate`` are those of one step (:mod:`lassbench.train_step`); checkpoints,
resuming and the logs are :mod:`lassbench.train_state`'s.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import random
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lassbench.audio import sweep_stale_temps
from lassbench.distributed import Distributed, barrier, init_distributed, mean_over_ranks, process_device
from lassbench.errors import LassbenchError
from lassbench.models.lassnet import SeparatorConfig, sized_config
from lassbench.models.registry import build_model, count_parameters, get_model_entry, save_checkpoint
from lassbench.train_data import MIXINGS, open_training_data
from lassbench.train_examples import CROPS
from lassbench.train_published import (
    FineTuneOrigin,
    check_finetune,
    load_for_finetuning,
    official_optimizer,
    save_official,
)
from lassbench.train_state import (
    TENSORBOARD_MISSING,
    append_log,
    initialise_from,
    open_tensorboard,
    plain_settings,
    resume_state,
    save_training_state,
    truncate_log,
    write_tensorboard,
)
from lassbench.train_step import LOSSES, Precision, train_step

log = logging.getLogger(__name__)



@dataclass
class TrainConfig:
    model: str = "lassnet"
    data: str | list[str] = ""  # a built benchmark folder (manifest.csv + dataset.json), or several (trained together)
    init: str | None = None  # start from this trained checkpoint's weights (fine-tuning), not from random ones
    out: str = "runs/lassnet"
    size: str = "tiny"
    text_encoder: str | None = None  # None: the size's default
    finetune_text: bool = False
    mixing: str = "remix"  # remix (on the fly from sources) | fixed (built mixtures) | audiosep (AudioSep's mixer)
    crop: str = "uniform"  # uniform | active (centred on the target's sound; lassbench.train_examples)
    loss: str = "l1"  # l1 | snr (see the module docstring)
    steps: int = 2000
    batch_size: int = 8
    segment_seconds: float = 2.0
    lr: float = 2e-3  # peak; linear warm-up over the first 5% of steps, cosine decay to 10% at the end
    weight_decay: float = 1e-2
    val_every: int = 250
    val_items: int = 64
    checkpoint_every: int = 250
    precision: str = "32"  # 32 | bf16 | 16-mixed (see the module docstring)
    accumulate: int = 1  # micro-batches of --batch-size per optimiser step
    clip_grad: float = 0.0  # clip the global gradient norm to this (0: no clipping)
    tensorboard: bool = False  # also write TensorBoard event files to OUT/tensorboard (needs the tensorboard package)
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # 0: torch's default
    workers: int = 0  # DataLoader processes rendering examples ahead (0: in the training process)
    channels: list[int] | None = None  # override the size's U-Net widths (quick experiments, tests)
    cond_dim: int | None = None


def train(config: TrainConfig, *, resume: bool = False) -> Path:
    """Train ``config.model``; returns the path of the final checkpoint (``OUT/model.pt``; for a published system
    ``OUT/model.ckpt``, in its official layout)."""
    entry = get_model_entry(config.model)
    published = entry.published is not None
    if not (entry.trainable or published):
        raise LassbenchError(f"model '{config.model}' has nothing to train")
    check_config(config)
    if published:
        check_finetune(config)
    out = Path(config.out)
    if int(os.environ.get("RANK", "0")) == 0:
        check_out(out, resume=resume)
    if config.threads:
        torch.set_num_threads(config.threads)
    dist = init_distributed(config.device)
    config.device = process_device(config.device, dist)
    data = open_training_data(config.data, mixing=config.mixing, seed=config.seed, crop=config.crop)
    _seed_everything(config.seed)
    model, trainable, model_config, optimizer = _build_trainee(config, data, published, resume=resume)
    precision = Precision.of(config.precision, config.device)
    start = 0
    if resume:
        start = resume_state(out / "last.pt", trainable, optimizer, precision, asdict(config), data.fingerprint)
    wrapped = _wrap_ddp(model, config.device, dist, find_unused=published)
    board = None
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(out)  # checkpoint / log temps of a run killed with SIGKILL
        truncate_log(out / "log.csv", start)  # steps after the last checkpoint are trained (and logged) again
        board = open_tensorboard(out, start) if config.tensorboard else None
        log.info("training %s (%d parameters) from step %d", config.model, count_parameters(model), start)
    segment = int(round(config.segment_seconds * data.sample_rate))
    # a step's examples are one process batch of accumulate x batch-size, split into micro-batches in train_step
    batches = data.batches(start, config.steps, config.batch_size * config.accumulate, segment, rank=dist.rank,
                           world=dist.world, workers=config.workers, mix_group=config.batch_size)
    bar = tqdm(zip(range(start, config.steps), batches, strict=True), initial=start, total=config.steps,
               disable=not dist.is_main, desc=f"train {config.model}", unit="step", dynamic_ncols=True)
    for step, batch in bar:
        lr = learning_rate(step, config)
        _set_learning_rate(optimizer, lr)
        result = train_step(wrapped, optimizer, batch, config.device, config.loss, accumulate=config.accumulate,
                            precision=precision, clip_grad=config.clip_grad)
        loss = mean_over_ranks(float(result), dist, config.device)
        bar.set_postfix(loss=f"{loss:.4f}")
        done = step + 1
        record = {"step": done, "loss": loss, "lr": lr, "grad_norm": result.grad_norm}
        if dist.is_main and (done % config.val_every == 0 or done == config.steps):
            record["val_sdri"] = validate(model, data, config)
            bar.write(f"step {done}: loss {loss:.4f}  val SDRi {record['val_sdri']:.2f} dB")
        if dist.is_main:
            append_log(out / "log.csv", record)
            if board is not None:
                write_tensorboard(board, record)
            if done % config.checkpoint_every == 0 or done == config.steps:
                save_training_state(out / "last.pt", trainable, optimizer, precision, asdict(config), model_config,
                                    done, data.fingerprint)
    if board is not None:
        board.close()
    final = out / ("model.ckpt" if published else "model.pt")
    if dist.is_main:
        _save_final(final, model, config, model_config, data, published)
    barrier(dist, finish=True)
    return final


def _build_trainee(config: TrainConfig, data, published: bool, *, resume: bool):
    """(model, the module whose state last.pt holds, what last.pt records as its config, optimiser)."""
    if published:  # the separator trains, CLAP stays frozen (lassbench.train_published)
        model = load_for_finetuning(config, data.sample_rate, config.device)
        origin = FineTuneOrigin(config.model, str(config.init), config.text_encoder)
        return model, model.ss_model, origin, official_optimizer(model, config.lr)
    model_config = _model_config(config, data.classes, data.sample_rate)
    model = build_model(config.model, model_config, finetune_text=config.finetune_text).to(config.device)
    if config.init and not resume:  # a resumed run continues from last.pt, which holds the fine-tuned state
        initialise_from(model, Path(config.init), config.model)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    return model, model, model_config, optimizer


def _save_final(path: Path, model, config: TrainConfig, model_config, data, published: bool) -> None:
    settings = {"train_config": plain_settings(asdict(config))}
    if published:
        save_official(path, model, Path(config.init), config.steps, {"data_fingerprint": data.fingerprint, **settings})
    else:
        save_checkpoint(path, model, name=config.model, config=model_config, step=config.steps,
                        data_fingerprint=data.fingerprint, extra={**settings, **_vocabulary(config, data)})


def check_config(config: TrainConfig) -> None:
    """Refuse settings that would fail (or train nothing) before any data is read."""
    positive = {"--steps": config.steps, "--batch-size": config.batch_size, "--val-every": config.val_every,
                "--checkpoint-every": config.checkpoint_every, "--accumulate": config.accumulate}
    for flag, value in positive.items():
        if value < 1:
            raise LassbenchError(f"{flag} {value}: must be at least 1")
    for flag, value in {"--lr": config.lr, "--segment-seconds": config.segment_seconds}.items():
        if not (math.isfinite(value) and value > 0):
            raise LassbenchError(f"{flag} {value}: must be a positive number")
    for flag, value in {"--seed": config.seed, "--workers": config.workers, "--threads": config.threads,
                        "val_items": config.val_items}.items():
        if value < 0:
            raise LassbenchError(f"{flag} {value}: must not be negative")
    if not (math.isfinite(config.weight_decay) and config.weight_decay >= 0):
        raise LassbenchError(f"weight decay {config.weight_decay}: must be a non-negative number")
    if not (math.isfinite(config.clip_grad) and config.clip_grad >= 0):
        raise LassbenchError(f"--clip-grad {config.clip_grad}: must be a non-negative number (0: no clipping)")
    check_device(config.device)
    Precision.of(config.precision, config.device)  # refuses what this device cannot do
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise LassbenchError(TENSORBOARD_MISSING)
    if config.loss not in LOSSES:
        raise LassbenchError(f"--loss {config.loss}: one of {', '.join(LOSSES)}")
    if config.crop not in CROPS:
        raise LassbenchError(f"--crop {config.crop}: one of {', '.join(CROPS)}")
    if config.mixing not in MIXINGS:
        raise LassbenchError(f"--mixing {config.mixing}: one of {', '.join(MIXINGS)}")


def check_device(device: str) -> None:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and present on this machine."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise LassbenchError(f"--device {device!r}: not a device (cpu, cuda, cuda:N, mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise LassbenchError(f"--device {device}: no CUDA device here (torch {torch.__version__}, {build})")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise LassbenchError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise LassbenchError(f"--device {device}: MPS is not available here")
    elif parsed.type != "cpu":
        raise LassbenchError(f"--device {device}: not supported (cpu, cuda, cuda:N, mps)")


def check_out(out: Path, *, resume: bool) -> None:
    """``--out`` must be (or be creatable as) a writable folder, and must not hold a run unless resuming it."""
    if out.exists() and not out.is_dir():
        raise LassbenchError(f"--out {out}: exists and is not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise LassbenchError(f"--out {out}: {existing} is a file, not a folder")
    try:  # os.access says yes to root on a read-only mount: try a real file
        fd, probe = tempfile.mkstemp(prefix=".lassbench-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise LassbenchError(f"--out {out}: cannot write in {existing} ({exc.strerror})") from None
    if not resume:
        held = [name for name in ("last.pt", "model.pt", "model.ckpt") if (out / name).exists()]
        if held:
            raise LassbenchError(f"--out {out} already holds a training run ({held[0]}): pass --resume to continue "
                                 "it, or choose another --out")


def learning_rate(step: int, config: TrainConfig) -> float:
    """A pure function of the step (so resuming needs no scheduler state): warm-up, then cosine to 10%."""
    warmup = max(1, config.steps // 20)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@torch.no_grad()
def validate(model: torch.nn.Module, data, config: TrainConfig) -> float:
    """Mean SDRi on the first ``val_items`` validation items (fixed mixtures)."""
    from lassbench.metrics import sdri

    model.eval()
    values = []
    for batch in data.validation_batches(config.val_items, config.batch_size):
        estimate = model(batch.mixture.to(config.device), batch.query_batch(config.device)).cpu()
        values.extend(np.atleast_1d(sdri(batch.target.numpy(), estimate.numpy(), batch.mixture.numpy())))
    model.train()
    return float(np.mean(values)) if values else math.nan


def _model_config(config: TrainConfig, classes: list[str], sample_rate: int) -> SeparatorConfig:
    model_config = sized_config(config.size)
    # the STFT sizes are in samples: the model is what it was trained at, and `run` resamples other rates to it
    model_config.backbone = replace(model_config.backbone, sample_rate=sample_rate)
    if config.text_encoder:
        model_config.text_encoder = config.text_encoder
    if config.channels:
        model_config.backbone = replace(model_config.backbone, channels=list(config.channels),
                                        cond_dim=config.cond_dim or model_config.backbone.cond_dim)
    if config.model == "class-conditioned":
        model_config.classes = list(classes)
    return model_config


def _vocabulary(config: TrainConfig, data) -> dict:
    """A tag-queried checkpoint records the tags it was trained on, so a query with tags it never saw can be told
    apart (``lassbench separate`` refuses it) from one it knows."""
    return {"tags": list(data.tags)} if config.model == "tag-queried" else {}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _wrap_ddp(model: torch.nn.Module, device: str, dist: Distributed, *, find_unused: bool = False) -> torch.nn.Module:
    if dist.world <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused)
