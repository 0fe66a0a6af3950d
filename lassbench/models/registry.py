"""The model zoo: every separator by name, how to build it, and self-describing checkpoints.

A checkpoint is a plain dict (loadable with ``torch.load(..., weights_only=True)``): ``model`` (registry name),
``config`` (the :class:`SeparatorConfig` as a dict), ``state_dict``, ``text_encoder``, ``data_fingerprint``,
``step``, ``lassbench_version``, for tag-queried models ``tags`` (the tags of the training data) and, for training
checkpoints, ``optimizer`` and ``rng``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lassbench import __version__
from lassbench.audio import atomic_path
from lassbench.errors import LassbenchError
from lassbench.models.baselines import ClassConditionedSeparator, MixturePassThrough, TagQueriedSeparator
from lassbench.models.lassnet import SeparatorConfig, TextQueriedSeparator, sized_config
from lassbench.models.oracle import OracleMask
from lassbench.models.published.systems import (
    PUBLISHED,
    SAMPLING_FAMILIES,
    PublishedSpec,
    check_sampler_settings,
)
from lassbench.models.text_encoders import TEXT_ENCODERS, load_text_encoder, resolve_text_encoder
from lassbench.models.zoo import CHECKPOINT_DIR, ZOO, ZooEntry  # noqa: F401  (CHECKPOINT_DIR: re-exported for run.py)
from lassbench.progress import ticking


@dataclass(frozen=True)
class ModelEntry:
    """A zoo entry (:mod:`lassbench.models.zoo`: name, query type, description, ...) with the code that builds it."""

    zoo: ZooEntry
    build: Callable[[SeparatorConfig], nn.Module]
    published: PublishedSpec | None = None  # runs a released checkpoint (lassbench.models.published)

    def __getattr__(self, attribute: str):  # name, query_type, description, trainable, shipped_checkpoint
        if attribute == "zoo":  # not set yet (a copy being made): no recursion
            raise AttributeError(attribute)
        return getattr(self.zoo, attribute)


def _text_model(cls: type[TextQueriedSeparator]) -> Callable[[SeparatorConfig], nn.Module]:
    def build(config: SeparatorConfig) -> nn.Module:
        return cls(config, text_dim=_text_dim(config.text_encoder))

    return build


def _published_only(name: str) -> Callable[[SeparatorConfig], nn.Module]:
    def build(config: SeparatorConfig) -> nn.Module:
        raise LassbenchError(f"'{name}' runs a published checkpoint: pass --checkpoint PATH (see docs/models.md)")

    return build


_BUILDERS: dict[str, Callable[[SeparatorConfig], nn.Module]] = {
    "lassnet": _text_model(TextQueriedSeparator),
    "tag-queried": _text_model(TagQueriedSeparator),
    "class-conditioned": ClassConditionedSeparator,
    "mixture": lambda config: MixturePassThrough(),
    "oracle-irm": lambda config: OracleMask("irm", config.backbone.n_fft, config.backbone.hop),
    "oracle-ibm": lambda config: OracleMask("ibm", config.backbone.n_fft, config.backbone.hop),
    **{name: _published_only(name) for name in PUBLISHED},
}
MODELS: dict[str, ModelEntry] = {
    name: ModelEntry(entry, _BUILDERS[name], PUBLISHED.get(name))
    for name, entry in ZOO.items()
}


def check_published_checkpoint(name: str, checkpoint: str | Path | None) -> None:
    """Published systems never download their weights: refuse a run without --checkpoint before any long work."""
    entry = get_model_entry(name)
    if entry.published is not None and not checkpoint:
        raise LassbenchError(f"'{name}' runs its published checkpoint, never downloaded here: get it from "
                             f"{entry.published.checkpoint} and pass its path as --checkpoint")


def takes_negative_query(name: str) -> bool:
    """Whether model ``name`` also takes what *not* to separate (``separate --negative-query``)."""
    entry = get_model_entry(name)
    return entry.published is not None and entry.published.family == "clapsep"


def samples(name: str) -> bool:
    """Whether model ``name`` is generative: its estimate depends on its sampler's steps and seed."""
    entry = get_model_entry(name)
    return entry.published is not None and entry.published.family in SAMPLING_FAMILIES


def check_sampler_options(name: str, steps: int | None, seed: int | None) -> None:
    """``--steps`` / ``--sampler-seed`` before anything is loaded: only for a generative system, and only settings
    its sampler can run (:func:`~lassbench.models.published.systems.check_sampler_settings`)."""
    if steps is None and seed is None:
        return
    if not samples(name):
        raise LassbenchError(f"{name} does not sample: --steps / --sampler-seed are for the generative systems "
                             f"({', '.join(SAMPLING_FAMILIES)})")
    check_sampler_settings(get_model_entry(name).published.family, steps, seed)


