"""CLAPScore: reference-free scoring of a separated estimate by its text-audio similarity to the query.

``clap_score = cos(CLAP_audio(estimate), CLAP_text(query))`` and its improvement over the input,
``clap_score_i = clap_score(estimate) - clap_score(mixture)``, with ``transformers``' :class:`ClapModel` loaded from a
local folder or a Hugging Face hub name. It needs no reference, so it scores real mixtures (DCASE 2024 Task 9 kept a
set without references; SAM Audio reports CLAP similarity without SDR). It measures *what* was extracted, not how
cleanly: a loud, distorted dog bark still matches "a dog barks".

Determinism (LAION-CLAP#166 and msclap#24 report batch-dependent and random-crop-dependent embeddings):

* audio is resampled by lassbench (soxr, :func:`lassbench.audio.resample`) to the feature extractor's rate (48 kHz
  for the LAION checkpoints), never by the feature extractor;
* a signal is cut into consecutive fixed windows of the extractor's ``max_length_s`` (10 s for LAION), so the
  extractor never crops at random nor fuses random crops; a short last window is repeat-padded as the checkpoint was
  trained; an item's embedding is the window embeddings' length-weighted mean, renormalised;
* each distinct query is embedded alone, once (cache), so its embedding does not depend on the other queries;
* an item scores the same alone and in a batch (tests/evaluation/test_clapscore.py).

Numbers from different checkpoints are different metrics: the metric names carry the first 8 hex digits of the
SHA-256 of the weights (``clap_score@1a2b3c4d``), so they never share a leaderboard column; :attr:`ClapScorer.info`
(checkpoint name, full SHA-256, rate, window, pooling) goes into every summary.json and run.json.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench.audio import resample, sha256_file
from lassbench.errors import LassbenchError

SCORE_PREFIX = "clap_score@"
IMPROVEMENT_PREFIX = "clap_score_i@"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_HUB_FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]  # config, processor, tokenizer, weights
_WINDOWS_PER_CALL = 16  # audio windows per forward pass (memory bound, not a result-changing setting)


def is_clap_metric(name: str) -> bool:
    return name.startswith((SCORE_PREFIX, IMPROVEMENT_PREFIX))


def resolve_checkpoint(source: str | Path) -> Path:
    """A local folder as is; a hub name from the local Hugging Face cache, else downloaded (one-line error offline)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(source).startswith((".", "/", "~")):
        raise LassbenchError(f"{source}: not a CLAP checkpoint folder (expected a folder made by save_pretrained)")
    try:
        return _snapshot(str(source), local_files_only=True)
    except Exception:  # not cached: try the hub once, below
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise LassbenchError(_unavailable(source, "HF_HUB_OFFLINE is set and it is not in the local cache"))
    try:
        return _snapshot(str(source), etag_timeout=10)
    except Exception as exc:  # the hub raises many types for one cause (offline, unknown repo, gated)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LassbenchError(_unavailable(source, reason[:160])) from exc


def _snapshot(name: str, **options) -> Path:
    """The repository's config, processor, tokenizer and weights: safetensors, else the PyTorch .bin files."""
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(name, allow_patterns=_HUB_FILES, **options))
    if not any(folder.glob("*.safetensors")):
        folder = Path(snapshot_download(name, allow_patterns=[*_HUB_FILES, "*.bin"], **options))
    return folder


def _unavailable(source, reason: str) -> str:
    return (f"cannot get CLAP checkpoint '{source}' ({reason}); on a machine with network run "
            f"`huggingface-cli download {source} --local-dir DIR` and pass --clap DIR")


def weights_sha256(folder: Path) -> str:
    """SHA-256 of the weights file; for sharded weights, of the shard names and their SHA-256s (sorted)."""
    for name in _WEIGHT_FILES:
        if (folder / name).is_file():
            return sha256_file(folder / name)
    shards = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not shards or not any((folder / i).is_file() for i in _WEIGHT_INDEXES):
        raise LassbenchError(f"{folder}: no CLAP weights (model.safetensors or pytorch_model.bin) in the folder")
    listing = "".join(f"{p.name} {sha256_file(p)}\n" for p in shards)
    return hashlib.sha256(listing.encode()).hexdigest()


