"""SAM Audio judge scores: reference-free ratings of a separated estimate given its mixture and its text query.

The SAM Audio judge (:mod:`lassbench.models.published.sam_audio_judge`) is a network that rates a separation's
quality; SAM Audio's benchmark reports it because its mixtures have no references. Per item it gives four scores,
``judge_overall``, ``judge_recall`` (is all of the queried sound there?), ``judge_precision`` (is nothing else
there?) and ``judge_faithfulness`` (is it undistorted?); higher is better, on the judge's own scale. It needs no
reference, so it scores real mixtures, and it does not punish a generative separator for a waveform that differs
sample by sample from a reference (docs/metrics.md).

Inputs are prepared as ``SAMAudioJudgeProcessor`` prepares them, with lassbench's resampling in front: the mixture
and the estimate are resampled (soxr, :func:`lassbench.audio.resample`) to the judge's rate (the config.json codec's
``sample_rate``, 48 kHz for the release; the official processor refuses any other), reflect-padded to a whole number
of codec frames, and the query tokenised alone (``padding="longest"``, ``max_length=512``, truncated). Each distinct
query is embedded once (cache). An item scores the same alone and in a batch (tests/evaluation/test_judge.py): the
codec runs on items of one length at a time, and the transformers mask the padding of a batch of unequal lengths.

The judge is named by its weights: :attr:`JudgeScorer.info` (folder, SHA-256 of the weights file, rate, text layer)
goes into every summary.json and run.json, and the leaderboard names it beside the scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench.audio import resample, sha256_file
from lassbench.errors import LassbenchError

# the network's four outputs in its head's order (sam_audio_judge.SCORES); named here so that reading results
# (summary, leaderboard) never imports the network
METRICS = ("judge_overall", "judge_recall", "judge_precision", "judge_faithfulness")
DEFINITIONS = {
    "judge_overall": "SAM Audio judge: overall quality of the estimate as a separation of the query from the "
                     "mixture (reference-free; higher is better)",
    "judge_recall": "SAM Audio judge: how much of the queried sound the estimate keeps (reference-free)",
    "judge_precision": "SAM Audio judge: how little of anything else the estimate keeps (reference-free)",
    "judge_faithfulness": "SAM Audio judge: how undistorted the kept sound is (reference-free)",
}
_ITEMS_PER_CALL = 4  # items per forward pass (a memory bound, not a result-changing setting)


def is_judge_metric(name: str) -> bool:
    return name in METRICS


class JudgeScorer:
    """Loads a judge folder once (never downloaded); scores (query, estimate, mixture) items."""

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        from lassbench.models.published.sam_audio_judge_loading import load_sam_audio_judge

        loaded = load_sam_audio_judge(folder)
        self.net = loaded.net.to(device)
        self.tokenizer = loaded.tokenizer
        self.sha256 = sha256_file(loaded.weights)
        # config.json sets scores the weights do not (e.g. which text layer is read): part of the judge's identity
        self.config_sha256 = sha256_file(Path(folder) / "config.json")
        self.name = str(folder)
        self.device = device
        self._text: dict[str, object] = {}

    @property
    def sample_rate(self) -> int:
        return self.net.sample_rate

    @property
    def info(self) -> dict:
        """What makes two judges' scores comparable: recorded in summary.json / run.json."""
        return {
            "judge": "SAM Audio judge (facebookresearch/sam-audio SAMAudioJudgeModel)",
            "checkpoint": self.name,
            "sha256": self.sha256,
            "config_sha256": self.config_sha256,
            "metrics": list(METRICS),
            "sample_rate": self.sample_rate,
            "frame_hop": self.net.hop_length,
            "text_layer": self.net.shape.nth_text_layer,
            "resampling": "lassbench soxr (HQ) to the judge's rate",
            "preprocessing": "mono; reflect-padded to whole codec frames; query tokenised alone (max 512 tokens)",
            "batching": "one length per codec call; padded frames masked in the transformers: batch-independent",
            "definitions": dict(DEFINITIONS),
        }

    def score(self, queries: Sequence[str], estimates: Sequence[np.ndarray], mixtures: Sequence[np.ndarray],
              rates: Sequence[int], ids: Sequence[str] | None = None) -> np.ndarray:
        """``(n, 4)`` scores (overall, recall, precision, faithfulness) of mono estimates and their mixtures, each
        pair at its rate (``ids`` name the items in errors). The result does not depend on how items are batched."""
        ids = [str(i) for i in ids] if ids is not None else [str(k) for k in range(len(estimates))]
        waves = [self._waves(*entry) for entry in zip(estimates, mixtures, rates, ids, strict=True)]
        out = [self._score_waves(list(queries[i:i + _ITEMS_PER_CALL]), waves[i:i + _ITEMS_PER_CALL])
               for i in range(0, len(waves), _ITEMS_PER_CALL)]
        return np.concatenate(out) if out else np.zeros((0, len(METRICS)))

    def score_rows(self, ids: Sequence[str], queries: Sequence[str], estimates: Sequence[np.ndarray],
                   mixtures: Sequence[np.ndarray], rates: Sequence[int]) -> dict[str, dict[str, float]]:
        """One batch of a runner: ``{item: {judge_overall: .., ...}}`` (batch-independent)."""
        scores = self.score(queries, estimates, mixtures, rates, ids)
        return {str(i): dict(zip(METRICS, map(float, row), strict=True)) for i, row in zip(ids, scores, strict=True)}

    def score_items(self, items: Iterable[tuple], batch_size: int = _ITEMS_PER_CALL) -> pd.DataFrame:
        """``(item_id, query, estimate, mixture, sample_rate)`` tuples -> frame ``item`` + :data:`METRICS`."""
        rows: list[dict] = []
        pending: list[tuple] = []
        for entry in chain(items, [None]):  # streamed (only a batch's audio is held); None: flush the last batch
            if entry is not None:
                pending.append(entry)
            if pending and (entry is None or len(pending) >= batch_size):
                scored = self.score_rows(*zip(*pending, strict=True))
                rows += [{"item": str(p[0]), **scored[str(p[0])]} for p in pending]
                pending = []
        return pd.DataFrame(rows, columns=["item", *METRICS])

    # --- the official processor's steps ------------------------------------------------------------------------

    def _waves(self, estimate: np.ndarray, mixture: np.ndarray, rate: int, item: str) -> tuple[np.ndarray, np.ndarray]:
        """(mixture, estimate) at the judge's rate, reflect-padded to whole codec frames."""
        signals = []
        for role, signal in (("mixture", mixture), ("estimate", estimate)):
            array = np.squeeze(np.asarray(signal, dtype=np.float32))
            if array.ndim != 1 or array.size == 0:
                raise LassbenchError(f"item {item}: the {role} is not a non-empty mono signal "
                                     f"(shape {array.shape})")
            signals.append(resample(array, int(rate), self.sample_rate))
        if len(signals[0]) != len(signals[1]):
            raise LassbenchError(f"item {item}: the estimate has {len(signals[1])} samples at the judge's "
                                 f"rate and the mixture {len(signals[0])}; the judge compares them frame by frame, "
                                 "so give estimates as long as their mixtures")
        return self._reflect_pad(signals[0], item), self._reflect_pad(signals[1], item)

    def _reflect_pad(self, wave: np.ndarray, item: str) -> np.ndarray:
        """``SAMAudioJudgeProcessor._reflect_pad``: up to a whole number of frames, mirrored at the end."""
        hop = self.net.hop_length
        missing = -len(wave) % hop
        if missing >= len(wave):
            raise LassbenchError(f"item {item}: {len(wave)} samples at {self.sample_rate} Hz are too few for the "
                                 f"judge (its frame is {hop} samples)")
        return np.pad(wave, (0, missing), mode="reflect") if missing else wave

    def _text_features(self, query: str):
        if query not in self._text:
            import torch

            tokens = self.tokenizer([query], return_tensors="pt", padding="longest", max_length=512, truncation=True)
            with torch.inference_mode():
                self._text[query] = self.net.text_features(tokens["input_ids"].to(self.device),
                                                           tokens["attention_mask"].to(self.device))[0]
        return self._text[query]

    def _score_waves(self, queries: list[str], waves: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        import torch

        features: list = [None] * len(waves)
        for length in sorted({len(m) for m, _ in waves}):  # the codec sees no padding: one length per call
            picked = [i for i, (m, _) in enumerate(waves) if len(m) == length]
            signals = np.stack([waves[i][0] for i in picked] + [waves[i][1] for i in picked])[:, None]
            with torch.inference_mode():
                coded = self.net.codec_features(torch.from_numpy(signals).to(self.device))
            for k, i in enumerate(picked):
                features[i] = (coded[k], coded[len(picked) + k])
        frames = [f[0].shape[0] for f in features]
        mask = None
        if len(set(frames)) > 1:  # a padded batch: its real frames marked
            lengths = torch.tensor(frames, device=self.device)
            mask = torch.arange(max(frames), device=self.device)[None] < lengths[:, None]
        mixture, estimate = (torch.nn.utils.rnn.pad_sequence([f[j] for f in features], batch_first=True)
                             for j in (0, 1))
        text = torch.stack([self._text_features(q) for q in queries])
        with torch.inference_mode():
            scores = self.net.scores(text, mixture, estimate, mask)
        return scores.float().cpu().numpy().astype(np.float64)


def judge_scorer(judge: str | Path | JudgeScorer | None, device: str = "cpu") -> JudgeScorer | None:
    """The scorer of ``--judge``: None (no judge scores), a judge folder, or a scorer already loaded. Loaded before
    any long work, so a missing or wrong folder fails first."""
    if not judge:
        return None
    return judge if hasattr(judge, "score_items") else JudgeScorer(judge, device=device)

