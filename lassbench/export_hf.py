"""A built benchmark saved as a Hugging Face ``datasets.DatasetDict`` (``build-dataset --export hf OUTDIR``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

HF_WRITER_BATCH = 16  # rows datasets holds before writing them (its default, 1,000, would hold 1,000 items' audio)


def export_hf(built: str | Path, out: str | Path) -> Path:
    """Save a built benchmark as a ``datasets.DatasetDict`` (one dataset per split) at ``out``, streaming: each
    item's WAV bytes are read when ``datasets`` writes that row, so memory stays flat whatever the size
    (``benchmarks/export_hf.py``).

    Audio columns are ``Audio(decode=False)`` holding the WAV bytes: ``datasets`` 5.x encodes and decodes audio only
    through ``torchcodec``, which does not load beside the CPU torch build, so rows are written as the plain
    ``{bytes, path}`` struct that is ``Audio``'s storage and the column is then declared ``Audio`` (no rewrite);
    read ``row["mixture"]["bytes"]`` with soundfile.
    """
    import datasets

    from lassbench.manifests import read_item_manifest

    built, out = Path(built), Path(out)
    frame = read_item_manifest(built / "manifest.csv")
    text, texts = datasets.Value("string"), datasets.List(datasets.Value("string"))
    wav = {"bytes": datasets.Value("binary"), "path": text}
    features = datasets.Features({
        "id": text, "query": text, "captions": texts, "labels": texts, "target_id": text, "interferer_ids": texts,
        "snr_db": datasets.Value("float64"), "condition": text, "sample_rate": datasets.Value("int32"),
        "mixture": wav, "target": wav,
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-hf-", dir=out.parent) as cache:  # never reused: a fresh cache
        splits = {}
        for split, part in frame.groupby("split", sort=False):
            rows = datasets.Dataset.from_generator(
                _hf_rows, features=features, cache_dir=cache, writer_batch_size=HF_WRITER_BATCH,
                gen_kwargs={"built": str(built), "items": _hf_fields(part)},
            )
            for kind in ("mixture", "target"):
                rows = rows.cast_column(kind, datasets.Audio(decode=False))
            splits[str(split)] = rows
        datasets.DatasetDict(splits).save_to_disk(str(out))
    return out


def _hf_fields(part: pd.DataFrame) -> list[dict]:
    """The text columns of a split's items (small: no audio)."""
    return [{
        "id": str(row["id"]), "query": str(row["query"]), "captions": [str(c) for c in row["captions"]],
        "labels": [str(c) for c in row["labels"]], "target_id": str(row["target_id"]),
        "interferer_ids": [str(c) for c in row["interferer_ids"]], "snr_db": float(row["snr_db"]),
        "condition": str(row["condition"]), "sample_rate": int(row["sample_rate"]),
    } for row in part.to_dict("records")]


def _hf_rows(built: str, items: list[dict]):
    for item in items:
        yield {**item, **{kind: {"bytes": (Path(built) / kind / f"{item['id']}.wav").read_bytes(),
                                 "path": f"{item['id']}.wav"} for kind in ("mixture", "target")}}
