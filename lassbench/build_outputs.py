"""The files that describe a finished build (``build-dataset``, :mod:`lassbench.build`).

    manifest.csv  manifest.parquet     one row per item (:data:`lassbench.manifests.ITEM_COLUMNS`, then any
                                       protocol columns in name order)
    sources.csv                        every clip the build measured: what it is, its length and loudness
    dataset.json                       name, protocol, parameters, sources, version, counts

They are written once every item of the plan exists, from the items' row files, so a sharded build and an unsharded
one write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd

from lassbench import __version__
from lassbench.audio import atomic_path, write_text_atomic
from lassbench.corpora import ResolvedSources
from lassbench.jsonio import jsonable
from lassbench.manifests import ITEM_COLUMNS, write_manifest_csv
from lassbench.protocols import Prepared, get_protocol

SOURCES_TABLE = "sources.csv"  # every measured clip: path, split, length, loudness (what training remixes from)


def write_outputs(out: Path, rows: list[dict], *, protocol: str, subtype: str, prepared: Prepared,
                  resolved: ResolvedSources, levels: dict[str, tuple[float, int, str | None]]) -> Path:
    """Write manifest.csv / .parquet, sources.csv and dataset.json for the item ``rows``; the manifest's path.
    ``levels``: source id -> (loudness, frames, reason unusable or None) of every measured clip."""
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in ITEM_COLUMNS]
    frame = frame.reindex(columns=ITEM_COLUMNS + sorted(extra)) if rows else pd.DataFrame(columns=ITEM_COLUMNS)
    write_manifest_csv(frame, out / "manifest.csv")
    _write_parquet(frame, out / "manifest.parquet")
    _write_sources_table(out / SOURCES_TABLE, resolved.frame, levels, prepared.sample_rate)
    counts = {split: int(n) for split, n in frame["split"].value_counts(sort=False).items()} if rows else {}
    description = {
        # the benchmark's name is its folder's (default: <sources>[-<protocol>]), so results and leaderboard rows
        # are filed under the name the user chose with --out (docs/reproduce.md: audiocaps-lassnet, dcase2024-val)
        "name": out.resolve().name,
        "protocol": protocol,
        "exact": prepared.exact,
        "parameters": jsonable({**prepared.parameters,  # the protocol's SI-SDR convention beside its aggregation
                                "si_sdr_convention": get_protocol(protocol).SI_SDR_CONVENTION}),
        "sources": {"origin": _absolute_origin(resolved.origin), "clips": int(len(resolved.frame)),
                    "digest": _frame_digest(resolved.frame), "table": SOURCES_TABLE},
        "lassbench_version": __version__,
        "subtype": subtype,
        "sample_rate": prepared.sample_rate,
        "counts": counts,
        "items": len(rows),
        "conditions": {k: int(v) for k, v in frame["condition"].value_counts().sort_index().items()} if rows else {},
    }
    write_text_atomic(out / "dataset.json", json.dumps(description, indent=2, sort_keys=True) + "\n")
    return out / "manifest.csv"


def _write_sources_table(path: Path, frame: pd.DataFrame, levels: dict, sample_rate: int) -> None:
    """``sources.csv``: every clip the build measured — what it is (id, absolute path, split, labels, captions,
    attributes, sha1), its length at the benchmark's rate (``frames``, ``duration`` in s), its integrated loudness
    (LUFS, empty when unusable) and the reason it is unusable (empty when usable). Training remixes from it."""
    measured = frame[frame["source_id"].isin(levels)]
    columns = [c for c in ("source_id", "path", "split", "captions", "labels", "attributes", "sha1") if c in measured]
    table = measured[columns].copy()
    table["path"] = [str(Path(p).resolve()) for p in table["path"]]
    table["sample_rate"] = sample_rate
    table["frames"] = [int(levels[sid][1]) for sid in table["source_id"]]
    table["duration"] = table["frames"] / sample_rate
    table["loudness"] = [levels[sid][0] if levels[sid][2] is None else math.nan for sid in table["source_id"]]
    table["reason"] = [levels[sid][2] or "" for sid in table["source_id"]]
    write_manifest_csv(table.reset_index(drop=True), path)


def _absolute_origin(origin: str) -> str:
    """Where the sources are, independent of the folder build-dataset ran in (``synth`` stays ``synth``)."""
    return origin if origin == "synth" else str(Path(origin).resolve())


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _frame_digest(frame: pd.DataFrame) -> str:
    """A digest of the source list (ids and checksums), so two builds can tell they used the same clips."""
    digest = hashlib.sha1()
    sha = frame["sha1"] if "sha1" in frame else [""] * len(frame)
    for source_id, checksum in zip(frame["source_id"], sha, strict=True):
        digest.update(f"{source_id}\t{checksum}\n".encode())
    return digest.hexdigest()
