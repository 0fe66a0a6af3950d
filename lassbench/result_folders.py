"""Where ``lassbench run`` puts a result, and who may write there.

A result folder is keyed by the item set it scores, so a quick look never replaces a full run:
``OUT/<benchmark>/<system>`` holds the run over the whole test split, ``<system>+first20`` the ``--limit 20`` run,
``<system>+val`` the run over the val split (and ``<system>+val+first20`` both). A partial run also records what
it covers (``subset`` in summary.json and run.json), which the leaderboard reads to list it unranked.

A folder that already holds a finished run over another item set (the benchmark was rebuilt with other items) is
never overwritten silently: the run refuses unless ``--replace`` is given. Two runs into one ``--out`` at once are
refused by a lock file (``OUT/.lassbench-run.lock``), released by the operating system even when a run is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lassbench.errors import LassbenchError
from lassbench.subsets import subset_record
from lassbench.summary import item_set_digest

DEFAULT_SPLIT = "test"  # the split a result folder without a key scores
LOCK_NAME = ".lassbench-run.lock"


@dataclass(frozen=True)
class ItemSelection:
    """The items a run scores, as far as they differ from the whole test split."""

    key: str = ""  # folder suffix: "", "+first20", "+val", "+val+first20"
    limit: int | None = None  # the --limit that selects fewer items than the split has (None: the whole split)
    subset: dict | None = None  # summary.json / run.json "subset" of a partial run


def item_selection(split: str | None, limit: int | None, n_selected: int, n_split: int) -> ItemSelection:
    """The selection of ``--split`` and ``--limit``; a limit that covers the whole split is no limit."""
    limit = limit if limit is not None and limit < n_split else None
    parts = [split] if split and split != DEFAULT_SPLIT else []
    if limit is not None:
        parts.append(f"first{limit}")
    subset = subset_record(n_selected, n_split, split, f"--limit {limit}", first=True) if limit is not None else None
    return ItemSelection("".join(f"+{part}" for part in parts), limit, subset)


def refuse_other_item_set(out_dir: Path, ids: Iterable, *, replace: bool) -> None:
    """A finished result in ``out_dir`` that scored other items is kept unless ``replace``."""
    try:
        summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    held = summary.get("item_set_sha1") if isinstance(summary, dict) else None
    if replace or not held or held == item_set_digest(ids):
        return
    raise LassbenchError(
        f"{out_dir}: holds a finished run over another item set ({summary.get('n_items', '?')} items, item set "
        f"{str(held)[:8]}); this run would replace it: pass --replace to overwrite it, or another --out"
    )


@contextlib.contextmanager
def exclusive_out(out: str | Path) -> Iterator[None]:
    """Hold ``OUT``'s run lock (the first process of a torchrun job only: its other processes share the run)."""
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    from filelock import FileLock, Timeout

    lock = FileLock(str(Path(out) / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LassbenchError(f"{out}: another `lassbench run` is writing into this folder; wait for it to finish "
                             "or pass another --out") from None
    try:
        yield
    finally:
        lock.release()
