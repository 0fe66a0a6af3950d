"""FAD (Fréchet Audio Distance): how far a system's estimates lie from the references as a *set*, in an embedding space.

Kilgour et al. (2019) fit a Gaussian to the embeddings of each set and take the Fréchet distance between the two::

    FAD = ||mu_e - mu_r||^2 + tr(C_e) + tr(C_r) - 2 tr sqrt(C_e C_r)

(``mu``: mean embedding, ``C``: covariance with ``n - 1`` in the denominator, as ``np.cov`` and the libraries
``fadtk`` and ``frechet-audio-distance`` compute them). It needs no sample-by-sample match with the reference, so it
ranks a generative separator (which re-synthesises the target rather than masking the mixture) on what it
produces, where SDR punishes any waveform that is not the reference's. Lower is better; 0 means the two sets have the
same mean and covariance. It is one number per benchmark, not per item.

The distance is computed here, not through a library: both kept libraries import ``torch``/``torchaudio`` at module
level and fadtk pins ``numpy<2`` (docs/metrics.md). ``tr sqrt(C_e C_r)`` is taken as the nuclear norm of
``L_e^T L_r`` for factors ``C = L L^T`` (``L = X^T / sqrt(n - 1)`` of the centred embeddings when a set has fewer
items than dimensions, else the Cholesky factor of ``C``): the eigenvalues of ``C_e C_r`` are the squared
singular values of ``L_e^T L_r``, so no matrix square root is taken (the libraries' ``sqrtm`` of a singular
``C_e C_r`` loses digits). tests/evaluation/test_fad.py pins the libraries' own functions and a 40-digit value on the
same embeddings (docs/metrics.md has the measured differences).

The interval is a paired bootstrap (resample items, the same indices in both sets), its percentiles shifted by the
resampling's own bias (:func:`bootstrap_interval`). FAD itself is biased upwards for small sets (fadtk's FAD-inf
extrapolates that away; lassbench does not), so only FADs over the same item set compare.

Embedding model, given by a local path and never downloaded (:func:`load_embedder`): a CLAP checkpoint folder
(transformers ``ClapModel``, the format :mod:`lassbench.clapscore` reads; one embedding per item: CLAP's audio
projection with :class:`lassbench.clapscore.ClapScorer`'s deterministic preprocessing), or a VGGish state-dict
file in torchvggish's layout (:mod:`lassbench.vggish`; one embedding per 0.96 s example, all examples pooled, as the
FAD paper and both libraries do). Metric names carry the weights' digest (``fad@1a2b3c4d``), so FADs in different
embedding spaces never share a column; :attr:`FadScorer.info` records the model in summary.json and run.json.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from lassbench.errors import LassbenchError

PREFIX = "fad@"
ESTIMATE_KEY, REFERENCE_KEY = "_fad_estimate", "_fad_reference"  # per-item embeddings carried in a run's rows
N_BOOT = 1000
_BATCH = 8


def is_fad_metric(name: str) -> bool:
    return name.startswith(PREFIX)


def frechet_distance(estimates: np.ndarray, references: np.ndarray) -> float:
    """FAD between two sets of embeddings (rows), each of at least 2 rows."""
    a, b = _rows(estimates), _rows(references)
    if a.shape[1] != b.shape[1]:
        raise LassbenchError(f"FAD of embeddings of different sizes ({a.shape[1]} and {b.shape[1]})")
    ca, cb = a - a.mean(axis=0), b - b.mean(axis=0)
    diff = a.mean(axis=0) - b.mean(axis=0)
    traces = np.sum(ca * ca) / (len(a) - 1) + np.sum(cb * cb) / (len(b) - 1)
    cross = np.linalg.svd(_factor(ca).T @ _factor(cb), compute_uv=False).sum()
    return float(diff @ diff + traces - 2.0 * cross)


def _rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise LassbenchError(f"FAD needs at least 2 embeddings per set (got shape {x.shape})")
    return x


def _factor(centred: np.ndarray) -> np.ndarray:
    """``L`` with ``L L^T = cov``: the scaled data when it has fewer rows than columns (the smaller product), else
    the Cholesky factor of ``cov``, or its symmetric square root when ``cov`` is singular."""
    n, dim = centred.shape
    if n <= dim:
        return centred.T / np.sqrt(n - 1)
    cov = centred.T @ centred / (n - 1)
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:  # rank-deficient (repeated or collinear embeddings)
        values, vectors = np.linalg.eigh(cov)
        return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def bootstrap_interval(estimates: Sequence[np.ndarray], references: Sequence[np.ndarray], n_boot: int = N_BOOT,
                       seed: int = 0) -> tuple[float, float]:
    """95% interval of FAD from ``n_boot`` paired resamples of the items (a fixed ``seed``); an item is one embedding
    row (CLAP) or several (VGGish: one per example), which go together. The (2.5, 97.5) percentiles are shifted by
    the resampling's bias (mean of the resamples minus the value): a resample repeats items, which lowers its
    covariances' rank and raises its FAD, so with fewer items than dimensions the raw percentiles can lie wholly
    above the value (tests/evaluation/test_fad.py); the shift keeps the interval about the set's own FAD."""
    a, b = _items(estimates), _items(references)
    if len(a) != len(b):
        raise LassbenchError(f"paired FAD bootstrap needs one estimate per reference ({len(a)} vs {len(b)})")
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(a), size=len(a)) for _ in range(n_boot)]
    values = np.array([frechet_distance(_stack(a, i), _stack(b, i)) for i in draws])
    bias = values.mean() - frechet_distance(_stack(a), _stack(b))
    low, high = np.percentile(values, [2.5, 97.5]) - bias
    return max(float(low), 0.0), float(high)  # a distance: the shift must not carry the bound below zero


