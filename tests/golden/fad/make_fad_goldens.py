"""Golden FADs from the kept libraries' own distance functions, on seeded embeddings (writes fad-golden.json).

Both libraries import torch/torchaudio at module level, so their Fréchet-distance functions are taken from the
installed packages' source files, unchanged, and run with numpy + scipy in a throwaway venv::

    python -m venv /tmp/fadvenv && /tmp/fadvenv/bin/pip install numpy scipy mpmath
    /tmp/fadvenv/bin/pip install --no-deps fadtk==1.1.0 frechet-audio-distance==0.3.4
    /tmp/fadvenv/bin/python tests/golden/fad/make_fad_goldens.py

The embeddings are regenerated in tests/evaluation/test_fad.py from the same seeds (``embedding_sets``). ``exact`` is
the same formula in 40-digit arithmetic (mpmath): the nuclear norm of the centred cross-product for
``tr sqrt(C_e C_r)``, which needs no matrix square root, to tell the libraries' rounding from lassbench's.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
from pathlib import Path

import mpmath
import numpy as np
from numpy.lib.scimath import sqrt as scisqrt
from scipy import linalg

# (name, n_estimates, n_references, dim, shift): more items than dimensions, fewer (singular covariances), unequal
CASES = [("n200_d16", 200, 200, 16, 0.3), ("n40_d64", 40, 40, 64, 0.5), ("n30_d8_unequal", 30, 50, 8, 1.0)]


def embedding_sets(n_est: int, n_ref: int, dim: int, shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    references = rng.standard_normal((n_ref, dim)) @ mix
    estimates = 0.8 * rng.standard_normal((n_est, dim)) @ mix + shift
    return estimates, references


def library_function(package: str, name: str):
    """``name`` from ``<package>/fad.py``'s source, run without the module's torch imports."""
    source = Path(importlib.util.find_spec(package).submodule_search_locations[0]) / "fad.py"
    tree = ast.parse(source.read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace = {"np": np, "linalg": linalg, "scisqrt": scisqrt, "log": logging.getLogger(package)}
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(source), "exec"), namespace)
    return namespace[name]


def exact_fad(est: np.ndarray, ref: np.ndarray, digits: int = 40) -> float:
    """||mu_e - mu_r||^2 + tr C_e + tr C_r - 2 ||X_e X_r^T||_* / sqrt((n_e - 1)(n_r - 1)), X centred."""
    mpmath.mp.dps = digits

    def centred(x: np.ndarray):
        m = mpmath.matrix(x.tolist())
        mean = [mpmath.fsum(m[i, j] for i in range(m.rows)) / m.rows for j in range(m.cols)]
        return mpmath.matrix([[m[i, j] - mean[j] for j in range(m.cols)] for i in range(m.rows)]), mean

    (xe, me), (xr, mr) = centred(est), centred(ref)
    ne, nr = len(est), len(ref)
    cross = mpmath.fsum(mpmath.svd_r(xe * xr.T, compute_uv=False)) / mpmath.sqrt((ne - 1) * (nr - 1))
    traces = mpmath.fsum(v ** 2 for v in xe) / (ne - 1) + mpmath.fsum(v ** 2 for v in xr) / (nr - 1)
    return float(mpmath.fsum((a - b) ** 2 for a, b in zip(me, mr, strict=True)) + traces - 2 * cross)


def main() -> None:
    fadtk = library_function("fadtk", "calc_frechet_distance")
    fad_pkg = library_function("frechet_audio_distance", "calculate_frechet_distance")
    out = {}
    for name, n_est, n_ref, dim, shift in CASES:
        est, ref = embedding_sets(n_est, n_ref, dim, shift)
        stats = [np.mean(est, axis=0), np.cov(est, rowvar=False), np.mean(ref, axis=0), np.cov(ref, rowvar=False)]
        out[name] = {"fadtk": float(fadtk(*stats)), "frechet_audio_distance": float(fad_pkg(None, *stats)),
                     "exact": exact_fad(est, ref)}
    path = Path(__file__).with_name("fad-golden.json")
    path.write_text(json.dumps({"libraries": {"fadtk": "1.1.0", "frechet-audio-distance": "0.3.4"},
                                "cases": out}, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
