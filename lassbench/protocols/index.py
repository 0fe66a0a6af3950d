"""Published index files: read one (a path or an http(s) URL), map the clip names it lists to sources, and prepare
one benchmark item per row. What the index protocols (lassnet, audiosep, dcase2024, clapsep) share; each protocol
module reads its own columns and mixing rule.
"""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.mixing import ItemSpec
from lassbench.protocols.base import BuildRequest, Plan, Prepared, item_id

_TIMEOUT_S = 30


def read_text(location: str) -> str:
    """The text of an index file given as a local path or an http(s) URL."""
    if location.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(location, timeout=_TIMEOUT_S) as response:
                return response.read().decode("utf-8-sig")
        except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
            raise LassbenchError(
                f"{location}: cannot download the index ({exc}); download it and pass the path"
            ) from exc
    path = Path(location)
    if not path.is_file():
        raise LassbenchError(f"{path}: index file not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LassbenchError(f"{path}: cannot read the index ({exc})") from exc


def read_rows(location: str, required: Iterable[str]) -> tuple[list[str], list[list[str]]]:
    """Header (stripped; LASS-Net's has ``"target_wav, noise_wav"``) and rows of a CSV index, checking columns.

    Rows are kept positional because AudioSep's Clotho list repeats a column name (``noise_wav1,noise_wav1``).
    """
    text = read_text(location)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise LassbenchError(f"{location}: index file is empty") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise LassbenchError(f"{location}: index lacks column(s) {', '.join(missing)} (header: {','.join(header)})")
    rows = [[cell.strip() for cell in row] for row in reader if any(cell.strip() for cell in row)]
    for number, row in enumerate(rows, start=2):
        if len(row) < len(header):
            raise LassbenchError(f"{location}: line {number} has {len(row)} fields, the header {len(header)}")
    return header, rows


class SourceLookup:
    """Resolve the clip names used by published lists to ``source_id`` s of a manifest.

    A name matches a source by its id, its ``youtube_id`` column (AudioCaps downloads) or its file stem, after
    removing an audio extension; AudioSep's ``Y<youtube id>.wav`` also matches the YouTube id without the ``Y``.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._ids: dict[str, str] = {}
        columns = [c for c in ("youtube_id",) if c in frame]
        for row in frame.itertuples(index=False):
            source_id = row.source_id
            for key in [Path(row.path).stem] + [getattr(row, c) for c in columns] + [source_id]:
                if key:
                    self._ids[str(key)] = source_id

    def find(self, name: str) -> str | None:
        stem = name.strip()
        if stem.lower().endswith((".wav", ".flac", ".mp3", ".ogg")):
            stem = stem.rsplit(".", 1)[0]
        for key in (stem, stem[1:] if stem.startswith("Y") else None):
            if key and key in self._ids:
                return self._ids[key]
        return None


def resolve_rows(location: str, names: list[list[str]], lookup: SourceLookup, allow_missing: bool
                 ) -> tuple[list[list[str] | None], list[tuple[str, str]]]:
    """Map each row's clip names to source ids; rows naming an absent clip fail the build (listing them) unless
    ``allow_missing``, in which case they become ``None`` and are reported as skipped."""
    resolved, missing = [], []
    for row in names:
        ids = [lookup.find(n) for n in row]
        absent = [n for n, i in zip(row, ids, strict=True) if i is None]
        if absent:
            missing.extend(absent)
            resolved.append(None)
        else:
            resolved.append(ids)
    unique = list(dict.fromkeys(missing))
    if unique and not allow_missing:
        shown = ", ".join(unique[:8]) + (f" and {len(unique) - 8} more" if len(unique) > 8 else "")
        raise LassbenchError(
            f"{location}: {len(unique)} clip(s) named by the index are not in the sources: {shown} "
            "(pass --allow-missing to skip those rows; they are listed in skipped.csv)"
        )
    return resolved, [(name, "missing") for name in unique]


def split_for(request: BuildRequest, protocol: str) -> str:
    """The one split an index-driven protocol builds (``test`` unless ``--splits`` names another)."""
    if not request.splits:
        return "test"
    if len(request.splits) > 1:
        raise LassbenchError(f"--protocol {protocol}: the index is one split; pass at most one --splits name")
    return request.splits[0]


def require(request: BuildRequest, protocol: str, what: str) -> str:
    """The ``--index`` location, which an index protocol cannot build without (``what``: the file it expects)."""
    if not request.index:
        raise LassbenchError(f"--protocol {protocol} needs --index PATH_OR_URL ({what})")
    return request.index


def _plan_items(split: str, rows_ids: list[list[str] | None], usable: set[str], excluded: frozenset[str],
                make_spec: Callable[[int, str, list[str]], ItemSpec | str]) -> Plan:
    """Items of an index, one per row (id ``<split>-<row>``, so ids follow rows even when some are skipped).

    ``make_spec(position, item_id, source_ids)`` returns the spec, or a reason string to skip the row.
    """
    specs, skipped = [], []
    for position, ids in enumerate(rows_ids):
        identifier = item_id(split, position)
        if ids is None:
            skipped.append((identifier, "item: names a clip missing from the sources"))
            continue
        reason = next((f"item: uses excluded clip {i}" for i in ids if i in excluded), None)
        reason = reason or next((f"item: uses unusable clip {i} (see its source row)" for i in ids
                                 if i not in usable), None)
        result = make_spec(position, identifier, ids) if reason is None else reason
        if isinstance(result, str):
            skipped.append((identifier, result))
        else:
            specs.append(result)
    return Plan(specs, skipped)


def prepare(frame: pd.DataFrame, request: BuildRequest, *, split: str,
            rows_ids: list[list[str] | None], make_spec: Callable[[int, str, list[str]], ItemSpec | str],
            skipped, location: str, rows: int, default_rate: int, parameters: dict,
            **fields) -> Prepared:
    """What an index protocol (lassnet, audiosep, dcase2024, clapsep) prepares: one item per usable index row, no
    loudness gate (the evaluators score every row). ``parameters`` are recorded beside the common ones (index, rows,
    split, sample rate); ``fields`` set other :class:`Prepared` fields (``num_samples``, ``pad_to``, ``exact``)."""

    def plan(usable: set[str]) -> Plan:
        return _plan_items(split, rows_ids, usable, request.exclude_ids, make_spec)

    sample_rate = request.sample_rate or default_rate
    return Prepared(
        sources=_sources_named(frame, rows_ids), plan=plan, sample_rate=sample_rate, skipped=skipped,
        parameters={"index": location, "rows": rows, "split": split, "splits": [split], "sample_rate": sample_rate,
                    **parameters},
        loudness_gate=False, **fields,
    )


def _sources_named(frame: pd.DataFrame, rows_ids: list[list[str] | None]) -> pd.DataFrame:
    names = {i for ids in rows_ids if ids for i in ids}
    return frame[frame["source_id"].isin(names)]


def parse_number(location: str, line: int, column: str, value: str) -> float:
    """A finite number from an index cell; anything else fails the build naming the file, line and column."""
    try:
        number = float(value)
    except ValueError:
        raise LassbenchError(f"{location}: line {line}: {column} {value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise LassbenchError(f"{location}: line {line}: {column} {value!r} is not a finite number")
    return number