def _items(embeddings: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each item's embeddings as rows: a 2-D array is one row per item, a list holds each item's rows."""
    return [np.atleast_2d(np.asarray(e, dtype=np.float64)) for e in embeddings]


def _stack(items: list[np.ndarray], picked=None) -> np.ndarray:
    return np.concatenate([items[i] for i in (range(len(items)) if picked is None else picked)])


def fad_statistics(estimates: Sequence[np.ndarray], references: Sequence[np.ndarray], n_boot: int = N_BOOT,
                   seed: int = 0) -> dict:
    """summary.json ``metrics`` entry: the set's FAD in the headline slot (``mean``), its bootstrap CI, the number
    of items and of embeddings per set."""
    a, b = _items(estimates), _items(references)
    if len(a) < 2:
        raise LassbenchError("FAD needs at least 2 items with a reference")
    low, high = bootstrap_interval(a, b, n_boot, seed)
    return {"mean": frechet_distance(_stack(a), _stack(b)), "ci95_low": low, "ci95_high": high, "n": len(a),
            "n_embeddings": len(_stack(a)), "n_boot": n_boot}


def load_embedder(path: str | Path, device: str = "cpu"):
    """The embedding model at a local path: a CLAP checkpoint folder, or a VGGish state-dict file; one error line
    when it is neither (nothing is downloaded)."""
    model = Path(path).expanduser()
    if model.is_file():
        from lassbench.vggish import VggishEmbedder

        return VggishEmbedder(model, device=device)
    if not model.is_dir():
        raise LassbenchError(f"{path}: FAD embedding model not found (pass a local CLAP checkpoint folder made by "
                             "save_pretrained, e.g. `huggingface-cli download laion/clap-htsat-unfused "
                             "--local-dir DIR`, or a torchvggish state-dict file; FAD never downloads)")
    if not (model / "config.json").is_file():
        raise LassbenchError(f"{model}: not a CLAP checkpoint folder for FAD (no config.json)")
    return ClapEmbedder(model, device=device)


class ClapEmbedder:
    """CLAP's audio tower through :class:`lassbench.clapscore.ClapScorer`: one unit embedding per item."""

    def __init__(self, folder: Path, device: str = "cpu"):
        from lassbench.clapscore import ClapScorer

        self.clap = ClapScorer(folder, device=device)
        self.sha256 = self.clap.sha256

    @property
    def info(self) -> dict:
        clap = self.clap.info
        return {"embedding_model": "CLAP audio tower (transformers ClapModel)", "checkpoint": clap["checkpoint"],
                "sha256": self.sha256, "sample_rate": clap["sample_rate"], "window_s": clap["window_s"],
                "embedding": "unit-norm CLAP audio projection; length-weighted mean of fixed windows, renormalised; "
                             "one per item",
                "resampling": clap["resampling"]}

    def embed_many(self, signals: Sequence[np.ndarray], rate: int) -> list[np.ndarray]:
        return [row[None] for row in self.clap.audio_embeddings(signals, rate)]


class FadScorer:
    """Embeds estimates and references with a local model (:func:`load_embedder`); FAD over the collected sets."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        self.model = load_embedder(path, device)
        self.sha256 = self.model.sha256
        self.name = f"{PREFIX}{self.sha256[:8]}"

    @property
    def info(self) -> dict:
        """What makes two FADs comparable: recorded in summary.json / run.json."""
        return {
            "metric": self.name,
            **self.model.info,
            "reference_set": "the references the run or evaluation scores against, of the same items",
            "interval": f"paired bootstrap over items, {N_BOOT} resamples, seed 0: (2.5, 97.5) percentiles "
                        "shifted by the resampling bias (mean of the resamples minus the value)",
            "definition": "||mu_e - mu_r||^2 + tr(C_e) + tr(C_r) - 2 tr sqrt(C_e C_r) of the estimates' and the "
                          "references' embeddings (Kilgour et al., 2019); lower is better; one value per set",
        }

    def embed(self, signals: Sequence[np.ndarray], rates: Sequence[int]) -> list[np.ndarray]:
        """Each mono signal's embeddings ``(k, dim)``; an item alone gives the same rows as in a batch."""
        out: list[np.ndarray | None] = [None] * len(signals)
        for rate in sorted(set(rates)):
            picked = [i for i, r in enumerate(rates) if r == rate]
            for start in range(0, len(picked), _BATCH):
                chunk = picked[start:start + _BATCH]
                embedded = self._embed_same_rate([signals[i] for i in chunk], rate)
                for i, rows in zip(chunk, embedded, strict=True):
                    out[i] = rows
        return out

    def _embed_same_rate(self, signals: list[np.ndarray], rate: int) -> list[np.ndarray]:
        if hasattr(self.model, "embed_many"):
            return self.model.embed_many(signals, rate)
        return [self.model.embed_one(signal, rate) for signal in signals]

    def embed_rows(self, ids: Sequence[str], estimates: Sequence[np.ndarray], references: Sequence[np.ndarray],
                   rates: Sequence[int]) -> dict[str, dict[str, list]]:
        """One batch of a runner: ``{item: {ESTIMATE_KEY: rows, REFERENCE_KEY: rows}}``, kept in its rows until
        the run's sets are complete (so a resumed run does not embed again)."""
        est, ref = self.embed(estimates, rates), self.embed(references, rates)
        return {str(i): {ESTIMATE_KEY: e.tolist(), REFERENCE_KEY: r.tolist()}
                for i, e, r in zip(ids, est, ref, strict=True)}

    def score_pairs(self, pairs: Iterable[tuple[np.ndarray, int, np.ndarray, int]]) -> dict:
        """``(estimate, its rate, reference, its rate)`` per item, streamed: only the embeddings are kept."""
        est: list[np.ndarray] = []
        ref: list[np.ndarray] = []
        pending: list[tuple] = []
        for pair in chain(pairs, [None]):  # None: flush the last batch
            if pair is not None:
                pending.append(pair)
            if pending and (pair is None or len(pending) >= _BATCH):
                est += self.embed([p[0] for p in pending], [p[1] for p in pending])
                ref += self.embed([p[2] for p in pending], [p[3] for p in pending])
                pending = []
        return fad_statistics(est, ref)

    def score_rows(self, rows: list[dict]) -> dict:
        """FAD of a run's rows (:meth:`embed_rows` columns), which it strips from the rows in place."""
        scored = [row for row in rows if ESTIMATE_KEY in row]
        est = [np.asarray(row.pop(ESTIMATE_KEY), dtype=np.float64) for row in scored]
        ref = [np.asarray(row.pop(REFERENCE_KEY), dtype=np.float64) for row in scored]
        return fad_statistics(est, ref)


def add_fad(summary: dict, scorer: FadScorer, statistics: dict) -> dict:
    """Record a FAD and its embedding model in a summary.json dict (``metrics``, ``definitions``, ``fad``)."""
    summary["metrics"][scorer.name] = statistics
    summary["definitions"][scorer.name] = scorer.info["definition"]
    summary["fad"] = scorer.info
    return summary


def fad_scorer(fad, device: str = "cpu") -> FadScorer | None:
    """The scorer of ``--fad``: None (no FAD), an embedding model's path, or a scorer already loaded. Loaded before
    any long work, so a missing model fails first."""
    if not fad:
        return None
    return fad if hasattr(fad, "score_pairs") else FadScorer(fad, device=device)
