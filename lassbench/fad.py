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
``C_e C_r`` loses digits). tests/test_fad.py pins the libraries' own functions and a 40-digit value on the same
embeddings (docs/metrics.md has the measured differences).

The interval is a paired bootstrap (resample items, the same indices in both sets), its percentiles shifted by the
resampling's own bias (:func:`bootstrap_interval`). FAD itself is biased upwards for small sets (fadtk's FAD-inf
extrapolates that away; lassbench does not), so only FADs over the same item set compare.

Embedding model: a CLAP checkpoint folder (transformers ``ClapModel``, the format :mod:`lassbench.clapscore`
reads) given by a local path, never downloaded. An item's embedding is CLAP's audio projection with lassbench's
deterministic preprocessing (:class:`lassbench.clapscore.ClapScorer`: own resampling, fixed windows, length-weighted
mean). Metric names carry the weights' digest (``fad@1a2b3c4d``), so FADs in different embedding spaces never share
a column; :attr:`FadScorer.info` records the model in summary.json and run.json.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def bootstrap_interval(estimates: np.ndarray, references: np.ndarray, n_boot: int = N_BOOT,
                       seed: int = 0) -> tuple[float, float]:
    """95% interval of FAD from ``n_boot`` paired resamples of the items (a fixed ``seed``): the (2.5, 97.5)
    percentiles shifted by the resampling's bias (mean of the resamples minus the value). A resample repeats items,
    which lowers its covariances' rank and raises its FAD: with fewer items than dimensions the raw percentiles
    can lie wholly above the value (tests/test_fad.py), so the shift keeps the interval about the set's own FAD."""
    a, b = _rows(estimates), _rows(references)
    if len(a) != len(b):
        raise LassbenchError(f"paired FAD bootstrap needs one estimate per reference ({len(a)} vs {len(b)})")
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(a), size=len(a)) for _ in range(n_boot)]
    values = np.array([frechet_distance(a[i], b[i]) for i in draws])
    bias = values.mean() - frechet_distance(a, b)
    low, high = np.percentile(values, [2.5, 97.5]) - bias
    return max(float(low), 0.0), float(high)  # a distance: the shift must not carry the bound below zero


def fad_statistics(estimates: np.ndarray, references: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """summary.json ``metrics`` entry: the set's FAD in the headline slot (``mean``) and its bootstrap CI."""
    value = frechet_distance(estimates, references)
    low, high = bootstrap_interval(estimates, references, n_boot, seed)
    return {"mean": value, "ci95_low": low, "ci95_high": high, "n": len(estimates), "n_boot": n_boot}


def check_model_path(path: str | Path) -> Path:
    """The local CLAP folder FAD embeds with; one error line when it is not there (nothing is downloaded)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise LassbenchError(f"{path}: FAD embedding model not found (pass a local CLAP checkpoint folder made by "
                             "save_pretrained, e.g. `huggingface-cli download laion/clap-htsat-unfused "
                             "--local-dir DIR`; FAD never downloads)")
    if not (folder / "config.json").is_file():
        raise LassbenchError(f"{folder}: not a CLAP checkpoint folder for FAD (no config.json)")
    return folder


class FadScorer:
    """Embeds estimates and references with a local CLAP audio tower; computes FAD over the collected sets."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        from lassbench.clapscore import ClapScorer

        self.clap = ClapScorer(check_model_path(path), device=device)
        self.sha256 = self.clap.sha256
        self.name = f"{PREFIX}{self.sha256[:8]}"

    @property
    def info(self) -> dict:
        """What makes two FADs comparable: recorded in summary.json / run.json."""
        clap = self.clap.info
        return {
            "metric": self.name,
            "embedding_model": "CLAP audio tower (transformers ClapModel)",
            "checkpoint": clap["checkpoint"],
            "sha256": self.sha256,
            "sample_rate": clap["sample_rate"],
            "window_s": clap["window_s"],
            "embedding": "unit-norm CLAP audio projection; length-weighted mean of fixed windows, renormalised",
            "resampling": clap["resampling"],
            "reference_set": "the benchmark's targets of the same items",
            "interval": f"paired bootstrap over items, {N_BOOT} resamples, seed 0: (2.5, 97.5) percentiles "
                        "shifted by the resampling bias (mean of the resamples minus the value)",
            "definition": "||mu_e - mu_r||^2 + tr(C_e) + tr(C_r) - 2 tr sqrt(C_e C_r) of the estimates' and the "
                          "references' embeddings (Kilgour et al., 2019); lower is better; one value per set",
        }

    def embed(self, signals: Sequence[np.ndarray], rates: Sequence[int]) -> np.ndarray:
        """``(n, dim)`` embeddings of mono signals; each item alone gives the same row as in a batch."""
        out: list[np.ndarray | None] = [None] * len(signals)
        for rate in sorted(set(rates)):
            picked = [i for i, r in enumerate(rates) if r == rate]
            for start in range(0, len(picked), _BATCH):
                chunk = picked[start:start + _BATCH]
                for i, row in zip(chunk, self.clap.audio_embeddings([signals[i] for i in chunk], rate), strict=True):
                    out[i] = row
        return np.stack(out) if out else np.zeros((0, 0))

    def embed_rows(self, ids: Sequence[str], estimates: Sequence[np.ndarray], references: Sequence[np.ndarray],
                   rates: Sequence[int]) -> dict[str, dict[str, list[float]]]:
        """One batch of a runner: ``{item: {ESTIMATE_KEY: [...], REFERENCE_KEY: [...]}}``, kept in its rows until
        the run's sets are complete (so a resumed run does not embed again)."""
        est, ref = self.embed(estimates, rates), self.embed(references, rates)
        return {str(i): {ESTIMATE_KEY: e.tolist(), REFERENCE_KEY: r.tolist()}
                for i, e, r in zip(ids, est, ref, strict=True)}

    def score_pairs(self, pairs: Iterable[tuple[np.ndarray, int, np.ndarray, int]]) -> dict:
        """``(estimate, its rate, reference, its rate)`` per item, streamed: only the embeddings are kept."""
        est, ref, pending = [], [], []
        for pair in pairs:
            pending.append(pair)
            if len(pending) >= _BATCH:
                est.append(self.embed([p[0] for p in pending], [p[1] for p in pending]))
                ref.append(self.embed([p[2] for p in pending], [p[3] for p in pending]))
                pending = []
        if pending:
            est.append(self.embed([p[0] for p in pending], [p[1] for p in pending]))
            ref.append(self.embed([p[2] for p in pending], [p[3] for p in pending]))
        if sum(len(e) for e in est) < 2:
            raise LassbenchError("FAD needs at least 2 items with a reference")
        return fad_statistics(np.concatenate(est), np.concatenate(ref))

    def score_rows(self, rows: list[dict]) -> dict:
        """FAD of a run's rows (:meth:`embed_rows` columns), which it strips from the rows in place."""
        scored = [row for row in rows if ESTIMATE_KEY in row]
        if len(scored) < 2:
            raise LassbenchError("FAD needs at least 2 items with a reference")
        est = np.array([row.pop(ESTIMATE_KEY) for row in scored], dtype=np.float64)
        ref = np.array([row.pop(REFERENCE_KEY) for row in scored], dtype=np.float64)
        return fad_statistics(est, ref)


def add_fad(summary: dict, scorer: FadScorer, statistics: dict) -> dict:
    """Record a FAD and its embedding model in a summary.json dict (``metrics``, ``definitions``, ``fad``)."""
    summary["metrics"][scorer.name] = statistics
    summary["definitions"][scorer.name] = scorer.info["definition"]
    summary["fad"] = scorer.info
    return summary
