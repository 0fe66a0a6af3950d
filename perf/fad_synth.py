"""FAD of the mixture and of the oracle IRM against the references on the synth benchmark's test split.

    python perf/fad_synth.py --clap DIR [--out results-fad] [--limit N]
    python perf/fad_synth.py --vggish FILE [--out results-fad] [--limit N]
    python perf/fad_synth.py --seeded-clap [--out results-fad] [--limit N]
    python perf/fad_synth.py --seeded-vggish [--out results-fad] [--limit N]

Runs ``lassbench run mixture`` and ``lassbench run oracle-irm`` with ``--fad`` on the embedded synth benchmark
(built on first use) and prints one table: SDRi, FAD with its bootstrap 95% CI, the embedding model's SHA-256, and
whether the mixture lies farther from the references than the oracle mask's estimates (it should: the oracle keeps
the target and drops most of the interferers).

``--clap DIR``: a local CLAP checkpoint folder (e.g. laion/clap-htsat-unfused saved with ``huggingface-cli
download``): a real FAD in CLAP's embedding space. ``--vggish FILE``: torchvggish's ``vggish-10086976.pth``: the
FAD paper's VGGish FAD. ``--seeded-clap``: the tiny seeded, untrained ClapModel the tests
make (16-dim embeddings, written under OUT): it checks the pipeline and the ordering, but its numbers are distances
in a random embedding, not a FAD anyone reports. ``--seeded-vggish``: VGGish with the seeded He-scaled random
weights the VGGish goldens use (a 290 MB file written under OUT), the same caveat.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lassbench.fad import FadScorer
from lassbench.run import RunConfig, run_model

SYSTEMS = ("mixture", "oracle-irm")


def seeded_clap(out: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.tiny_clap import make_tiny_clap  # the tests' seeded model, made the same way

    folder = out / "seeded-tiny-clap"
    return folder if (folder / "config.json").is_file() else make_tiny_clap(folder, seed=0)


def seeded_vggish(out: Path) -> Path:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "golden" / "fad"))
    from make_vggish_goldens import seeded_state_dict  # the goldens' seeded weights

    path = out / "vggish-seeded.pth"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        torch.save(seeded_state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--clap", type=Path, help="local CLAP checkpoint folder")
    model.add_argument("--vggish", type=Path, help="local VGGish state-dict file (torchvggish layout)")
    model.add_argument("--seeded-clap", action="store_true", help="the tests' tiny seeded random ClapModel")
    model.add_argument("--seeded-vggish", action="store_true", help="VGGish with the goldens' seeded random weights")
    parser.add_argument("--out", type=Path, default=Path("results-fad"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N test items")
    args = parser.parse_args()
    seeded = args.seeded_clap or args.seeded_vggish
    folder = seeded_clap(args.out) if args.seeded_clap else (
        seeded_vggish(args.out) if args.seeded_vggish else (args.clap or args.vggish))
    name = FadScorer(folder).name
    rows = []
    for system in SYSTEMS:
        outcome = run_model(RunConfig(model=system, out=str(args.out), limit=args.limit, fad=str(folder)))[0]
        stats, sdri = outcome.summary["metrics"][name], outcome.summary["metrics"]["sdri"]["mean"]
        rows.append((system, sdri, stats["mean"], stats["ci95_low"], stats["ci95_high"], stats["n"]))
    weights = f"{folder} (seeded random weights: not a real FAD)" if seeded else str(folder)
    print(f"embedding model: {weights}; metric {name}; benchmark synth, split test")
    print(f"{'system':<12} {'SDRi':>7} {'FAD':>10} {'95% CI':>24} {'n':>5}")
    for system, sdri, value, low, high, n in rows:
        print(f"{system:<12} {sdri:7.3f} {value:10.3e} {f'[{low:.3e}, {high:.3e}]':>24} {n:5d}")
    print(f"mixture FAD > oracle-irm FAD: {'yes' if rows[0][2] > rows[1][2] else 'NO'}")


if __name__ == "__main__":
    main()
