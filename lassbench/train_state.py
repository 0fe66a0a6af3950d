"""What a training run keeps on disk: checkpoint state (``last.pt``, ``--resume``, ``--init``), ``log.csv`` and
TensorBoard events.

A run's *settings* are its ``TrainConfig`` as a dict (``dataclasses.asdict``): ``last.pt`` records them, and a resume
with settings that change what is trained (:data:`RESUME_KEYS`) is refused.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import torch

from lassbench.audio import atomic_path
from lassbench.errors import LassbenchError
from lassbench.models.lassnet import SeparatorConfig
from lassbench.models.registry import read_checkpoint, save_checkpoint
from lassbench.train_published import FineTuneOrigin
from lassbench.train_step import Precision

log = logging.getLogger(__name__)


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


def resume_state(path: Path, model, optimizer, precision: Precision, settings: dict, fingerprint: str) -> int:
    """Load ``last.pt`` into the model, optimiser and loss scaler of a run with these settings; returns its step."""
    if not path.is_file():
        raise LassbenchError(f"--resume: no checkpoint at {path}")
    state = read_checkpoint(path)
    if state["model"] != settings["model"]:
        raise LassbenchError(f"{path}: checkpoint is for model '{state['model']}', not '{settings['model']}'")
    if state.get("data_fingerprint") and state["data_fingerprint"] != fingerprint:
        raise LassbenchError(f"{path}: checkpoint was trained on other data (fingerprint differs): refusing to resume")
    _check_same_run(path, state, settings)
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
OLDER_RUN_DEFAULTS = {"crop": "uniform", "loss": "l1", "precision": "32", "accumulate": 1, "clip_grad": 0.0}


def _check_same_run(path: Path, state: dict, settings: dict) -> None:
    saved = state.get("train_config") or {}
    saved = {**OLDER_RUN_DEFAULTS, **saved}
    changed = [f"--{k.replace('_', '-')} {saved[k]!r} -> {settings[k]!r}" for k in RESUME_KEYS
               if k in saved and saved[k] != settings[k]]
    if changed:
        raise LassbenchError(f"{path}: --resume with other settings than the run it continues ({'; '.join(changed)}); "
                             "use the same settings or a new --out")
    if int(state["step"]) > settings["steps"]:
        raise LassbenchError(f"{path}: the checkpoint is already at step {state['step']}, past --steps "
                             f"{settings['steps']}")


def save_training_state(path: Path, model, optimizer, precision: Precision, settings: dict,
                        model_config: SeparatorConfig | FineTuneOrigin, step: int, fingerprint: str) -> None:
    """``last.pt``: the weights, optimiser and loss-scaler state and the settings, at ``step``."""
    extra = {"optimizer": optimizer.state_dict(), "train_config": plain_settings(settings)}
    if precision.scaler:
        extra["scaler"] = precision.scaler.state_dict()
    save_checkpoint(path, model, name=settings["model"], config=model_config, step=step,
                    data_fingerprint=fingerprint, extra=extra)


def truncate_log(path: Path, step: int) -> None:
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


def append_log(path: Path, record: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(record)


TENSORBOARD_MISSING = ("--tensorboard needs the tensorboard package (pip install tensorboard); log.csv is written "
                       "without it")


def open_tensorboard(out: Path, start: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise LassbenchError(TENSORBOARD_MISSING) from None
    # purge_step hides the events of steps after the checkpoint, which a resumed run trains (and logs) again
    return SummaryWriter(str(out / "tensorboard"), purge_step=start + 1 if start else None)


def write_tensorboard(board, record: dict) -> None:
    for key in ("loss", "val_sdri", "lr", "grad_norm"):
        if key in record and math.isfinite(record[key]):
            board.add_scalar(f"train/{key}", record[key], record["step"])
    board.flush()


def plain_settings(data: dict) -> dict:
    """Only str/int/float/bool/None/list/dict survive weights_only loading."""
    return {k: v for k, v in data.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
