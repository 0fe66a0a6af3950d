"""Model speed on this machine: real-time factor of separation, training steps/s, and time to first result.

    python perf/models_speed.py [--threads 2] [--skip-first-run]

Prints one table. The reference of each ratio is named in its row and measured in the same process:
real-time factor = seconds of compute / seconds of audio (lower is faster; 1.0 = real time).
``base`` is timed with random weights and a random condition vector (its text encoder, bert-mini, is not available
offline; the text side costs one embedding per query and is excluded for both sizes so they compare).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

from lassbench.models.lassnet import sized_config
from lassbench.models.registry import count_parameters
from lassbench.models.resunet import ConditionedResUNet


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def separation_rtf(size: str, seconds: float = 10.0) -> tuple[int, float]:
    config = sized_config(size).backbone
    net = ConditionedResUNet(config).eval()
    mixture = torch.randn(1, int(seconds * config.sample_rate)) * 0.1
    cond = torch.randn(1, config.cond_dim)
    with torch.no_grad():
        net(mixture, cond)  # warm-up
        elapsed = best_of(lambda: net(mixture, cond))
    return count_parameters(net), elapsed / seconds


def training_steps_per_second(batch: int = 8, segment: float = 2.0, steps: int = 5) -> float:
    config = sized_config("tiny").backbone
    net = ConditionedResUNet(config)
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
    mixture = torch.randn(batch, int(segment * config.sample_rate)) * 0.1
    target = mixture * 0.5
    cond = torch.randn(batch, config.cond_dim)

    def step() -> None:
        loss = (net(mixture, cond) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def first_run_seconds() -> float:
    """`lassbench run lassnet` with an empty cache: builds the synth benchmark, loads MiniLM, separates, scores."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LASSBENCH_CACHE": os.path.join(tmp, "cache"), "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lassbench", "run", "lassnet", "--out", os.path.join(tmp, "results")],
                       env=env, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-first-run", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size, target in (("tiny", 0.05), ("base", 0.5)):
        params, rtf = separation_rtf(size)
        rows.append((f"separate 10 s, {size} ({params / 1e6:.2f} M params)", f"RTF {rtf:.4f}",
                     f"target <= {target}: {'met' if rtf <= target else 'missed'}"))
    sps = training_steps_per_second()
    rows.append(("train tiny, batch 8 x 2 s", f"{sps:.2f} steps/s", f"{3600 * sps:.0f} steps/hour"))
    if not args.skip_first_run:
        seconds = first_run_seconds()
        rows.append(("`lassbench run lassnet`, empty cache", f"{seconds:.1f} s",
                     f"target < 120 s: {'met' if seconds < 120 else 'missed'}"))
    width = max(len(r[0]) for r in rows)
    print(f"torch {torch.__version__}, {args.threads} threads")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>18}  {note}")


if __name__ == "__main__":
    main()