def get_model_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise LassbenchError(f"unknown model '{name}': choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, config: SeparatorConfig | None = None, *, attach_encoder: bool = True,
                finetune_text: bool = False) -> nn.Module:
    """A fresh (untrained) model; text-queried models get their text encoder attached."""
    entry = get_model_entry(name)
    config = config or sized_config("tiny")
    model = entry.build(config)
    if attach_encoder and isinstance(model, TextQueriedSeparator):
        model.attach_text_encoder(load_text_encoder(config.text_encoder, trainable=finetune_text))
    return model


def count_parameters(model: nn.Module, *, include_text_encoder: bool = False) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if include_text_encoder or not _is_text_encoder(n))


def _is_text_encoder(name: str) -> bool:
    # lassbench's own trainable encoder, bert-mini inside the LASS-Net release, CLAP inside AudioSep's checkpoint
    return name.startswith("text_encoder.") or ".bert_layer." in name or ".query_encoder." in name


def save_checkpoint(path: str | Path, model: nn.Module, *, name: str, config: SeparatorConfig, step: int = 0,
                    data_fingerprint: str = "", extra: dict | None = None) -> Path:
    """Atomic save of a self-describing checkpoint."""
    payload = {
        "model": name,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "text_encoder": config.text_encoder,
        "data_fingerprint": data_fingerprint,
        "step": step,
        "lassbench_version": __version__,
        **(extra or {}),
    }
    return _write_checkpoint(path, payload)


def half_precision_copy(source: str | Path, target: str | Path) -> Path:
    """Atomic copy of a checkpoint with its floating-point weights stored as float16 (half the bytes; how the
    shipped checkpoints are stored). :func:`load_model` casts them back into the float32 model, so inference
    runs in float32 either way; published figures are measured with the stored weights."""
    payload = read_checkpoint(source)
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    payload.pop("optimizer", None)
    return _write_checkpoint(target, payload)


def _write_checkpoint(path: str | Path, payload: dict) -> Path:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return Path(path)


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LassbenchError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LassbenchError(f"{path}: not a readable lassbench checkpoint (corrupt or foreign file)") from exc
    if not isinstance(payload, dict) or not {"model", "config", "state_dict"} <= payload.keys():
        raise LassbenchError(f"{path}: not a lassbench checkpoint (missing model/config/state_dict)")
    return payload


def load_model(path: str | Path, *, expected: str | None = None, device: str = "cpu",
               text_encoder: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights. A published system (``expected`` names
    one) is built from its released checkpoint, with its tokenizer from the ``text_encoder`` folder."""
    with ticking(f"loading {expected or Path(path).name}"):  # the text encoder alone takes seconds on a CPU
        return _load_model(path, expected, device, text_encoder)


def _load_model(path: str | Path, expected: str | None, device: str, text_encoder: str | None
                ) -> tuple[nn.Module, dict]:
    if expected is not None and get_model_entry(expected).published is not None:
        from lassbench.models.published.loading import load_published

        return load_published(expected, path, text_encoder=text_encoder, device=device)
    payload = read_checkpoint(path)
    if expected is not None and payload["model"] != expected:
        raise LassbenchError(f"{path}: checkpoint is for model '{payload['model']}', not '{expected}'")
    try:
        config = SeparatorConfig.from_dict(payload["config"])
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # another version's or a hand-made config
        raise LassbenchError(f"{path}: checkpoint config not understood ({_one_line(exc)})") from exc
    finetuned = any(k.startswith("text_encoder.") for k in payload["state_dict"])
    model = build_model(payload["model"], config, finetune_text=finetuned)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise LassbenchError(f"{path}: weights do not fit model '{payload['model']}' ({_one_line(exc)})") from exc
    return model.to(device).eval(), payload


def _one_line(exc: Exception, limit: int = 200) -> str:
    """torch's load_state_dict message spans lines (tab-indented key lists): keep an error to one line."""
    return " ".join(str(exc).split())[:limit]


def _text_dim(name: str) -> int:
    """The hidden size of a text encoder: known for registry names, else read from its config (no weights)."""
    if name in TEXT_ENCODERS:
        return TEXT_ENCODERS[name].dim
    from transformers import AutoConfig  # seconds of import: only for encoders the registry does not size

    source = resolve_text_encoder(name)[0]
    try:
        return int(AutoConfig.from_pretrained(source, local_files_only=Path(source).is_dir()).hidden_size)
    except Exception as exc:
        raise LassbenchError(
            f"cannot read the config of text encoder '{name}' (offline?): pass --text-encoder DIR with a local copy"
        ) from exc
