"""Speed of lassbench.metrics against the implementations people use, side by side in one process.

    python benchmarks/metrics.py [--items 200] [--seconds 10] [--sample-rate 32000] [--reference-items 10]

Scores ``--items`` synthetic items (filtered noise + a tone as the reference, a filtered, noisy copy as the
estimate) and prints seconds and ratios:

* plain metrics: our batched ``sdr`` + ``si_sdr`` against a per-item numpy loop written in the style of the
  AudioSep / DCASE 2024 evaluators (``calculate_sdr`` / ``calculate_sisdr`` on each item);
* BSS-Eval SDR: our ``bss_sdr`` against ``mir_eval.separation.bss_eval_sources`` and torchmetrics'
  ``signal_distortion_ratio``, which are timed on the first ``--reference-items`` items only and extrapolated per
  item (marked in the table), with the largest absolute difference on those items.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.signal import butter, lfilter

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
    """The per-item loop body of the AudioSep / DCASE evaluators (their calculate_sdr semantics)."""
    noise = est - ref
    numerator = np.clip(np.mean(ref**2), eps, None)
    denominator = np.clip(np.mean(noise**2), eps, None)
    return float(10.0 * np.log10(numerator / denominator))


def evaluator_style_sisdr(ref: np.ndarray, est: np.ndarray) -> float:
    """AudioSep calculate_sisdr semantics: projection with eps = finfo(dtype).eps, no zero-mean."""
    eps = np.finfo(ref.dtype).eps
    scale = (eps + np.dot(ref, est)) / (np.dot(ref, ref) + eps)
    target = scale * ref
    residual = est - target
    return float(10.0 * np.log10((eps + np.sum(target**2)) / (eps + np.sum(residual**2))))


def timed(function, *args, repeats: int = 1):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def run(items: int, seconds: float, sample_rate: int, reference_items: int) -> str:
    import torch
    from mir_eval.separation import bss_eval_sources
    from torchmetrics.functional.audio import signal_distortion_ratio

    warnings.filterwarnings("ignore", category=FutureWarning)  # mir_eval 0.8 deprecates bss_eval_sources
    ref, est = make_items(items, int(seconds * sample_rate), sample_rate)
    sub = slice(0, min(reference_items, items))
    rows = []

    ours_plain, _ = timed(lambda: metrics.compute_metrics(ref, est, metrics=["sdr", "si_sdr"]), repeats=3)
    loop_plain, _ = timed(
        lambda: [(evaluator_style_sdr(r, e), evaluator_style_sisdr(r, e)) for r, e in zip(ref, est, strict=True)],
        repeats=3,
    )
    rows.append(("sdr + si_sdr", "lassbench batch", ours_plain, items, 1.0))
    rows.append(("sdr + si_sdr", "per-item numpy loop (AudioSep/DCASE style)", loop_plain, items,
                 loop_plain / ours_plain))

    ours_bss, ours_values = timed(metrics.bss_sdr, ref, est)
    mir_time, mir_values = timed(
        lambda: np.array([bss_eval_sources(r[None].astype(np.float64), e[None].astype(np.float64))[0][0]
                          for r, e in zip(ref[sub], est[sub], strict=True)])
    )
    tm_time, tm_values = timed(
        lambda: signal_distortion_ratio(torch.from_numpy(est[sub]).double(), torch.from_numpy(ref[sub]).double())
        .numpy()
    )
    n_sub = sub.stop
    per_item_ours = ours_bss / items
    rows.append(("bss_sdr", "lassbench batch", ours_bss, items, 1.0))
    rows.append(("bss_sdr", f"mir_eval bss_eval_sources (timed on {n_sub}, extrapolated)",
                 mir_time / n_sub * items, items, mir_time / n_sub / per_item_ours))
    rows.append(("bss_sdr", f"torchmetrics signal_distortion_ratio (timed on {n_sub}, extrapolated)",
                 tm_time / n_sub * items, items, tm_time / n_sub / per_item_ours))

    lines = [
        f"{items} items of {seconds:g} s at {sample_rate} Hz, float32",
        "",
        f"| metric | implementation | seconds for {items} | s per 1000 items | ratio (x slower than ours) |",
        "|---|---|---|---|---|",
    ]
    for metric, name, secs, n, ratio in rows:
        lines.append(f"| {metric} | {name} | {secs:.3f} | {secs / n * 1000:.2f} | {ratio:.1f} |")
    lines += [
        "",
        f"bss_sdr max |ours - mir_eval| on {n_sub} items: {np.abs(ours_values[sub] - mir_values).max():.2e} dB",
        f"bss_sdr max |ours - torchmetrics| on {n_sub} items: {np.abs(ours_values[sub] - tm_values).max():.2e} dB",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample-rate", type=int, default=32000)
    parser.add_argument("--reference-items", type=int, default=10, help="items timed for mir_eval/torchmetrics")
    args = parser.parse_args()
    print(run(args.items, args.seconds, args.sample_rate, args.reference_items))


if __name__ == "__main__":
    main()
