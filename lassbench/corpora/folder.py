"""Index a plain folder of audio files as a source manifest, on the fly.

Ids are file stems, which in real corpora (Clotho: ``"09-07-14_2338_Foz, fisherman next to the river"``) contain
spaces, commas and dashes: all allowed. Rejected: names with a path separator, names that are ``.``/``..``, and
files (symlinks) that resolve outside the folder. Files that cannot be decoded are not fatal: they are returned as
skipped with the reason ``unreadable``.

Captions, when the folder has them, come from ``captions.csv`` beside the audio in Clotho's format
(``file_name,caption_1,...,caption_5``); labels from ``labels.csv`` (``file_name,labels`` with labels separated by
``;``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lassbench.audio import AUDIO_EXTENSIONS, audio_info, list_audio_files
from lassbench.errors import LassbenchError
from lassbench.safe_names import check_name

CAPTIONS_FILE = "captions.csv"
LABELS_FILE = "labels.csv"


def check_source_name(name: str, folder: Path) -> str:
    """The id of ``folder/name`` (its stem) after checking it is a safe, plain file name inside ``folder``."""
    check_name(name, "file name", folder)
    stem = check_name(Path(name).stem, "file id", folder)
    resolved = (folder / name).resolve()
    if not resolved.is_relative_to(folder.resolve()):
        raise LassbenchError(f"{folder}: {name!r} resolves outside the folder ({resolved})")
    return stem


def index_folder(folder: str | Path) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Source manifest of the audio files directly inside ``folder`` (absolute paths), and the skipped files as
    ``(name, reason)``. ``sha1`` is left empty: hashing a large corpus on every build would double the reading."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LassbenchError(f"{folder}: not a folder")
    captions = _read_captions(folder / CAPTIONS_FILE)
    labels = _read_labels(folder / LABELS_FILE)
    rows, skipped, seen = [], [], {}
    for path in list_audio_files(folder):
        source_id = check_source_name(path.name, folder)
        if source_id in seen:
            skipped.append((path.name, f"duplicate id {source_id!r} (also {seen[source_id]})"))
            continue
        try:
            info = audio_info(path)
        except LassbenchError:
            skipped.append((path.name, "unreadable"))
            continue
        seen[source_id] = path.name
        rows.append({
            "source_id": source_id, "path": str(path.resolve()),
            "captions": captions.get(path.name, captions.get(source_id, [])),
            "labels": labels.get(path.name, labels.get(source_id, [])), "split": "",
            "sample_rate": info.sample_rate, "num_samples": info.num_samples, "duration": info.duration, "sha1": "",
        })
    if not rows:
        exts = ", ".join(AUDIO_EXTENSIONS)
        raise LassbenchError(f"{folder}: no readable audio files ({exts}) directly inside the folder")
    return pd.DataFrame(rows), skipped


def uncaptioned_note(folder: str | Path) -> str | None:
    """The note ``build-dataset`` prints when clips of a plain folder have no caption: the lassbench protocol then
    queries them by their first label, else by their file name read as words — a query the user never wrote.
    ``None`` when every clip has a caption, or ``folder`` is not a plain folder of audio (a manifest, synth)."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / "manifest.csv").is_file():
        return None
    captions = _read_captions(folder / CAPTIONS_FILE)
    labels = _read_labels(folder / LABELS_FILE)
    files = list_audio_files(folder)
    for path in files:  # a file name that is refused is the error to show, not a note about captions
        check_source_name(path.name, folder)
    bare = [p for p in files if not (captions.get(p.name) or captions.get(p.stem))]
    if not bare:
        return None
    unlabelled = sum(1 for p in bare if not (labels.get(p.name) or labels.get(p.stem)))
    by_label = len(bare) - unlabelled
    return (f"note: {len(bare)} of {len(files)} clips in {folder} have no caption ({CAPTIONS_FILE}): "
            f"{by_label} are queried by their first label ({LABELS_FILE}), {unlabelled} by their file name read as "
            "words (see docs/data.md)")


def _read_captions(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        return {}
    frame = _read_csv(path, "file_name")
    caption_columns = [c for c in frame.columns if c.startswith("caption")]
    return {
        row["file_name"]: [row[c] for c in caption_columns if row[c].strip()] for _, row in frame.iterrows()
    }


def _read_labels(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        return {}
    frame = _read_csv(path, "file_name")
    if "labels" not in frame:
        raise LassbenchError(f"{path}: needs columns file_name,labels")
    return {row["file_name"]: [v.strip() for v in row["labels"].split(";") if v.strip()] for _, row in frame.iterrows()}


def _read_csv(path: Path, key: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise LassbenchError(f"{path}: cannot parse CSV ({exc})") from exc
    if key not in frame:
        raise LassbenchError(f"{path}: lacks column {key}")
    return frame
