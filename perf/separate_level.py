"""Level of the mixtures the shipped models saw, and how ``separate`` behaves when the input is louder.

    python perf/separate_level.py                  # 40 synth test items, 12 of them separated at 3 gains
    python perf/separate_level.py --items 100 --separate 20

Builds a small synth benchmark with the lassbench protocol (the rule the shipped checkpoints were trained on), prints
the median and 10th/90th percentile RMS of its mixtures (the origin of ``lassbench.separator.TRAINING_RMS_DB``), then
separates ``--separate`` mixtures with the shipped LASS-Net at gains 1, 4 and 100, with the level normalisation
(as shipped) and without it (the input fed as it is), and prints the median SI-SDR against the target (divided by
the gain) and the largest relative difference between ``separate(g * x) / g`` and ``separate(x)``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

import lassbench
import lassbench.separator as separator_module
from lassbench.metrics import si_sdr

GAINS = (1.0, 4.0, 100.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40, help="test mixtures built")
    parser.add_argument("--separate", type=int, default=12, help="of those, separated at each gain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        sources = lassbench.synth_corpus(root / "synth", duration=5.0, clips={"train": 14, "val": 14, "test": 40})
        built = lassbench.build_dataset(lassbench.BuildConfig(sources=sources, out=root / "bench", splits=("test",),
                                                              num_items={"test": args.items}, progress=False))
        items = pd.read_csv(built.manifest)
        rms = [_rms_db(lassbench.read_audio(built.out / path)[0]) for path in items["mixture_path"]]
        low, median, high = np.percentile(rms, [10, 50, 90])
        print(f"mixture RMS over {len(rms)} items: median {median:.1f} dBFS (p10 {low:.1f}, p90 {high:.1f})\n")
        separator = lassbench.load_separator("lassnet")
        rows = []
        for item in items.head(args.separate).itertuples():
            mixture, rate = lassbench.read_audio(built.out / item.mixture_path)
            target, _ = lassbench.read_audio(built.out / item.target_path)
            for normalised in (True, False):
                rows.extend(_at_gains(separator, mixture, target, rate, item.query, normalised))
    _print_table(pd.DataFrame(rows))


def _at_gains(separator, mixture, target, rate, query, normalised: bool) -> list[dict]:
    patch = mock.patch.object(separator_module, "level_gain", lambda rms: 1.0) if not normalised else mock.MagicMock()
    with patch:
        estimates = {g: separator.separate(mixture * np.float32(g), rate, query) / g for g in GAINS}
    base = estimates[1.0]
    return [{"input": "normalised (shipped)" if normalised else "as is (before)", "gain": g,
             "si_sdr": float(si_sdr(target, e)), "deviation": float(np.abs(e - base).max() / np.abs(base).max())}
            for g, e in estimates.items()]


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2)))


def _print_table(frame: pd.DataFrame) -> None:
    print("| input | gain | median SI-SDR (dB) | max relative deviation from gain 1 |")
    print("|---|---|---|---|")
    for (where, gain), group in frame.groupby(["input", "gain"], sort=False):
        print(f"| {where} | {gain:g} | {group['si_sdr'].median():.2f} | {group['deviation'].max():.1e} |")


if __name__ == "__main__":
    main()