class ClapScorer:
    """Loads a CLAP checkpoint once; scores items; caches text embeddings per query."""

    def __init__(self, source: str | Path, device: str = "cpu"):
        from transformers import ClapFeatureExtractor, ClapModel, ClapProcessor
        from transformers.utils import logging as hf_logging

        folder = resolve_checkpoint(source)
        self.sha256 = weights_sha256(folder)
        self.digest = self.sha256[:8]
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the per-load progress bar and notes; our errors say what matters
        try:
            self.model = ClapModel.from_pretrained(folder).to(device).eval()
            try:
                processor = ClapProcessor.from_pretrained(folder)
                self.tokenizer, self.extractor = processor.tokenizer, processor.feature_extractor
            except (OSError, ValueError, TypeError):
                from transformers import AutoTokenizer

                self.tokenizer = AutoTokenizer.from_pretrained(folder)
                self.extractor = ClapFeatureExtractor.from_pretrained(folder)
        except (OSError, ValueError, KeyError) as exc:
            raise LassbenchError(
                f"{folder}: cannot load a CLAP model, tokenizer and feature extractor ({exc})") from exc
        finally:
            hf_logging.set_verbosity(verbosity)
        self.device = device
        self.name = str(source)
        self.sample_rate = int(self.extractor.sampling_rate)
        self.window = int(self.extractor.nb_max_samples)
        # The truncation mode also picks the mel filterbank (htk for "fusion", slaney for "rand_trunc"), so the
        # checkpoint's own choice is kept (LAION's unfused checkpoints declare "rand_trunc"); an unfused model only
        # takes the 1-channel "rand_trunc" input. On a window no longer than max_length neither mode draws a
        # random number ("fusion" repeats the window's mel 4 times; "rand_trunc" keeps it).
        fused = bool(self.model.config.audio_config.enable_fusion)
        self.truncation = self.extractor.truncation if fused else "rand_trunc"
        self._text_cache: dict[str, np.ndarray] = {}

    @property
    def score_name(self) -> str:
        return f"{SCORE_PREFIX}{self.digest}"

    @property
    def improvement_name(self) -> str:
        return f"{IMPROVEMENT_PREFIX}{self.digest}"

    @property
    def info(self) -> dict:
        """What makes two CLAPScores comparable: recorded in summary.json / run.json."""
        return {
            "checkpoint": self.name,
            "sha256": self.sha256,
            "metrics": [self.score_name, self.improvement_name],
            "sample_rate": self.sample_rate,
            "window_s": self.window / self.sample_rate,
            "windowing": "consecutive fixed windows, short last window repeat-padded, length-weighted mean",
            "truncation": self.truncation,
            "resampling": "lassbench soxr (HQ)",
            "definitions": {
                self.score_name: "cos(CLAP audio embedding of the estimate, CLAP text embedding of the query)",
                self.improvement_name: f"{self.score_name}(estimate) - {self.score_name}(mixture)",
            },
        }

    def text_embedding(self, query: str) -> np.ndarray:
        if query not in self._text_cache:
            import torch

            # RoBERTa positions start after the padding index: max_position_embeddings - 2 tokens fit (512 for LAION)
            limit = min(self.tokenizer.model_max_length, self.model.config.text_config.max_position_embeddings - 2)
            tokens = self.tokenizer([query], return_tensors="pt", padding=True, truncation=True, max_length=limit)
            with torch.no_grad():
                out = self.model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
            self._text_cache[query] = _unit(out.pooler_output[0].cpu().numpy().astype(np.float64))
        return self._text_cache[query]

    def audio_embeddings(self, signals: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """Unit embeddings ``(len(signals), dim)`` of mono signals at ``sample_rate``."""
        windows, owners, weights = [], [], []
        for index, signal in enumerate(signals):
            audio = resample(np.asarray(signal, dtype=np.float32).reshape(-1), sample_rate, self.sample_rate)
            if audio.size == 0:
                raise LassbenchError("cannot embed an empty signal")
            for start in range(0, audio.size, self.window):
                piece = audio[start:start + self.window]
                windows.append(piece)
                owners.append(index)
                weights.append(piece.size)
        embedded = np.concatenate([self._embed_windows(windows[i:i + _WINDOWS_PER_CALL])
                                   for i in range(0, len(windows), _WINDOWS_PER_CALL)])
        out = np.zeros((len(signals), embedded.shape[1]))
        np.add.at(out, np.asarray(owners), embedded * np.asarray(weights, dtype=np.float64)[:, None])
        return np.stack([_unit(row) for row in out])

    def _embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        import torch

        features = self.extractor(windows, sampling_rate=self.sample_rate, return_tensors="pt",
                                  truncation=self.truncation, padding="repeatpad")
        # No window is longer than max_length, so none is "longer"; but with truncation="fusion" the extractor marks
        # one random item of the batch as longer when none is, which makes that item's embedding depend on its
        # batch (LAION-CLAP#166). The flags are therefore set here, not taken from the extractor.
        is_longer = torch.zeros_like(features["is_longer"], dtype=torch.bool)
        with torch.no_grad():
            out = self.model.get_audio_features(input_features=features["input_features"].to(self.device),
                                                is_longer=is_longer.to(self.device))
        return out.pooler_output.cpu().numpy().astype(np.float64)

    def score(self, queries: Sequence[str], estimates: Sequence[np.ndarray], sample_rate: int,
              mixtures: Sequence[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``{score_name: (n,), improvement_name: (n,)}`` (the improvement only with ``mixtures``). Callable per
        batch (``lassbench run``): results do not depend on how items are batched."""
        text = np.stack([self.text_embedding(q) for q in queries])
        out = {self.score_name: np.sum(self.audio_embeddings(estimates, sample_rate) * text, axis=1)}
        if mixtures is not None:
            out[self.improvement_name] = out[self.score_name] - np.sum(
                self.audio_embeddings(mixtures, sample_rate) * text, axis=1)
        return out

    def score_rows(self, ids: Sequence[str], queries: Sequence[str], estimates: Sequence[np.ndarray],
                   mixtures: Sequence[np.ndarray], rates: Sequence[int]) -> dict[str, dict[str, float]]:
        """One batch of a runner: ``{item: {score_name: .., improvement_name: ..}}`` (batch-independent)."""
        entries = list(zip(ids, queries, estimates, mixtures, rates, strict=True))
        return {row["item"]: {k: v for k, v in row.items() if k != "item"} for row in self._score_pending(entries)}

    def score_items(self, items: Iterable[tuple], batch_size: int = 8) -> pd.DataFrame:
        """``(item_id, query, estimate, mixture_or_None, sample_rate)`` tuples -> frame ``item, score[, improvement]``
        (the improvement is NaN for items without a mixture)."""
        rows: list[dict] = []
        pending: list[tuple] = []
        for entry in items:
            pending.append(entry)
            if len(pending) >= batch_size:
                rows.extend(self._score_pending(pending))
                pending = []
        rows.extend(self._score_pending(pending))
        return pd.DataFrame(rows, columns=["item", self.score_name, self.improvement_name])

    def _score_pending(self, pending: list[tuple]) -> list[dict]:
        rows = {}
        for rate in sorted({entry[4] for entry in pending}):
            group = [entry for entry in pending if entry[4] == rate]
            text = np.stack([self.text_embedding(entry[1]) for entry in group])
            scores = np.sum(self.audio_embeddings([entry[2] for entry in group], rate) * text, axis=1)
            mixed = [i for i, entry in enumerate(group) if entry[3] is not None]
            improvements = np.full(len(group), np.nan)
            if mixed:
                mix = self.audio_embeddings([group[i][3] for i in mixed], rate)
                improvements[mixed] = scores[mixed] - np.sum(mix * text[mixed], axis=1)
            for entry, score, improvement in zip(group, scores, improvements, strict=True):
                rows[str(entry[0])] = {"item": str(entry[0]), self.score_name: float(score),
                                       self.improvement_name: float(improvement)}
        return [rows[str(entry[0])] for entry in pending]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def clap_scorer(clap, device: str = "cpu") -> ClapScorer | None:
    """The scorer of ``--clap``: None (no CLAPScore), a checkpoint path, or a scorer already loaded. Loaded before
    any long work, so a bad checkpoint fails first."""
    if not clap:
        return None
    return clap if hasattr(clap, "score_items") else ClapScorer(clap, device=device)
