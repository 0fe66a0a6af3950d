"""``lassbench train``: fit a separator on a built benchmark, on CPU or GPU, one process or many (torchrun).

Training mixtures are remixed on the fly from the benchmark's training sources with the build protocol's own code
(fresh interferers and SNRs at every step), or read from the built fixed mixtures (``--mixing fixed``). The batch of
step ``k`` is a pure function of (seed, k), so a resumed run continues exactly where it stopped, and under
``torchrun`` each process draws its own slice of the same global batch.

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
import csv
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

from lassbench.audio import atomic_path, sweep_stale_temps
from lassbench.distributed import Distributed, barrier, init_distributed, mean_over_ranks, process_device
from lassbench.errors import LassbenchError
from lassbench.models.lassnet import SeparatorConfig, sized_config
from lassbench.models.registry import (
    build_model,
    count_parameters,
    get_model_entry,
    read_checkpoint,
    save_checkpoint,
)
from lassbench.train_data import MIXINGS, TrainBatch, open_training_data
from lassbench.train_examples import CROPS
from lassbench.train_published import (
    FineTuneOrigin,
    check_finetune,
    load_for_finetuning,
    official_optimizer,
    save_official,
)

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
    start = _maybe_resume(out / "last.pt", trainable, optimizer, precision, config, data.fingerprint) if resume else 0
    wrapped = _wrap_ddp(model, config.device, dist, find_unused=published)
    board = None
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(out)  # checkpoint / log temps of a run killed with SIGKILL
        _truncate_log(out / "log.csv", start)  # steps after the last checkpoint are trained (and logged) again
        board = _open_tensorboard(out, start) if config.tensorboard else None
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
            _append_log(out / "log.csv", record)
            if board is not None:
                _write_tensorboard(board, record)
            if done % config.checkpoint_every == 0 or done == config.steps:
                _save_training_state(out / "last.pt", trainable, optimizer, precision, config, model_config, done,
                                     data.fingerprint)
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
    settings = {"train_config": _plain(asdict(config))}
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


def initialise_from(model: torch.nn.Module, path: Path, name: str) -> None:
    """Copy a trained checkpoint's weights into ``model`` (fine-tuning). A class-conditioned model takes the
    embedding of every class both know (by name); classes new to it keep their fresh initialisation."""
    if not path.is_file():
        raise LassbenchError(f"--init {path}: no such checkpoint")
    state = read_checkpoint(path)
    if state["model"] != name:
        raise LassbenchError(f"--init {path}: checkpoint is for model '{state['model']}', not '{name}'")
    saved = SeparatorConfig.from_dict(state["config"])
    ours = model.config
    if saved.backbone != ours.backbone or saved.text_encoder != ours.text_encoder:
        raise LassbenchError(f"--init {path}: another architecture (backbone {saved.backbone}, text encoder "
                             f"{saved.text_encoder}) than this run's ({ours.backbone}, {ours.text_encoder})")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state["state_dict"].items()}
    if "embedding.weight" in weights and saved.classes != ours.classes:
        weights["embedding.weight"] = _embedding_by_class(weights["embedding.weight"], saved.classes, model)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise LassbenchError(f"--init {path}: weights do not fit ({' '.join(str(exc).split())[:200]})") from None
    log.info("initialised %s from %s (step %s)", name, path, state.get("step"))


def _embedding_by_class(saved: torch.Tensor, saved_classes: list[str], model) -> torch.Tensor:
    rows = model.embedding.weight.detach().clone()
    for index, name in enumerate(saved_classes):
        if name in model.class_index:
            rows[model.class_index[name]] = saved[index]
    return rows


def _maybe_resume(path: Path, model, optimizer, precision: Precision, config: TrainConfig, fingerprint: str) -> int:
    if not path.is_file():
        raise LassbenchError(f"--resume: no checkpoint at {path}")
    state = read_checkpoint(path)
    if state["model"] != config.model:
        raise LassbenchError(f"{path}: checkpoint is for model '{state['model']}', not '{config.model}'")
    if state.get("data_fingerprint") and state["data_fingerprint"] != fingerprint:
        raise LassbenchError(f"{path}: checkpoint was trained on other data (fingerprint differs): refusing to resume")
    _check_same_run(path, state, config)
    model.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    if precision.scaler and state.get("scaler"):
        precision.scaler.load_state_dict(state["scaler"])
    return int(state["step"])


# settings that change what is trained: a resume with other values would not continue the same run (``steps`` may
# grow: the schedule is a function of the step; device, workers, threads and the logging cadence change no number)
RESUME_KEYS = ("init", "size", "text_encoder", "finetune_text", "mixing", "crop", "loss", "batch_size",
               "segment_seconds", "lr", "weight_decay", "seed", "channels", "cond_dim", "precision", "accumulate",
               "clip_grad")
# what a run saved before these settings existed trained with
# what a run saved before these settings existed trained with
OLDER_RUN_DEFAULTS = {"crop": "uniform", "loss": "l1", "precision": "32", "accumulate": 1, "clip_grad": 0.0}


def _check_same_run(path: Path, state: dict, config: TrainConfig) -> None:
    saved = state.get("train_config") or {}
    saved = {**OLDER_RUN_DEFAULTS, **saved}
    changed = [f"--{k.replace('_', '-')} {saved[k]!r} -> {getattr(config, k)!r}" for k in RESUME_KEYS
               if k in saved and saved[k] != getattr(config, k)]
    if changed:
        raise LassbenchError(f"{path}: --resume with other settings than the run it continues ({'; '.join(changed)}); "
                             "use the same settings or a new --out")
    if int(state["step"]) > config.steps:
        raise LassbenchError(f"{path}: the checkpoint is already at step {state['step']}, past --steps {config.steps}")


def _vocabulary(config: TrainConfig, data) -> dict:
    """A tag-queried checkpoint records the tags it was trained on, so a query with tags it never saw can be told
    apart (``lassbench separate`` refuses it) from one it knows."""
    return {"tags": list(data.tags)} if config.model == "tag-queried" else {}


def _save_training_state(path: Path, model, optimizer, precision: Precision, config: TrainConfig,
                         model_config: SeparatorConfig | FineTuneOrigin, step: int, fingerprint: str) -> None:
    extra = {"optimizer": optimizer.state_dict(), "train_config": _plain(asdict(config))}
    if precision.scaler:
        extra["scaler"] = precision.scaler.state_dict()
    save_checkpoint(path, model, name=config.model, config=model_config, step=step, data_fingerprint=fingerprint,
                    extra=extra)


def _truncate_log(path: Path, step: int) -> None:
    """Keep the rows of steps up to ``step`` (a resumed run logs the steps after its checkpoint again)."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if row.get("step", "").isdigit() and int(row["step"]) <= step]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


LOG_COLUMNS = ["step", "loss", "val_sdri", "lr", "grad_norm"]


def _append_log(path: Path, record: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(record)


TENSORBOARD_MISSING = ("--tensorboard needs the tensorboard package (pip install tensorboard); log.csv is written "
                       "without it")


def _open_tensorboard(out: Path, start: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise LassbenchError(TENSORBOARD_MISSING) from None
    # purge_step hides the events of steps after the checkpoint, which a resumed run trains (and logs) again
    return SummaryWriter(str(out / "tensorboard"), purge_step=start + 1 if start else None)


def _write_tensorboard(board, record: dict) -> None:
    for key in ("loss", "val_sdri", "lr", "grad_norm"):
        if key in record and math.isfinite(record[key]):
            board.add_scalar(f"train/{key}", record[key], record["step"])
    board.flush()


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


def _plain(data: dict) -> dict:
    """Only str/int/float/bool/None/list/dict survive weights_only loading."""
    return {k: v for k, v in data.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
