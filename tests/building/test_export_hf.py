"""`build-dataset --export hf`: a built benchmark as a `datasets.DatasetDict`, written shard by shard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pytest

import lassbench.export_hf as export_module
from lassbench.build import BuildConfig, build_dataset
from lassbench.corpora.synth import synth_corpus
from lassbench.errors import LassbenchError
from lassbench.export_hf import export_hf, hf_features, shard_bounds, text_fields
from lassbench.manifests import read_item_manifest


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    sources = synth_corpus(root / "c", duration=2.0, clips={"val": 12, "test": 12})
    return build_dataset(BuildConfig(out=root / "built", sources=str(sources), num_items=5, progress=False)).out


def _saved_by_datasets(built: Path, out: Path) -> None:
    """The same rows saved by datasets itself (``Dataset.from_list`` + ``save_to_disk``): the reference layout."""
    manifest = read_item_manifest(built / "manifest.csv")
    wav = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
    plain = datasets.Features({**hf_features(), "mixture": wav, "target": wav})
    splits = {}
    for split, part in manifest.groupby("split", sort=False):
        rows = [{**item, **{kind: {"bytes": (built / kind / f"{item['id']}.wav").read_bytes(),
                                   "path": f"{item['id']}.wav"} for kind in ("mixture", "target")}}
                for item in text_fields(part)]
        dataset = datasets.Dataset.from_list(rows, features=plain)
        for kind in ("mixture", "target"):
            dataset = dataset.cast_column(kind, datasets.Audio(decode=False))
        splits[split] = dataset
    datasets.DatasetDict(splits).save_to_disk(str(out))


def test_export_hf_saves_a_dataset_dict_with_audio_bytes(tmp_path, built):
    export_hf(built, tmp_path / "hf")
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert set(loaded) == {"val", "test"} and len(loaded["val"]) == 5
    assert loaded["val"].features["mixture"] == datasets.Audio(decode=False)
    row = loaded["val"][0]
    assert row["mixture"]["bytes"] == (built / "mixture" / f"{row['id']}.wav").read_bytes()
    assert row["query"]


def test_the_export_loads_as_what_datasets_save_to_disk_writes(tmp_path, built):
    export_hf(built, tmp_path / "ours")
    _saved_by_datasets(built, tmp_path / "theirs")
    ours, theirs = datasets.load_from_disk(str(tmp_path / "ours")), datasets.load_from_disk(str(tmp_path / "theirs"))
    assert list(ours) == list(theirs) == ["val", "test"]  # the manifest's order
    for split in ours:
        assert ours[split].features == theirs[split].features
        assert ours[split].to_list() == theirs[split].to_list()
        assert ours[split].split == split and ours[split].info.splits[split].num_examples == 5


def test_a_large_benchmark_is_written_in_shards_and_small_batches_in_order(tmp_path, built, monkeypatch):
    wav_bytes = (built / "mixture" / "val-000000.wav").stat().st_size
    monkeypatch.setattr(export_module, "SHARD_BYTES", 4 * wav_bytes)  # 5 items of 2 WAVs: 3 shards
    monkeypatch.setattr(export_module, "BATCH_BYTES", 3 * wav_bytes)  # one item per batch (two never fit)
    export_hf(built, tmp_path / "hf")
    state = json.loads((tmp_path / "hf" / "val" / "state.json").read_text())
    shards = [tmp_path / "hf" / "val" / entry["filename"] for entry in state["_data_files"]]
    assert [p.name for p in shards] == [f"data-0000{i}-of-00003.arrow" for i in range(3)]
    batches = [batch for path in shards for batch in pa.ipc.open_stream(pa.memory_map(str(path)))]
    assert [len(batch) for batch in batches] == [1] * 5
    manifest = read_item_manifest(built / "manifest.csv")
    expected = list(manifest.loc[manifest["split"] == "val", "id"])
    assert datasets.load_from_disk(str(tmp_path / "hf"))["val"]["id"] == expected


@pytest.mark.parametrize("rows, count", [(5, 3), (7, 2), (2, 2), (16, 5)])
def test_shards_split_rows_as_datasets_contiguous_shards_do(rows, count, monkeypatch):
    monkeypatch.setattr(export_module, "SHARD_BYTES", 10)
    bounds = shard_bounds(rows, 10 * (count - 1))
    table = datasets.Dataset.from_dict({"x": list(range(rows))})
    assert [list(range(*b)) for b in bounds] == [table.shard(count, i, contiguous=True)["x"] for i in range(count)]


def test_shards_are_never_more_than_rows():
    assert shard_bounds(2, 10**12) == [(0, 1), (1, 2)]


def test_a_missing_wav_is_a_one_line_error_before_anything_is_written(tmp_path, built):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("manifest.csv", "mixture"):
        (broken / name).symlink_to(built / name)
    with pytest.raises(LassbenchError, match="target.*cannot export the benchmark"):
        export_hf(broken, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_build_dataset_export_hf_writes_the_dataset_beside_the_build(tmp_path, built):
    sources = json.loads((built / "dataset.json").read_text())["sources"]["origin"]
    completed = subprocess.run(
        [sys.executable, "-m", "lassbench", "build-dataset", "--sources", sources, "--out", str(tmp_path / "b"),
         "--num-items", "2", "--quiet", "--export", "hf", str(tmp_path / "hf")],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert len(datasets.load_from_disk(str(tmp_path / "hf"))["test"]) == 2
