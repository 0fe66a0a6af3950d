"""AudioSet class labels for AudioCaps clips (AudioCaps clips are AudioSet segments).

Two kinds of file are joined:

- segment files (``balanced_train_segments.csv``, ``unbalanced_train_segments.csv``, ``eval_segments.csv``):
  ``#`` comment lines, then ``YTID, start_seconds, end_seconds, positive_labels`` with the labels a quoted,
  comma-separated list of ontology ids (``"/m/09x0r,/m/05zppz"``);
- the ontology table ``class_labels_indices.csv`` (``index,mid,display_name``) that names those ids.

Both are passed the same way (``--audioset-labels FILE`` repeated); the kind is told from the header.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lassbench.errors import LassbenchError

# AudioCaps start_time and AudioSet start_seconds name the same segment; allow float formatting noise.
_START_TOLERANCE_S = 0.5


@dataclass
class AudiosetLabels:
    """Display-name labels by YouTube id (one id may have several segments, keyed by start time)."""

    segments: dict[str, list[tuple[float, list[str]]]] = field(default_factory=dict)

    def labels_for(self, youtube_id: str, start_time: float) -> list[str]:
        """Labels of the segment starting at ``start_time``; the only segment of the id if starts disagree."""
        candidates = self.segments.get(youtube_id, [])
        for start, labels in candidates:
            if abs(start - start_time) <= _START_TOLERANCE_S:
                return list(labels)
        # AudioSet has one segment per video almost always; its labels describe the clip even if offsets differ.
        return list(candidates[0][1]) if len(candidates) == 1 else []


def load_audioset_labels(paths: Iterable[str | Path]) -> AudiosetLabels:
    """Read segment files and the ontology table (in any order) into display-name labels."""
    names: dict[str, str] = {}
    raw_segments: list[tuple[Path, str, float, list[str]]] = []
    for path in map(Path, paths):
        rows = _read_rows(path)
        header = [cell.strip().lstrip("#").strip() for cell in rows[0]] if rows else []
        if header[:3] == ["index", "mid", "display_name"]:
            names.update(_ontology_names(path, rows[1:]))
        else:
            raw_segments.extend((path, *segment) for segment in _segments(path, rows))
    if raw_segments and not names:
        raise LassbenchError(
            "--audioset-labels: segment files name classes by ontology id; also pass the ontology's "
            "class_labels_indices.csv (columns index,mid,display_name)"
        )
    result = AudiosetLabels()
    for path, youtube_id, start, mids in raw_segments:
        unknown = [m for m in mids if m not in names]
        if unknown:
            raise LassbenchError(f"{path}: label id {unknown[0]!r} of {youtube_id} is not in class_labels_indices.csv")
        result.segments.setdefault(youtube_id, []).append((start, [names[m] for m in mids]))
    return result


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [row for row in csv.reader(fh, skipinitialspace=True) if row]
    except OSError as exc:
        raise LassbenchError(f"{path}: cannot read AudioSet label file ({exc.strerror})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LassbenchError(f"{path}: not a CSV label file ({exc})") from exc


def _ontology_names(path: Path, rows: list[list[str]]) -> dict[str, str]:
    names = {}
    for line, row in enumerate(rows, start=2):
        if len(row) < 3:
            raise LassbenchError(f"{path}: line {line}: expected index,mid,display_name")
        names[row[1].strip()] = row[2].strip()
    return names


def _segments(path: Path, rows: list[list[str]]) -> Iterable[tuple[str, float, list[str]]]:
    for line, row in enumerate(rows, start=1):
        if row[0].lstrip().startswith("#") or row[0].strip() == "YTID":
            continue  # the header of segment files is a comment line; some copies drop the '#'
        if len(row) < 4:
            raise LassbenchError(f"{path}: line {line}: expected YTID, start_seconds, end_seconds, positive_labels")
        try:
            start = float(row[1])
        except ValueError as exc:
            raise LassbenchError(f"{path}: line {line}: start_seconds {row[1]!r} is not a number") from exc
        # The quoted label list may have been split by a reader that ignores quotes: rejoin the tail.
        mids = [m.strip().strip('"') for m in ",".join(row[3:]).split(",") if m.strip().strip('"')]
        yield row[0].strip(), start, mids
