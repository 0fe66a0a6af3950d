"""AudioCaps's metadata: the official caption CSVs (``audiocap_id,youtube_id,start_time,caption``) of cdjkim/audiocaps,
pinned by commit and SHA-256, fetched once into the cache and read into one :class:`AudiocapsClip` per YouTube id."""

from __future__ import annotations

import csv
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lassbench.audio import atomic_path, sha256_file
from lassbench.errors import LassbenchError
from lassbench.paths import cache_dir

SPLITS = ("train", "val", "test")
# the official CSVs at one commit of cdjkim/audiocaps (2025-02-25), and their SHA-256: a moved branch cannot change
# which clips a download means; another file is used only when asked for (METADATA_URL_ENV / METADATA_SHA256_ENV)
METADATA_COMMIT = "d004db3ea1b01cf4fd0347dd8d27db90cadc8809"
METADATA_URL_TEMPLATE = f"https://raw.githubusercontent.com/cdjkim/audiocaps/{METADATA_COMMIT}/dataset/{{split}}.csv"
METADATA_SHA256 = {
    "train": "c0c5223db682b3bf724ce7e7ce58d5b36929f74572e8526a7211f92d2eef7c8e",
    "val": "dab1c96641d5f3053ddb99dca3949450da9a75737bda53e11cc0aa8b102be0c3",
    "test": "b91c4b7ded2f4f6e7db5b9c4983dc1e1dca3d556f505b61e3fd65cac7e1c638a",
}
METADATA_URL_ENV = "LASSBENCH_AUDIOCAPS_METADATA_URL"  # another URL template ({split}); unchecked unless...
METADATA_SHA256_ENV = "LASSBENCH_AUDIOCAPS_METADATA_SHA256"  # ...this gives the SHA-256 it must have
METADATA_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")


@dataclass(frozen=True)
class AudiocapsClip:
    """One clip of a split with all of its captions (val/test have five per clip)."""

    youtube_id: str
    start_time: float
    audiocap_ids: tuple[str, ...]
    captions: tuple[str, ...]




def read_audiocaps_metadata(path: str | Path) -> list[AudiocapsClip]:
    """Parse an AudioCaps CSV and group caption rows by YouTube id, in first-appearance order."""
    path = Path(path)
    rows = _read_metadata_rows(path)
    grouped: dict[str, dict] = {}
    for line, row in enumerate(rows, start=2):
        youtube_id = row["youtube_id"].strip()
        start = _parse_start_time(path, line, row["start_time"])
        clip = grouped.setdefault(youtube_id, {"start": start, "ids": [], "captions": []})
        if abs(clip["start"] - start) > 1e-6:
            raise LassbenchError(
                f"{path}: line {line}: {youtube_id} has start_time {start:g} but {clip['start']:g} earlier"
            )
        clip["ids"].append(row["audiocap_id"].strip())
        clip["captions"].append(row["caption"].strip())
    return [AudiocapsClip(key, g["start"], tuple(g["ids"]), tuple(g["captions"])) for key, g in grouped.items()]


def _read_metadata_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in METADATA_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise LassbenchError(
                    f"{path}: AudioCaps metadata lacks column(s) {', '.join(missing)} "
                    f"(expected {','.join(METADATA_COLUMNS)})"
                )
            return [{k: (v or "") for k, v in row.items() if k} for row in reader]
    except OSError as exc:
        raise LassbenchError(f"{path}: cannot read AudioCaps metadata ({exc.strerror})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LassbenchError(f"{path}: not a CSV file ({exc})") from exc


def _parse_start_time(path: Path, line: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise LassbenchError(f"{path}: line {line}: start_time {text!r} is not a non-negative number of seconds")
    return value


def fetch_audiocaps_metadata(split: str, url_template: str | None = None, timeout: float = 30.0, *,
                             sha256: str | None = None) -> Path:
    """The official CSV of ``split`` at the pinned commit, downloaded once into ``cache_dir()/audiocaps/``, checked
    against its pinned SHA-256 and validated. ``url_template`` (else ``$LASSBENCH_AUDIOCAPS_METADATA_URL``) fetches
    another file, checked against ``sha256`` (else ``$LASSBENCH_AUDIOCAPS_METADATA_SHA256``) when one is given."""
    check_split(split)
    url = (url_template or os.environ.get(METADATA_URL_ENV) or METADATA_URL_TEMPLATE).replace("{split}", split)
    expected = (sha256 or os.environ.get(METADATA_SHA256_ENV)
                or (METADATA_SHA256[split] if url == METADATA_URL_TEMPLATE.replace("{split}", split) else None))
    cached = cache_dir() / "audiocaps" / f"{split}-{hashlib.sha256(url.encode()).hexdigest()[:12]}.csv"
    if cached.is_file() and (expected is None or sha256_file(cached) == expected.lower()):
        return cached
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise LassbenchError(
            f"cannot fetch AudioCaps {split} metadata from {url} ({reason}); offline, pass --metadata CSV "
            f"(columns {','.join(METADATA_COLUMNS)})"
        ) from exc
    digest = hashlib.sha256(payload).hexdigest()
    if expected is not None and digest != expected.lower():
        raise LassbenchError(
            f"AudioCaps {split} metadata from {url}: SHA-256 {digest} differs from the expected {expected.lower()}; "
            f"refusing it (another file: set {METADATA_SHA256_ENV}, or pass --metadata CSV)")
    with atomic_path(cached) as tmp:
        tmp.write_bytes(payload)
        read_audiocaps_metadata(tmp)  # never cache a page that is not the metadata
    return cached


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise LassbenchError(f"unknown AudioCaps split {split!r} (choose {', '.join(SPLITS)})")
