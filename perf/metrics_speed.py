"""Speed of lassbench.metrics against named references, all measured in one process, interleaved.

    python perf/metrics_speed.py [--items 200] [--seconds 10] [--sample-rate 32000] [--reference-items 10]
                                 [--repeats 5]

Scores ``--items`` synthetic items (filtered noise + a tone as the reference, a filtered, noisy copy as the
estimate, float32) and prints two tables of seconds per 1000 items and ratios:

* plain metrics (``sdr`` + ``si_sdr``, both SI-SDR conventions) against
  - a per-item numpy loop written as the AudioSep / DCASE 2024 evaluators compute (``calculate_sdr`` +
    ``calculate_sisdr`` on each item, in float32, OpenBLAS dot products as they come), and the same loop with BLAS
    held to one thread (on a loaded machine OpenBLAS' threads wait on each other);
  - one pass over the data: ``np.sum`` of every reference and estimate (float32), the time to read the arrays once;
* BSS-Eval SDR: our ``bss_sdr`` against ``mir_eval.separation.bss_eval_sources`` and torchmetrics'
  ``signal_distortion_ratio``, timed on the first ``--reference-items`` items and extrapolated per item, with the
  largest absolute difference on those items.

Each implementation is timed ``--repeats`` times, round-robin (so a burst of load from other processes hits all of
them alike), and the best time is kept. The load average before and after is printed: on a shared machine the
seconds move, the ratios much less.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings

import numpy as np
from scipy.signal import butter, lfilter
from threadpoolctl import threadpool_limits

from lassbench import metrics


def make_items(n_items: int, n_samples: int, sample_rate: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    b, a = butter(4, 0.2)
    t = np.arange(n_samples) / sample_rate
    noise = lfilter(b, a, rng.standard_normal((n_items, n_samples)), axis=-1)
    tone = np.sin(2 * np.pi * rng.uniform(100, 2000, (n_items, 1)) * t)
    reference = noise / np.abs(noise).max(axis=-1, keepdims=True) * 0.5 + 0.1 * tone
    smeared = lfilter([0.8, 0.3, -0.1], [1.0], reference, axis=-1)
    estimate = smeared + rng.uniform(0.01, 0.2, (n_items, 1)) * rng.standard_normal((n_items, n_samples))
    return reference.astype(np.float32), estimate.astype(np.float32)


def evaluator_style_sdr(ref: np.ndarray, est: np.ndarray, eps: float = 1e-10) -> float:
    """AudioSep utils.calculate_sdr, as its evaluators call it per item."""
    noise = est - ref
    numerator = np.clip(np.mean(ref**2), eps, None)
    denominator = np.clip(np.mean(noise**2), eps, None)
    return float(10.0 * np.log10(numerator / denominator))


def evaluator_style_sisdr(ref: np.ndarray, est: np.ndarray) -> float:
    """AudioSep utils.calculate_sisdr: projection with eps = finfo(dtype).eps, no mean removal, input dtype."""
    eps = np.finfo(ref.dtype).eps
    scale = (eps + np.dot(ref, est)) / (np.dot(ref, ref) + eps)
    target = scale * ref
    residual = est - target
    return float(10.0 * np.log10((eps + np.sum(target**2)) / (eps + np.sum(residual**2))))


def evaluator_loop(ref: np.ndarray, est: np.ndarray) -> list[tuple[float, float]]:
    return [(evaluator_style_sdr(r, e), evaluator_style_sisdr(r, e)) for r, e in zip(ref, est, strict=True)]


def evaluator_loop_one_thread(ref: np.ndarray, est: np.ndarray) -> list[tuple[float, float]]:
    with threadpool_limits(1, user_api="blas"):
        return evaluator_loop(ref, est)


def one_pass(ref: np.ndarray, est: np.ndarray):
    return ref.sum(axis=-1), est.sum(axis=-1)


def interleaved_best(candidates: dict, repeats: int) -> tuple[dict[str, float], dict]:
    """Best wall time of each candidate over ``repeats`` round-robin rounds, and its last result."""
    best = dict.fromkeys(candidates, float("inf"))
    results = {}
    for _ in range(repeats):
        for name, function in candidates.items():
            start = time.perf_counter()
            results[name] = function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def plain_table(ref: np.ndarray, est: np.ndarray, repeats: int) -> list[str]:
    ours = "lassbench compute_metrics(sdr, si_sdr)"
    candidates = {
        f"{ours}, zero-mean SI-SDR": lambda: metrics.compute_metrics(ref, est, metrics=["sdr", "si_sdr"]),
        f"{ours}, AudioSep SI-SDR": lambda: metrics.compute_metrics(ref, est, metrics=["sdr", "si_sdr"],
                                                                    convention="audiosep"),
        "per-item numpy loop, AudioSep/DCASE calculate_sdr + calculate_sisdr": lambda: evaluator_loop(ref, est),
        "same loop, BLAS held to 1 thread": lambda: evaluator_loop_one_thread(ref, est),
        "one pass over the data (np.sum of reference and estimate, float32)": lambda: one_pass(ref, est),
    }
    best, results = interleaved_best(candidates, repeats)
    names = list(candidates)
    per_1000 = {name: best[name] / len(ref) * 1000 for name in names}
    loop, loop_1, single = per_1000[names[2]], per_1000[names[3]], per_1000[names[4]]
    lines = ["| implementation | s per 1000 items | loop / this | loop (1 thread) / this | this / one pass |",
             "|---|---|---|---|---|"]
    for name in names:
        t = per_1000[name]
        lines.append(f"| {name} | {t:.3f} | {loop / t:.2f} | {loop_1 / t:.2f} | {t / single:.2f} |")
    audiosep = results[names[1]]["si_sdr"]
    official = np.array([v[1] for v in results[names[2]]])
    lines.append("")
    lines.append(f"AudioSep SI-SDR, max |ours (float64 sums) - their float32 loop|: "
                 f"{np.abs(audiosep - official).max():.2e} dB")
    return lines


def bss_table(ref: np.ndarray, est: np.ndarray, reference_items: int, repeats: int) -> list[str]:
    import torch
    from mir_eval.separation import bss_eval_sources
    from torchmetrics.functional.audio import signal_distortion_ratio

    warnings.filterwarnings("ignore", category=FutureWarning)  # mir_eval 0.8 deprecates bss_eval_sources
    n_sub = min(reference_items, len(ref))
    sub = slice(0, n_sub)
    def mir_eval_values() -> np.ndarray:
        return np.array([bss_eval_sources(r[None].astype(np.float64), e[None].astype(np.float64))[0][0]
                         for r, e in zip(ref[sub], est[sub], strict=True)])

    def mir_eval_one_thread() -> np.ndarray:
        with threadpool_limits(1, user_api="blas"):  # its LAPACK solve: threads that wait on each other under load
            return mir_eval_values()

    candidates = {
        "lassbench bss_sdr (batch)": lambda: metrics.bss_sdr(ref, est),
        f"mir_eval bss_eval_sources (timed on {n_sub}, extrapolated)": mir_eval_values,
        f"mir_eval, BLAS held to 1 thread (timed on {n_sub}, extrapolated)": mir_eval_one_thread,
        f"torchmetrics signal_distortion_ratio (timed on {n_sub}, extrapolated)": lambda: signal_distortion_ratio(
            torch.from_numpy(est[sub]).double(), torch.from_numpy(ref[sub]).double()).numpy(),
    }
    best, results = interleaved_best(candidates, max(1, repeats // 2))
    names = list(candidates)
    counts = {name: n_sub for name in names} | {names[0]: len(ref)}
    per_1000 = {name: best[name] / counts[name] * 1000 for name in names}
    ours = per_1000[names[0]]
    lines = ["| implementation | s per 1000 items | this / ours |", "|---|---|---|"]
    lines += [f"| {name} | {per_1000[name]:.2f} | {per_1000[name] / ours:.1f} |" for name in names]
    lines.append("")
    for name in names[1:]:
        diff = np.abs(results[names[0]][sub] - results[name]).max()
        lines.append(f"bss_sdr max |ours - {name.split(' (')[0]}| on {n_sub} items: {diff:.2e} dB")
    return lines


def run(items: int, seconds: float, sample_rate: int, reference_items: int, repeats: int) -> str:
    ref, est = make_items(items, int(seconds * sample_rate), sample_rate)
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    plain = plain_table(ref, est, repeats)
    bss = bss_table(ref, est, reference_items, repeats)
    load_after = os.getloadavg()
    header = [
        f"{items} items of {seconds:g} s at {sample_rate} Hz, float32; best of {repeats} interleaved rounds "
        f"(BSS-Eval: {max(1, repeats // 2)})",
        f"{started:%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPU(s), numpy {np.__version__}; "
        f"load average (1/5/15 min) before {_load(load_before)}, after {_load(load_after)}",
        "",
    ]
    return "\n".join([*header, "Plain metrics (sdr + si_sdr):", "", *plain, "", "BSS-Eval SDR:", "", *bss])


def _load(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample-rate", type=int, default=32000)
    parser.add_argument("--reference-items", type=int, default=10, help="items timed for mir_eval/torchmetrics")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the best time is kept")
    args = parser.parse_args()
    print(run(args.items, args.seconds, args.sample_rate, args.reference_items, args.repeats))


if __name__ == "__main__":
    main()
