"""The shard format: WebDataset tar shards with an index, so that a million clips are a thousand files.

A shard folder (``BENCH/shards`` by default, written by ``lassbench shard BENCH``)::

    shard-000000.tar   <key>.flac + <key>.json per clip (plain POSIX tar: webdataset, wids and tar read it)
    shard-000000.csv   the shard's index: key, source_id, labels, captions, attributes, frames, loudness and the
                       byte offset and size of the .flac member in the tar
    index.json         sample rate, clip and shard counts, the class list, every shard's name, clips and bytes

``index.json`` is all that a training process reads at start-up; a worker reads the index of a shard when it first
draws from it, then only the bytes of the clips it mixes. Keys are sequence numbers (``000000042``): WebDataset
splits a member's name at its first dot, which a clip id may contain; the clip id is in the .json member.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench.audio import atomic_path, decode_audio_range, encode_flac, write_text_atomic
from lassbench.errors import LassbenchError
from lassbench.manifests import decode_list, read_manifest, write_manifest_csv

SHARDS_DIR = "shards"
INDEX_FILE = "index.json"
FORMAT = "webdataset-tar"
INDEX_COLUMNS = ("key", "source_id", "labels", "captions", "attributes", "frames", "loudness", "offset", "size")


@dataclass
class Clip:
    """One clip to write: its audio at the corpus rate, and what the index says about it."""

    source_id: str
    audio: np.ndarray | bytes  # float samples, or FLAC bytes already encoded
    frames: int
    loudness: float
    labels: list[str]
    captions: list[str]
    attributes: dict


def shard_name(number: int) -> str:
    return f"shard-{number:06d}"


def write_shard(path: Path, clips: Iterable[Clip], first_key: int, sample_rate: int, *,
                subtype: str = "PCM_16") -> pd.DataFrame:
    """Write ``clips`` as the tar ``path`` (atomically) and its index ``path.with_suffix('.csv')``; return the index.
    The index is written last, so a shard with an index is complete."""
    rows = []
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for number, clip in enumerate(clips, start=first_key):
            key = f"{number:09d}"
            flac = clip.audio if isinstance(clip.audio, bytes) else encode_flac(clip.audio, sample_rate,
                                                                               subtype=subtype)
            meta = {"source_id": clip.source_id, "labels": clip.labels, "captions": clip.captions,
                    "attributes": clip.attributes, "frames": clip.frames, "loudness": clip.loudness,
                    "sample_rate": sample_rate}
            offset = _add_member(tar, f"{key}.flac", flac)
            _add_member(tar, f"{key}.json", json.dumps(meta, ensure_ascii=False).encode())
            rows.append({"key": key, "source_id": clip.source_id, "labels": clip.labels, "captions": clip.captions,
                         "attributes": json.dumps(clip.attributes), "frames": clip.frames,
                         "loudness": clip.loudness, "offset": offset, "size": len(flac)})
    index = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    write_manifest_csv(index, path.with_suffix(".csv"))
    return index


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> int:
    """Append a member; return the offset of its data (after its one 512-byte USTAR header: names are short)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # mtime 0: identical inputs, identical shards
    header = tar.offset
    tar.addfile(info, io.BytesIO(data))
    return header + tarfile.BLOCKSIZE


def write_index(folder: Path, sample_rate: int, *, seed: int, clips_per_shard: int, origin: str) -> dict:
    """``index.json`` over the shards in ``folder`` (each with its .csv): counts, classes, tags, sizes, a digest."""
    names = sorted(p.stem for p in folder.glob("shard-*.csv"))
    shards, classes, tags, digest = [], set(), set(), hashlib.sha1()
    for name in names:
        table = read_shard_index(folder, name)
        tar_bytes = (folder / f"{name}.tar").stat().st_size
        shards.append({"name": name, "clips": len(table), "bytes": tar_bytes})
        classes.update(labels[0] for labels in table["labels"] if labels)
        tags.update(tag for labels in table["labels"] for tag in labels)
        digest.update(f"{name} {tar_bytes} {','.join(table['source_id'])}\n".encode())
    index = {"format": FORMAT, "sample_rate": sample_rate, "clips": sum(s["clips"] for s in shards),
             "clips_per_shard": clips_per_shard, "seed": seed, "origin": origin, "digest": digest.hexdigest()[:16],
             "classes": sorted(classes), "tags": sorted(tags), "shards": shards}
    write_text_atomic(folder / INDEX_FILE, json.dumps(index, indent=1) + "\n")
    return index


def read_index(folder: Path) -> dict:
    path = folder / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LassbenchError(f"{path}: not a shard index ({exc}): rerun lassbench shard") from exc
    if index.get("format") != FORMAT or not index.get("shards"):
        raise LassbenchError(f"{path}: not a {FORMAT} shard index, or no shards: rerun lassbench shard")
    return index


def check_shards(folder: Path, shards: list[dict]) -> None:
    """One stat per shard: a missing or truncated tar is refused before training starts, in one line."""
    for shard in shards:
        path = folder / f"{shard['name']}.tar"
        size = path.stat().st_size if path.is_file() else None
        if size != shard["bytes"]:
            found = "missing" if size is None else f"{size} bytes, the index says {shard['bytes']}"
            raise LassbenchError(f"{path}: shard truncated or replaced ({found}): rewrite it with lassbench shard")


def read_shard_index(folder: Path, name: str) -> pd.DataFrame:
    table = read_manifest(folder / f"{name}.csv", INDEX_COLUMNS)
    for column in ("frames", "offset", "size"):
        table[column] = table[column].astype(np.int64)
    table["loudness"] = table["loudness"].astype(float)
    for column in ("labels", "captions"):
        table[column] = [decode_list(v) for v in table[column].tolist()]
    return table


class ShardReader:
    """Reads clips of one shard by the byte ranges its index records (one open file, kept)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: io.BufferedReader | None = None

    def read(self, offset: int, size: int, start: int = 0, frames: int = -1) -> np.ndarray:
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open across reads, closed in close()
        self._file.seek(offset)
        data = self._file.read(size)
        if len(data) != size:
            raise LassbenchError(f"{self.path}: shard truncated (a clip ends past the end of the file): rewrite it "
                                 "with lassbench shard")
        return decode_audio_range(data, start, frames, name=f"{self.path}@{offset}")[0]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def has_shards(data_dir: Path) -> bool:
    return (data_dir / SHARDS_DIR / INDEX_FILE).is_file()

