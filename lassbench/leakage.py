"""Leakage guard: which clips of an evaluation build a model may have heard in training.

Most LASS-Net test targets are AudioCaps *train* clips (195 of its 200 targets; docs/protocols.md), so a model
trained on AudioCaps train has seen them. :func:`find_leaks` reports every target or interferer of a build whose
id appears in a training list; ``build-dataset --train-manifest M`` writes them to ``leakage.csv`` and, with
``--strict``, refuses to build. ``--exclude-ids`` removes such clips up front, matching names the same way
(source id, YouTube id, with or without AudioSet's ``Y`` prefix and an audio extension).

An id list is read from a plain text file (one id per line; LASS-Net's ``training_indexes.csv`` is one) or a CSV
manifest: a source manifest contributes ``source_id`` and ``youtube_id``, an item manifest ``target_id`` and
``interferer_ids``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lassbench.errors import LassbenchError
from lassbench.manifests import decode_list, read_manifest
from lassbench.mixing import ItemSpec

_ID_COLUMNS = ("source_id", "youtube_id", "target_id", "interferer_ids")


@dataclass(frozen=True)
class Leak:
    item_id: str
    role: str  # "target" or "interferer"
    source_id: str
    matched: str  # the id found in the training list (the source id or one of its aliases)


def normalize_id(name: str) -> str:
    """Compare ids without an audio extension (AudioSep names clips ``Y<id>.wav``)."""
    name = name.strip()
    if name.lower().endswith((".wav", ".flac", ".mp3", ".ogg")):
        name = name.rsplit(".", 1)[0]
    return name


def read_id_list(path: str | Path) -> set[str]:
    """Ids from a text list or a manifest CSV (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise LassbenchError(f"{path}: id list not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LassbenchError(f"{path}: cannot read the id list ({exc})") from exc
    lines = text.splitlines()
    header = [h.strip() for h in next(csv.reader([lines[0]]))] if lines else []
    columns = [c for c in _ID_COLUMNS if c in header]
    if not columns:
        return {normalize_id(line) for line in lines if line.strip() and not line.lstrip().startswith("#")}
    frame = read_manifest(path, [])  # undoes the CSV-injection quoting of ids starting with '-'
    ids: set[str] = set()
    for column in columns:
        for value in frame[column]:
            values = decode_list(value) if column == "interferer_ids" else [value]
            ids.update(normalize_id(str(v)) for v in values if str(v).strip())
    return ids


def find_leaks(specs: Iterable[ItemSpec], train_ids: set[str], aliases: Mapping[str, Iterable[str]] | None = None
               ) -> list[Leak]:
    """Every (item, role, clip) whose clip id — or an alias of it (e.g. its YouTube id) — is in ``train_ids``."""
    aliases = aliases or {}
    leaks = []
    for spec in specs:
        for role, source_id in [("target", spec.target_id)] + [("interferer", i) for i in spec.interferer_ids]:
            matched = listed_as(source_id, aliases.get(source_id, ()), train_ids)
            if matched is not None:
                leaks.append(Leak(spec.item_id, role, source_id, matched))
    return leaks


def listed_as(source_id: str, aliases: Iterable[str], ids: set[str]) -> str | None:
    """The name under which a clip appears in ``ids`` (its id, an alias, or either without AudioSet's ``Y``)."""
    for name in (source_id, *aliases):
        key = normalize_id(str(name))
        # YouTube ids are 11 characters, so adding or dropping the Y cannot make two real ids collide
        if key in ids or (key.startswith("Y") and key[1:] in ids) or f"Y{key}" in ids:
            return key
    return None


def source_aliases(frame) -> dict[str, list[str]]:
    """Other names of each clip of a source manifest (its YouTube id) that id lists may use."""
    if "youtube_id" not in frame:
        return {}
    return {sid: [yid] for sid, yid in zip(frame["source_id"], frame["youtube_id"], strict=True) if yid}


def listed_sources(frame, ids: set[str]) -> frozenset[str]:
    """The ``source_id`` of every clip of a source manifest that ``ids`` names, under any of its names: what
    ``--exclude-ids`` removes, matched exactly as :func:`find_leaks` matches."""
    aliases = source_aliases(frame)
    return frozenset(sid for sid in frame["source_id"] if listed_as(sid, aliases.get(sid, ()), ids) is not None)


def leak_summary(leaks: list[Leak], total_items: int) -> str:
    items = len({leak.item_id for leak in leaks})
    targets = len({leak.source_id for leak in leaks if leak.role == "target"})
    interferers = len({leak.source_id for leak in leaks if leak.role == "interferer"})
    return (f"leakage: {items} of {total_items} items use clips from the training list "
            f"({targets} distinct targets, {interferers} distinct interferers)")
