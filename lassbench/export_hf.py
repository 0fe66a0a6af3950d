"""A built benchmark saved as a Hugging Face ``datasets.DatasetDict`` (``build-dataset --export hf OUTDIR``).

``OUT`` is the folder ``DatasetDict.save_to_disk`` writes, so ``datasets.load_from_disk(OUT)`` reads it::

    dataset_dict.json                      {"splits": [...]}: the manifest's splits, in its order (written last)
    <split>/data-<i>-of-<n>.arrow          Arrow IPC streams, contiguous shards of at most SHARD_BYTES of audio
    <split>/dataset_info.json              the features, the split's size
    <split>/state.json                     the shard list, the split's name and a fingerprint of its items

The shards are written here, a few rows at a time, straight from the built WAV files. ``datasets`` itself would
first write a cache file and then copy it through a memory map (``save_to_disk``), and every page of a mapped file
that is read counts in the process's memory until the map closes: memory would grow with the benchmark's size
(``perf/export_hf_memory.py``).

Audio columns are ``Audio(decode=False)`` holding the WAV bytes: ``datasets`` 5.x encodes and decodes audio only
through ``torchcodec``, which does not load beside the CPU torch build, so rows are written as the plain
``{bytes, path}`` struct that is ``Audio``'s storage; read ``row["mixture"]["bytes"]`` with soundfile.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from lassbench.audio import atomic_path, write_text_atomic
from lassbench.errors import LassbenchError
from lassbench.manifests import read_item_manifest

AUDIO_COLUMNS = ("mixture", "target")
SHARD_BYTES = 500 * 10**6  # save_to_disk's default max_shard_size ("500MB")
BATCH_ROWS = 16  # rows held in memory before they are written
BATCH_BYTES = 64 << 20  # ... or fewer, when the items are long


def export_hf(built: str | Path, out: str | Path, *, progress: bool = False) -> Path:
    """Save the built benchmark in ``built`` as a ``datasets.DatasetDict`` (one dataset per split) in ``out``;
    memory stays flat whatever the benchmark's size. See the module docstring."""
    from tqdm import tqdm

    built, out = Path(built), Path(out)
    frame = read_item_manifest(built / "manifest.csv")
    features = hf_features()
    parts = [(str(split), part) for split, part in frame.groupby("split", sort=False)]
    sizes = {split: _audio_sizes(built, part) for split, part in parts}  # every file is there before any is written
    with tqdm(total=len(frame), desc="exporting (hf)", unit="it", disable=not progress, leave=False) as bar:
        for split, part in parts:
            _write_split(built, out / split, split, part, sizes[split], features, bar.update)
    splits = [split for split, _ in parts]
    write_text_atomic(out / "dataset_dict.json", json.dumps({"splits": splits}))
    return out


def hf_features():
    """The exported columns: the item's text fields and its mixture and target WAVs."""
    import datasets

    text, texts = datasets.Value("string"), datasets.List(datasets.Value("string"))
    wav = datasets.Audio(decode=False)
    return datasets.Features({
        "id": text, "query": text, "captions": texts, "labels": texts, "target_id": text, "interferer_ids": texts,
        "snr_db": datasets.Value("float64"), "condition": text, "sample_rate": datasets.Value("int32"),
        "mixture": wav, "target": wav,
    })


def _write_split(built: Path, folder: Path, split: str, part: pd.DataFrame, sizes: list[int], features,
                 done) -> None:
    import datasets

    items = text_fields(part)
    bounds = shard_bounds(len(items), sum(sizes))
    names = [f"data-{index:05d}-of-{len(bounds):05d}.arrow" for index in range(len(bounds))]
    for name, (start, stop) in zip(names, bounds, strict=True):
        _write_shard(folder / name, built, items[start:stop], sizes[start:stop], features, done)
    arrow_bytes = sum((folder / name).stat().st_size for name in names)
    info = datasets.DatasetInfo(features=features, dataset_size=arrow_bytes,
                                splits=[{"name": split, "num_bytes": arrow_bytes, "num_examples": len(items)}])
    info.write_to_directory(str(folder))
    state = {"_data_files": [{"filename": name} for name in names], "_fingerprint": _fingerprint(part, items),
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
             "_split": split}
    write_text_atomic(folder / "state.json", json.dumps(state, indent=2, sort_keys=True))


def shard_bounds(rows: int, audio_bytes: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` row ranges, as many as keep each under ``SHARD_BYTES`` on average and sized as
    ``Dataset.shard(contiguous=True)`` sizes them (the first ``rows % n`` one row longer)."""
    count = max(1, min(rows, audio_bytes // SHARD_BYTES + 1))
    size, longer = divmod(rows, count)
    starts = [index * size + min(index, longer) for index in range(count + 1)]
    return list(zip(starts[:-1], starts[1:], strict=True))


def _write_shard(path: Path, built: Path, items: list[dict], sizes: list[int], features, done) -> None:
    """One Arrow stream, written batch by batch: a batch's audio is read just before it is written."""
    import pyarrow as pa

    schema = features.arrow_schema  # carries the features as datasets' "huggingface" metadata
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in _batches(items, sizes):
            rows = [{**item, **{column: {"bytes": _wav(built, column, item["id"]).read_bytes(),
                                         "path": f"{item['id']}.wav"} for column in AUDIO_COLUMNS}}
                    for item in batch]
            writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
            done(len(batch))


def _batches(items: list[dict], sizes: list[int]) -> Iterator[list[dict]]:
    """``items`` in order, in batches of at most ``BATCH_ROWS`` rows and (beyond one row) ``BATCH_BYTES`` of audio."""
    batch, held = [], 0
    for item, size in zip(items, sizes, strict=True):
        if batch and (len(batch) == BATCH_ROWS or held + size > BATCH_BYTES):
            yield batch
            batch, held = [], 0
        batch.append(item)
        held += size
    if batch:
        yield batch


def text_fields(part: pd.DataFrame) -> list[dict]:
    """The text columns of a split's items (small: no audio)."""
    return [{
        "id": str(row["id"]), "query": str(row["query"]), "captions": [str(c) for c in row["captions"]],
        "labels": [str(c) for c in row["labels"]], "target_id": str(row["target_id"]),
        "interferer_ids": [str(c) for c in row["interferer_ids"]], "snr_db": float(row["snr_db"]),
        "condition": str(row["condition"]), "sample_rate": int(row["sample_rate"]),
    } for row in part.to_dict("records")]


def _fingerprint(part: pd.DataFrame, items: list[dict]) -> str:
    """16 hex digits naming the split's content (its rows and the checksums of their WAVs): ``datasets`` keys the
    caches of later transforms on it."""
    checksums = {column: [str(v) for v in part[column]] for column in ("mixture_sha1", "target_sha1") if column in part}
    return hashlib.sha256(json.dumps([items, checksums], sort_keys=True).encode()).hexdigest()[:16]


def _audio_sizes(built: Path, part: pd.DataFrame) -> list[int]:
    """Bytes of each item's exported WAVs."""
    return [sum(_size(_wav(built, column, str(item_id))) for column in AUDIO_COLUMNS) for item_id in part["id"]]


def _wav(built: Path, column: str, item_id: str) -> Path:
    return built / column / f"{item_id}.wav"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise LassbenchError(f"{path}: cannot export the benchmark ({exc.strerror}); rebuild it") from exc
