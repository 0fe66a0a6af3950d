"""Write lassbench/data/audiocaps_captions.csv: the AudioCaps captions that name one class's sound alone.

    python recipes/real/match_captions.py [AUDIOCAPS_DIR]   # default ../shared/reference/audiocaps (train/val/test.csv)
    python recipes/real/match_captions.py --sample 50 --seed 1   # print a sample for the hand check instead

The rule is lassbench.corpora.human_captions (docs/real-corpus.md, "Captions written by people").
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from lassbench.audio import write_text_atomic
from lassbench.corpora.human_captions import COLUMNS, TABLE, match_captions
from lassbench.corpora.packaged import load_table

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audiocaps", nargs="?", default=str(ROOT.parent.parent / "shared/reference/audiocaps"))
    parser.add_argument("--sample", type=int, default=0, help="print this many matches and write nothing")
    parser.add_argument("--seed", type=int, default=0, help="of the --sample")
    args = parser.parse_args()
    rows = []
    for split in ("train", "val", "test"):
        with open(Path(args.audiocaps) / f"{split}.csv", newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    matched = match_captions(rows, load_table().classes)
    if args.sample:
        for row in random.Random(args.seed).sample(matched, args.sample):
            print(f"{row['class']:<12} {row['caption']}")
        return
    lines = [",".join(COLUMNS)] + [_csv_line(row) for row in matched]
    write_text_atomic(ROOT / "lassbench" / TABLE, "\n".join(lines) + "\n")
    classes = len({r["class"] for r in matched})
    print(f"{len(matched)} captions of {classes} classes from {len(rows)} -> lassbench/{TABLE}")


def _csv_line(row: dict) -> str:
    caption = row["caption"].replace('"', '""')
    return f'{row["audiocap_id"]},{row["class"]},"{caption}"'


if __name__ == "__main__":
    main()
