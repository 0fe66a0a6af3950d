"""Sharded training sources: `lassbench shard` writes WebDataset tar shards with an index, and `train` draws each
rank's and worker's steps from its own shards, resumable at any step."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

from lassbench.mixing import integrated_loudness
from lassbench.shard_training import ShardSource
from lassbench.sharding import shard_sources
from lassbench.shards import read_index, read_shard_index
from lassbench.train_data import open_training_data

from support.command_helpers import train_cli

SEGMENT = 4000  # 0.25 s at 16 kHz
CLIPS_PER_SHARD = 4


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A benchmark built from 36 one-second synth training clips (one is silent), its sources in 9 shards of 4."""
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus

    root = tmp_path_factory.mktemp("shards")
    synth_corpus(root / "corpus", duration=1.0, clips={"train": 36, "val": 14, "test": 14})
    build_dataset(BuildConfig(sources=str(root / "corpus"), out=str(root / "bench"), splits=("val",),
                              num_items={"val": 4}, progress=False))
    shard_sources(root / "bench", clips_per_shard=CLIPS_PER_SHARD, seed=3, progress=False)
    return root / "bench"


def _batches(bench: Path, start: int, stop: int, *, rank: int = 0, world: int = 1, workers: int = 0):
    data = open_training_data(bench, seed=5)
    return list(data.batches(start, stop, 2, SEGMENT, rank=rank, world=world, workers=workers))


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x.mixture, y.mixture) and torch.equal(x.target, y.target)
                                    and x.queries == y.queries for x, y in zip(a, b, strict=True))


def test_shards_index_every_usable_train_clip_once_with_its_frames_and_loudness(bench):
    sources = pd.read_csv(bench / "sources.csv")
    usable = sources[(sources["split"] == "train") & sources["loudness"].notna()].set_index("source_id")
    index = read_index(bench / "shards")
    assert index["clips"] == len(usable) == 35 and len(index["shards"]) == 9
    rows = pd.concat([read_shard_index(bench / "shards", s["name"]) for s in index["shards"]])
    assert sorted(rows["source_id"]) == sorted(usable.index)
    assert (rows["frames"].to_numpy() == usable.loc[rows["source_id"], "frames"].to_numpy()).all()
    assert np.allclose(rows["loudness"], usable.loc[rows["source_id"], "loudness"], atol=1e-9)


def test_a_shard_is_a_webdataset_tar_of_flac_and_json_members_at_the_indexed_offsets(bench):
    folder = bench / "shards"
    table = read_shard_index(folder, "shard-000000")
    with tarfile.open(folder / "shard-000000.tar") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [f"{k}.{ext}" for k in table["key"] for ext in ("flac", "json")]
        for member, row in zip(members[::2], table.itertuples(), strict=True):
            assert (member.offset_data, member.size) == (row.offset, row.size)
            audio, rate = soundfile.read(tar.extractfile(member))
            assert rate == 16000 and len(audio) == row.frames
            # the index's loudness is the source clip's; PCM_16 quantisation moves it by far less than 0.01 LU
            assert integrated_loudness(audio, rate) == pytest.approx(row.loudness, abs=0.01)
        meta = json.load(tar.extractfile(members[1]))
    assert meta["source_id"] == table["source_id"].iloc[0] and meta["loudness"] == pytest.approx(table["loudness"][0])


def test_the_webdataset_package_reads_the_shards_when_installed(bench):
    wds = pytest.importorskip("webdataset")
    names = sorted(str(p) for p in (bench / "shards").glob("shard-*.tar"))
    samples = list(wds.WebDataset(names, shardshuffle=False))
    assert len(samples) == 35 and {"flac", "json"} <= set(samples[0])


def test_two_ranks_and_two_workers_each_draw_from_their_own_shards(bench):
    data = open_training_data(bench, seed=5)
    source: ShardSource = data.source
    source.bind(2, 4)  # batch 2 per rank, 2 ranks
    assert source.streams == 4
    used: dict[tuple[int, int], set[str]] = {}
    for step in range(40):  # several epochs of every stream
        for rank in (0, 1):
            for within in (0, 1):
                name, _ = source.locate(step, rank, within)
                used.setdefault((rank, step % 2), set()).add(name)  # worker step % 2 renders the step
    groups = list(used.values())
    assert len(groups) == 4 and all(groups)
    assert all(not (a & b) for i, a in enumerate(groups) for b in groups[i + 1:])
    assert set().union(*groups) == {s["name"] for s in read_index(bench / "shards")["shards"]}
    rank0, rank1 = _batches(bench, 0, 2, rank=0, world=2), _batches(bench, 0, 2, rank=1, world=2)
    assert not any(torch.equal(a.mixture, b.mixture) for a, b in zip(rank0, rank1, strict=True))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads the workers' open files from /proc")
def test_each_dataloader_worker_opens_only_the_shards_of_its_own_steps(bench):
    data = open_training_data(bench, seed=5)
    batches = data.batches(0, 8, 2, SEGMENT, rank=1, world=2, workers=2)
    for _ in range(6):
        next(batches)
    opened = [_open_shards(worker.pid) for worker in batches._workers]
    source: ShardSource = data.source
    expected = [{source.locate(step, 1, j)[0] + ".tar" for step in range(w, 8, 2) for j in (0, 1)} for w in (0, 1)]
    assert all(opened) and not opened[0] & opened[1]
    assert opened[0] <= expected[0] and opened[1] <= expected[1]


def _open_shards(pid: int) -> set[str]:
    names = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if Path(target).name.startswith("shard-"):
            names.add(Path(target).name)
    return names


def test_the_batches_are_the_same_for_any_number_of_workers(bench):
    assert _same(_batches(bench, 0, 4, rank=1, world=2, workers=2), _batches(bench, 0, 4, rank=1, world=2))


def test_a_run_resumed_at_a_step_draws_the_batches_of_an_uninterrupted_run(bench):
    whole = _batches(bench, 0, 12, workers=2)
    assert _same(_batches(bench, 7, 12, workers=2), whole[7:])
    assert not _same(whole[7:8], whole[8:9])


TRAIN_ARGS = ["lassnet", "--steps", 2, "--batch-size", 2, "--segment-seconds", 0.25, "--val-every", 2,
              "--checkpoint-every", 2]


@pytest.mark.slow
def test_train_trains_on_shards(bench, tmp_path, capsys):
    code, err = train_cli([*TRAIN_ARGS, "--data", bench, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "model.pt").is_file()


def test_train_refuses_a_truncated_shard_in_one_line(bench, tmp_path, capsys):
    shard = bench / "shards" / "shard-000004.tar"
    original = shard.read_bytes()
    try:
        shard.write_bytes(original[:len(original) // 2])
        code, err = train_cli([*TRAIN_ARGS, "--data", bench, "--out", tmp_path / "run"], capsys)
    finally:
        shard.write_bytes(original)
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: ") and "shard-000004.tar" in err
    assert "truncated" in err


def test_shard_parts_write_their_own_shards_and_the_last_part_writes_the_index(bench, tmp_path):
    out = tmp_path / "parts"
    shard_sources(bench, clips_per_shard=10, part=(1, 2), out=out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["shard-000001.csv", "shard-000001.tar", "shard-000003.csv",
                                                     "shard-000003.tar"]
    shard_sources(bench, clips_per_shard=10, part=(0, 2), out=out, progress=False)
    assert read_index(out)["clips"] == 35 and len(read_index(out)["shards"]) == 4
