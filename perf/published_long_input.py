"""How far ``lassbench separate``'s long-input path for a published system is from one pass over the whole file.

    python perf/published_long_input.py                 # a 36 s input
    python perf/published_long_input.py --seconds 60

Published systems separate a file of up to ``lassbench.separator.WHOLE_FILE_SECONDS`` in one pass, as their official
inference does. Past that, ``lassnet-release`` (whose release has no long-audio inference) is separated in lassbench's
10 s chunks cross-faded over 1 s, and the AudioSep family in its release's ``chunk_inference``. This script runs both
paths and the single pass on the same input (the AudioSep family measured with its 16 kHz member, half the memory of
a 32 kHz pass), with the seeded checkpoints of the test suite (the released layout,
weights drawn from a seed, tiny text encoders: tests/support/published_fixtures.py), and prints the largest difference
relative to the single pass's peak and the signal-to-difference ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=36.0)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from lassbench.separator import Separator, load_separator

    from support import published_fixtures as fx

    print(f"{'model':<17} {'long-input path':<34} {'max |diff| / peak':>18} {'SDR vs one pass':>16}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, path in (("lassnet-release", "lassbench chunks 10 s / 1 s"),
                           ("dcase2024-baseline", "the release's chunk_inference")):
            vocab = fx.write_bert_vocab(root / "bert") if name == "lassnet-release" else fx.write_roberta_vocab(
                root / "roberta")
            checkpoint = fx.write_checkpoint(name, root / f"{name}.ckpt", fx.seeded_state(fx.layout(name)))
            separator = load_separator(name, checkpoint, text_encoder=str(vocab))
            rate = separator.sample_rate
            t = np.arange(int(args.seconds * rate)) / rate
            rng = np.random.default_rng(0)
            audio = (0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
                     + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
            whole = separator._one_pass(audio, "a dog barks", official_chunks=False)
            plan, _ = separator.segmenting(args.seconds)
            long_path = separator.separate(audio, rate, "a dog barks", log=lambda line: None)
            assert plan != "whole" and isinstance(separator, Separator)
            difference = long_path - whole
            ratio = float(np.abs(difference).max() / np.abs(whole).max())
            sdr = 10 * np.log10(np.sum(whole.astype(np.float64) ** 2) / np.sum(difference.astype(np.float64) ** 2))
            print(f"{name:<17} {path:<34} {ratio:18.2e} {sdr:13.1f} dB")


if __name__ == "__main__":
    main()
