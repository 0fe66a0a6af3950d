"""`build-dataset --export hf`: a built benchmark as a `datasets.DatasetDict`."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from lassbench.build import BuildConfig, build_dataset
from lassbench.corpora.synth import synth_corpus
from lassbench.export_hf import export_hf


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    sources = synth_corpus(root / "c", duration=2.0, clips={"val": 12, "test": 12})
    return build_dataset(BuildConfig(out=root / "built", sources=str(sources), num_items=5, progress=False)).out


def test_export_hf_saves_a_dataset_dict_with_audio_bytes(tmp_path, built):
    export_hf(built, tmp_path / "hf")
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert set(loaded) == {"val", "test"} and len(loaded["val"]) == 5
    assert loaded["val"].features["mixture"] == datasets.Audio(decode=False)
    row = loaded["val"][0]
    assert row["mixture"]["bytes"] == (built / "mixture" / f"{row['id']}.wav").read_bytes()
    assert row["query"]
