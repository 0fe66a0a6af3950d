"""The contract between build-dataset and a protocol: the request it is given, what it prepares, the plan it makes.

Item ids and item random streams live here too: every protocol derives them the same way, so any shard of a build
draws identical items.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lassbench.mixing import ItemSpec
from lassbench.safe_names import check_names


@dataclass
class BuildRequest:
    """What the user asked for, as the protocols see it."""

    splits: tuple[str, ...] | None = None  # None: the protocol's default
    num_items: int | None = None  # items per split (lassbench); None: the protocol's default
    seed: int = 0
    index: str | None = None  # path or URL of a published index file
    sample_rate: int | None = None  # None: the protocol's default
    allow_missing: bool = False  # index rows naming absent clips: skip them (recorded) instead of failing
    exclude_ids: frozenset[str] = frozenset()
    options: dict = field(default_factory=dict)  # protocol-specific parameters (e.g. LassbenchParams fields)

    def __post_init__(self) -> None:
        check_names(self.splits or (), "split", "--splits")  # item ids are <split>-<n>: file stems


@dataclass
class Plan:
    specs: list[ItemSpec]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)


@dataclass
class Prepared:
    """A protocol ready to plan: ``sources`` are the clips to read; ``plan`` maps usable source ids to items."""

    sources: pd.DataFrame
    plan: Callable[[set[str]], Plan]
    parameters: dict
    sample_rate: int
    num_samples: int | None = None  # every clip fitted to this length before measuring (None: keep own length)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    pad_to: int | None = None  # clips shorter than this are zero-padded to it, longer ones kept whole (LASS-Net)
    loudness_gate: bool = True  # skip clips that are silent / shorter than 0.4 s (the lassbench protocol only)
    # dataset.json "exact": the items are those of the protocol's definition (the published evaluator's own files or
    # its mixing code on its list); False for approximations such as AudioSep's lists re-mixed from raw clips
    exact: bool = True


def item_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The RNG of one item: a function of (seed, split, item index) only, so any shard draws identical items."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(split.encode()), int(index)]))


def item_id(split: str, index: int) -> str:
    return f"{split or 'item'}-{index:06d}"
