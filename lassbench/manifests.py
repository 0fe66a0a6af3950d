"""The two record formats everything downstream reads: source manifests and benchmark-item manifests.

**Source manifest** (``<corpus_dir>/manifest.csv``): one row per audio clip that exists on disk, whatever the corpus
(downloaded AudioCaps, a plain folder, the embedded ``synth`` corpus).

=============  ===========================================================================================
column         meaning
=============  ===========================================================================================
source_id      unique id, also the file stem (AudioCaps: the 11-character YouTube id)
path           audio path, relative to the manifest's folder (absolute allowed)
captions       JSON list of human captions of the clip (may be empty for unlabelled folders)
labels         JSON list of class labels (display names; may be empty)
split          corpus split the clip belongs to (train / val / test / ""; a plain file name: ids are <split>-<n>)
sample_rate    int
num_samples    int
duration       seconds, float
sha1           hex digest of the file
=============  ===========================================================================================

Corpora may add columns (AudioCaps: ``youtube_id, audiocap_ids, start_time``; synth: ``attributes``).

**Item manifest** (``<built_dir>/manifest.csv`` written by ``build-dataset``): one row per benchmark item
(mixture, target, query). Audio lives at ``mixture/<id>.wav``, ``target/<id>.wav`` and
``interferers/<id>_<k>.wav`` beside the manifest.

==================  ======================================================================================
column              meaning
==================  ======================================================================================
id                  item id, also the file stem of its wavs (a plain file name: :mod:`lassbench.safe_names`)
split               train / val / test
target_id           source_id of the target clip; empty for an item without a reference (a real mixture):
                    ``evaluate`` scores it reference-free only (``--clap``)
interferer_ids      JSON list of source_ids mixed in as interferers (empty for AudioSep's rendered items: the
                    mixture is a published file, ``mixture_source`` names it; the interferer written is the residual)
query               the caption used as the text query
captions            JSON list of all captions of the target
labels              JSON list of the target's class labels
target_lufs         measured/assigned loudness of the target in the mixture (LUFS; NaN when not measured)
interferer_lufs     JSON list, one per interferer
snr_db              target-to-interference ratio of the item (protocol's unit: LU or energy dB); lassbench: measured
                    on the written files, ``L(target) - L(sum of interferers)``
gain                common gain applied to avoid clipping (1.0 when none)
sample_rate         int
num_samples         int
protocol            lassbench | lassnet | audiosep | dcase2024 | clapsep
seed                the build seed
condition           free tag of how the item was drawn (e.g. ``attribute_contrast``, ``different_class``)
mixture_sha1        checksum of mixture/<id>.wav
target_sha1         checksum of target/<id>.wav
==================  ======================================================================================

Protocol columns (present when the protocol writes them): ``index_row`` (the index file's line),
``negative_query`` (clapsep: the list's negative caption, what *not* to separate), ``mixture_source`` (audiosep
rendered: the published mixture file), ``contrast_attribute`` and ``planned_snr_db`` (lassbench: the SNR the draw asked
for, which two or more interferers miss by up to ~3 LU because loudness gating is not additive).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from lassbench.audio import atomic_path
from lassbench.errors import LassbenchError
from lassbench.safe_names import check_names

SOURCE_COLUMNS = ["source_id", "path", "captions", "labels", "split", "sample_rate", "num_samples", "duration", "sha1"]
ITEM_COLUMNS = [
    "id", "split", "target_id", "interferer_ids", "query", "captions", "labels", "target_lufs", "interferer_lufs",
    "snr_db", "gain", "sample_rate", "num_samples", "protocol", "seed", "condition", "mixture_sha1", "target_sha1",
]
JSON_LIST_COLUMNS = ("captions", "labels", "interferer_ids", "interferer_lufs", "audiocap_ids", "attributes")
_CSV_INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def encode_list(values: Iterable) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def decode_list(value) -> list:
    """A JSON list cell back to a list; empty/NaN cells are an empty list."""
    if isinstance(value, list):
        return value
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return []
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError) as exc:
        raise LassbenchError(f"expected a JSON list, got {value!r}") from exc
    return parsed if isinstance(parsed, list) else [parsed]


def read_manifest(path: str | Path, required: Iterable[str], *, kind: str = "manifest") -> pd.DataFrame:
    """Read a manifest CSV keeping every cell a string where it is one, checking ``required`` columns. ``kind``
    names the table in error lines (e.g. "reported-results table")."""
    path = Path(path)
    if not path.is_file():
        raise LassbenchError(f"{path}: {kind} not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise LassbenchError(f"{path}: cannot parse {kind} CSV ({exc})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise LassbenchError(f"{path}: {kind} lacks column(s) {', '.join(missing)}")
    for column in frame.columns:  # tolist() first: iterating an Arrow-backed column is ~10x slower
        frame[column] = [_uncell(v) for v in frame[column].tolist()]
    return frame


def _decoded(frame: pd.DataFrame, column: str, path: str | Path) -> list[list]:
    """The JSON lists of ``column``; a cell that is not one is an error naming the file, column and row."""
    decoded = []
    for row, value in enumerate(frame[column]):
        try:
            decoded.append(decode_list(value))
        except LassbenchError as exc:
            raise LassbenchError(f"{path}: column {column!r}, row {row + 2}: {exc}") from None
    return decoded


def read_source_manifest(path: str | Path) -> pd.DataFrame:
    """Source manifest with ``path`` made absolute and list columns decoded."""
    path = Path(path)
    frame = read_manifest(path, ["source_id", "path"])
    for column in ("captions", "labels"):
        frame[column] = _decoded(frame, column, path) if column in frame else [[] for _ in range(len(frame))]
    if "split" not in frame:
        frame["split"] = ""
    check_names((s for s in frame["split"] if s), "split", path)  # a split names the ids of the items built from it
    frame["path"] = [str(_resolve(path.parent, p)) for p in frame["path"]]
    duplicated = frame["source_id"][frame["source_id"].duplicated()].tolist()
    if duplicated:
        raise LassbenchError(f"{path}: duplicate source_id(s): {', '.join(duplicated[:5])}")
    return frame


def read_item_manifest(path: str | Path) -> pd.DataFrame:
    """Item manifest with list columns decoded and numeric columns typed."""
    frame = read_manifest(path, ["id", "query"])
    check_names(frame["id"], "item id", path)  # ids are file stems: mixture/<id>.wav, estimates/<id>.wav
    for column in ("captions", "labels", "interferer_ids", "interferer_lufs"):
        if column in frame:
            frame[column] = _decoded(frame, column, path)
    for column in ("target_lufs", "snr_db", "gain"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in ("sample_rate", "num_samples", "seed"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame


def first_label(value) -> str:
    """The first label of a ``labels`` cell (a list, or its JSON text; a bare string is one label); "" when none."""
    if isinstance(value, (list, tuple)):
        labels = list(value)
    else:
        try:
            labels = decode_list(value)
        except LassbenchError:
            labels = [value]
    return str(labels[0]) if labels else ""


def check_unique_ids(ids: Iterable, where: object, *, shown: int = 5) -> None:
    """Two rows with one id would score one estimate file twice and weigh it double in every mean."""
    counts = Counter(str(i) for i in ids)
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        more = f" and {len(repeated) - shown} more" if len(repeated) > shown else ""
        raise LassbenchError(f"{where}: duplicate item id(s): {', '.join(repeated[:shown])}{more}; every id names one "
                             "mixture file and must appear once")


def built_benchmark_dir(data: str | Path) -> Path:
    """The folder of a built benchmark, given it or its manifest.csv; one clear error otherwise."""
    path = Path(data)
    if path.is_file():
        path = path.parent
    if not (path / "manifest.csv").is_file():
        raise LassbenchError(f"{path}: not a built benchmark (no manifest.csv); build one with build-dataset")
    return path


def read_dataset_json(data_dir: str | Path) -> dict:
    """``dataset.json`` of a built benchmark (protocol, parameters, sources); empty when absent."""
    path = Path(data_dir) / "dataset.json"
    if not path.is_file():
        return {}
    try:
        dataset = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise LassbenchError(f"{path}: cannot read dataset.json ({exc})") from exc
    if isinstance(dataset, dict) and dataset.get("name"):
        check_names([dataset["name"]], "benchmark name", path)  # run writes OUT/<name>/<system>/
    return dataset


def locate_sources(data_dir: str | Path, dataset: dict) -> str | None:
    """The sources a benchmark was built from, from dataset.json's ``sources.origin``: an absolute path (lassbench
    >= 0.2 writes one), ``synth``, or an older relative path — tried from the current folder, then from the
    benchmark folder and its parent (where build-dataset usually ran). ``None`` when none of them exists."""
    origin = (dataset.get("sources") or {}).get("origin")
    if not origin or origin == "synth":
        return origin or None
    path, data_dir = Path(origin), Path(data_dir)
    candidates = [path] if path.is_absolute() else [path, data_dir / path, data_dir.resolve().parent / path]
    return next((str(c) for c in candidates if c.exists()), None)


def write_manifest_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically; list cells become JSON; text cells that a spreadsheet could run as a formula get a leading
    apostrophe (CSV injection): those starting with ``= + - @`` tab or CR that are not a number (ids such as
    YouTube's ``-abc_123XYZ`` included); numbers, negative ones too, are written as they are.
    :func:`read_manifest` removes the apostrophe again (every lassbench reader of these CSVs goes through it); a
    cell that really starts with an apostrophe before such a character gets a second one, so reads are exact."""
    out = frame.copy()
    for column in out.columns:
        out[column] = [_cell(v) for v in out[column]]
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    return Path(path)


def _cell(value):
    if isinstance(value, (list, tuple)):
        return encode_list(value)
    if isinstance(value, str) and (_formula_like(value) or _uncell(value) != value):
        return "'" + value
    return value


def _formula_like(text: str) -> bool:
    # a spreadsheet evaluates "+A1" and "-A1-B1-C1" as well as "=..." (and "-abc_123XYZ", a YouTube id, as a bad
    # formula): only text that reads as a number is safe after these characters
    return text.startswith(_CSV_INJECTION_PREFIXES) and not _looks_numeric(text)


def _uncell(value):
    """Undo :func:`_cell`'s apostrophe: one is removed before (more apostrophes and) a formula character."""
    if isinstance(value, str) and value[:1] == "'":
        rest = value[1:].lstrip("'")
        if rest[:1] and rest[0] in "=+-@\t\r":
            return value[1:]
    return value


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p
