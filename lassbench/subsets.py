"""Which items of a built benchmark a result scores: a split, ``--ids``, ``--limit``, or a sub-manifest saved beside
the benchmark's ``manifest.csv``; and the ``subset`` record summary.json and run.json carry when that is not the
whole split (the leaderboard shows it and lists such rows unranked).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.manifests import check_unique_ids, read_item_manifest, read_manifest

_MAX_LISTED = 5


def manifest_items(manifest: Path, split: str | None, ids: str | Path | None,
                   limit: int | None) -> tuple[pd.DataFrame, dict | None]:
    """The manifest's items to score (``split``, then ``--ids`` / ``--limit``), and their subset record."""
    frame = _select_split(read_item_manifest(manifest), split, manifest)
    if frame.empty:
        raise LassbenchError(f"{manifest}: manifest has no items")
    check_unique_ids(frame["id"], manifest)
    return _select_subset(frame, manifest, split, ids, limit)


def subset_record(n_items: int, of: int, split: str | None, selection: str, *, first: bool = False) -> dict:
    """``summary.json`` / ``run.json`` ``subset`` of a result over part of its split: what the leaderboard shows."""
    label = f"{'first ' if first else ''}{n_items} of {of} {split + ' ' if split else ''}items"
    return {"n_items": n_items, "of": of, "split": split or "", "selection": selection, "label": label}


def _select_subset(frame: pd.DataFrame, manifest: Path, split: str | None, ids: str | Path | None,
                   limit: int | None) -> tuple[pd.DataFrame, dict | None]:
    """The items ``--ids`` / ``--limit`` keep (manifest order), and the subset record when they are not all."""
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise LassbenchError(f"--limit {limit}: give a positive number of items (leave it out for all)")
    of, selection = _whole_split_size(frame, manifest, split), "sub-manifest " + manifest.name
    if ids is not None:
        wanted = read_id_list(ids)
        unknown = sorted(set(wanted) - set(frame["id"].astype(str)))
        if unknown:
            raise LassbenchError(f"{ids}: {len(unknown)} id(s) not in {manifest}"
                                 f"{' split ' + split if split else ''}: {', '.join(unknown[:_MAX_LISTED])}")
        frame, selection = frame[frame["id"].astype(str).isin(set(wanted))].reset_index(drop=True), f"--ids {ids}"
    if limit is not None and limit < len(frame):
        frame, selection = frame.iloc[:limit].reset_index(drop=True), f"--limit {limit}"
    if len(frame) >= of:
        return frame, None
    return frame, subset_record(len(frame), of, split, selection, first=selection.startswith("--limit"))


def _whole_split_size(frame: pd.DataFrame, manifest: Path, split: str | None) -> int:
    """Items of the benchmark's split: of ``manifest.csv`` beside a sub-manifest, else of ``frame`` itself."""
    whole = manifest.parent / "manifest.csv"
    if manifest.name == "manifest.csv" or not whole.is_file():
        return len(frame)
    try:
        full = read_item_manifest(whole)
    except LassbenchError:
        return len(frame)
    full = full[full["split"] == split] if split is not None and "split" in full else full
    return max(len(full), len(frame))


def read_id_list(path: str | Path) -> list[str]:
    """Item ids from a file: a CSV with an ``id`` column (a sub-manifest), else one id per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LassbenchError(f"{path}: cannot read the id list ({exc})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and "id" in [c.strip() for c in lines[0].split(",")]:
        lines = [str(i) for i in read_manifest(path, ["id"])["id"]]
    if not lines:
        raise LassbenchError(f"{path}: no item id in the file")
    return lines


def _select_split(frame: pd.DataFrame, split: str | None, manifest: Path) -> pd.DataFrame:
    if split is None:
        return frame
    present = sorted({str(v) for v in frame["split"]}) if "split" in frame else []
    if split not in present:
        have = ", ".join(present) if present else "none: the manifest has no split column"
        raise LassbenchError(f"--split {split}: {manifest} has no item of that split (splits: {have})")
    return frame[frame["split"] == split].reset_index(drop=True)
