"""AudioCaps from local sources (dir:, hf:), metadata handling, AudioSet labels and one-line errors."""

from __future__ import annotations

import fcntl
import hashlib
import io

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lassbench.cli import main
from lassbench.corpora.audiocaps import (
    AudiocapsDownloadConfig,
    download_audiocaps,
    fetch_audiocaps_metadata,
    read_audiocaps_metadata,
)
from lassbench.corpora.audiocaps_labels import load_audioset_labels
from lassbench.errors import LassbenchError
from lassbench.manifests import SOURCE_COLUMNS, read_source_manifest

from support.audiocaps_download import write_metadata
from support.media_server import MediaServer, synth_signal

ONTOLOGY = 'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/0bt9lr,"Dog"\n2,/m/05tny_,"Bark"\n'
SEGMENTS = (
    "# Segments csv created Sun Mar  5 10:54:31 2017\n"
    "# num_ytids=2, num_segs=2, num_unique_labels=3, num_positive_labels=3\n"
    "# YTID, start_seconds, end_seconds, positive_labels\n"
    'dirClip0001, 30.000, 40.000, "/m/0bt9lr,/m/05tny_"\n'
    'otherVideo1, 0.000, 10.000, "/m/09x0r"\n'
)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """The real entry point: one-line errors and exit codes as a user sees them (success returns normally)."""
    try:
        main(args)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def local_config(tmp_path, metadata, source, **overrides) -> AudiocapsDownloadConfig:
    return AudiocapsDownloadConfig(split="test", out_dir=tmp_path / "out", metadata=metadata, source=source,
                                   progress=False, **overrides)


@pytest.fixture
def clip_folder(tmp_path):
    """Three clips the way people keep them: plain id, AudioSep's Y<id>, any stem; 44.1 kHz stereo and FLAC."""
    folder = tmp_path / "have"
    (folder / "nested").mkdir(parents=True)
    stereo = np.stack([synth_signal(10, 44100, 1), synth_signal(10, 44100, 2)], axis=1)
    sf.write(folder / "dirClip0001.wav", stereo, 44100)
    sf.write(folder / "nested" / "YaudiosetId1.flac", synth_signal(12, 32000, 3), 32000)
    sf.write(folder / "my clip (take 1).wav", synth_signal(10, 16000, 4), 16000)
    return folder


def test_dir_source_indexes_plain_and_y_prefixed_clips_and_resamples_to_mono(tmp_path, clip_folder):
    clips = [("dirClip0001", 30, ["a dog barks"]), ("audiosetId1", 0, ["rain"]), ("my clip (take 1)", 0, ["x"]),
             ("notInFolder", 0, ["y"])]
    metadata = write_metadata(tmp_path / "meta.csv", clips)
    report = download_audiocaps(local_config(tmp_path, metadata, f"dir:{clip_folder}"))
    manifest = read_source_manifest(tmp_path / "out" / "manifest.csv")
    assert list(manifest.columns[: len(SOURCE_COLUMNS)]) == SOURCE_COLUMNS
    assert manifest["source_id"].tolist() == ["dirClip0001", "audiosetId1", "my clip (take 1)"]
    for path in manifest["path"]:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (32000, 1, 320000)
    saved, _ = sf.read(tmp_path / "out" / "audio" / "audiosetId1.wav", dtype="float32")
    assert np.corrcoef(saved, synth_signal(12, 32000, 3)[:320000])[0, 1] > 0.999
    assert report.failure_counts == {"missing": 1}


def test_dir_source_refuses_ids_that_would_leave_the_output_folder(tmp_path, clip_folder, capsys):
    metadata = write_metadata(tmp_path / "meta.csv", [("../../evil", 0, ["a"]), ("dirClip0001", 0, ["b"])])
    code, out, _ = run_cli(["download", "audiocaps", "--split", "test", "--out", str(tmp_path / "out"),
                            "--metadata", str(metadata), "--source", f"dir:{clip_folder}"], capsys)
    assert code == 0 and "1 ok, 1 failed (invalid_id 1)" in out
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert failures.to_dict("records")[0]["youtube_id"] == "../../evil"
    assert not (tmp_path / "evil.wav").exists() and not (tmp_path.parent / "evil.wav").exists()


def _wav_bytes(signal: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _hf_dataset(names: list[str]):
    """A datasets copy as the hub stores one (an Audio column of WAV bytes), built without torchcodec."""
    import datasets

    features = datasets.Features({"youtube_id": datasets.Value("string"), "caption": datasets.Value("string"),
                                  "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}})
    rows = {"youtube_id": names, "caption": ["c"] * len(names),
            "audio": [{"bytes": _wav_bytes(synth_signal(10, 48000, i), 48000), "path": f"{n}.wav"}
                      for i, n in enumerate(names)]}
    return datasets.Dataset.from_dict(rows, features=features).cast_column("audio", datasets.Audio())


def test_hf_source_reads_a_saved_dataset_into_the_same_manifest_format(tmp_path):
    _hf_dataset(["hfClip00001", "hfClip00002"]).save_to_disk(str(tmp_path / "saved"))
    metadata = write_metadata(tmp_path / "meta.csv", [("hfClip00001", 0, ["a"]), ("hfClip00002", 0, ["b"])])
    report = download_audiocaps(local_config(tmp_path, metadata, f"hf:{tmp_path / 'saved'}"))
    manifest = read_source_manifest(tmp_path / "out" / "manifest.csv")
    assert report.downloaded == 2 and manifest["source_id"].tolist() == ["hfClip00001", "hfClip00002"]
    assert set(manifest["sample_rate"]) == {"32000"} and set(manifest["num_samples"]) == {"320000"}


def test_hf_source_loads_a_local_parquet_dataset_folder_with_load_dataset(tmp_path):
    (tmp_path / "repo" / "data").mkdir(parents=True)
    _hf_dataset(["hfClip00003"]).to_parquet(str(tmp_path / "repo" / "data" / "test-00000-of-00001.parquet"))
    metadata = write_metadata(tmp_path / "meta.csv", [("hfClip00003", 0, ["a"])])
    report = download_audiocaps(local_config(tmp_path, metadata, f"hf:{tmp_path / 'repo'}"))
    assert report.downloaded == 1


def test_hf_source_from_the_hub_offline_is_a_one_line_error(tmp_path, capsys):
    metadata = write_metadata(tmp_path / "meta.csv", [("hfClip00001", 0, ["a"])])
    code, _, err = run_cli(["download", "audiocaps", "--split", "test", "--out", str(tmp_path / "out"),
                            "--metadata", str(metadata), "--source", "hf:nobody/AudioCaps"], capsys)
    assert code == 2
    assert err.startswith("error: --source hf:nobody/AudioCaps: cannot load the dataset") and err.count("\n") == 1


def test_audioset_labels_add_display_names(tmp_path, clip_folder):
    segments, ontology = tmp_path / "eval_segments.csv", tmp_path / "class_labels_indices.csv"
    segments.write_text(SEGMENTS)
    ontology.write_text(ONTOLOGY)
    metadata = write_metadata(tmp_path / "meta.csv", [("dirClip0001", 30, ["a dog"]), ("audiosetId1", 0, ["b"])])
    download_audiocaps(local_config(tmp_path, metadata, f"dir:{clip_folder}", audioset_labels=(segments, ontology)))
    manifest = read_source_manifest(tmp_path / "out" / "manifest.csv").set_index("source_id")
    assert manifest.loc["dirClip0001", "labels"] == ["Dog", "Bark"]
    assert manifest.loc["audiosetId1", "labels"] == []


def test_audioset_segments_without_the_ontology_table_are_refused(tmp_path):
    (tmp_path / "seg.csv").write_text(SEGMENTS)
    with pytest.raises(LassbenchError, match="class_labels_indices.csv"):
        load_audioset_labels([tmp_path / "seg.csv"])


def test_metadata_rows_are_grouped_per_clip_keeping_every_caption(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("audiocap_id,youtube_id,start_time,caption\n1,abcdefghijk,20,one\n2,zzzzzzzzzzz,0,x\n"
                    '3,abcdefghijk,20,"two, with a comma"\n')
    clips = read_audiocaps_metadata(path)
    assert [c.youtube_id for c in clips] == ["abcdefghijk", "zzzzzzzzzzz"]
    assert clips[0].captions == ("one", "two, with a comma") and clips[0].audiocap_ids == ("1", "3")
    assert clips[0].start_time == 20.0


@pytest.mark.parametrize("content, message", [
    ("audiocap_id,youtube_id,caption\n1,abcdefghijk,x\n", "lacks column(s) start_time"),
    ("audiocap_id,youtube_id,start_time,caption\n1,abcdefghijk,soon,x\n", "line 2: start_time 'soon'"),
    ("audiocap_id,youtube_id,start_time,caption\n1,abcdefghijk,-5,x\n", "line 2: start_time '-5'"),
])
def test_malformed_metadata_is_a_one_line_error_naming_the_file(tmp_path, capsys, content, message):
    (tmp_path / "meta.csv").write_text(content)
    code, _, err = run_cli(["download", "audiocaps", "--split", "val", "--out", str(tmp_path / "out"),
                            "--metadata", str(tmp_path / "meta.csv")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 'meta.csv'}") and message in err


def test_unknown_split_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_cli(["download", "audiocaps", "--split", "dev", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err == "error: unknown AudioCaps split 'dev' (choose train, val, test)\n"


def test_unwritable_output_folder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    metadata = write_metadata(tmp_path / "meta.csv", [("abcdefghijk", 0, ["a"])])
    code, _, err = run_cli(["download", "audiocaps", "--split", "test", "--out", str(tmp_path / "a_file" / "out"),
                            "--metadata", str(metadata)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 'a_file' / 'out'}: cannot write")


def test_a_second_run_into_the_same_folder_is_refused_while_one_is_writing(tmp_path, clip_folder):
    (tmp_path / "out").mkdir()
    metadata = write_metadata(tmp_path / "meta.csv", [("dirClip0001", 0, ["a"])])
    with open(tmp_path / "out" / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(LassbenchError, match="another download"):
            download_audiocaps(local_config(tmp_path, metadata, f"dir:{clip_folder}"))


def test_official_metadata_is_fetched_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path / "cache"))
    with MediaServer() as server:
        server.add("test.csv", b"audiocap_id,youtube_id,start_time,caption\n1,abcdefghijk,20,one\n", "csv")
        template = server.url("{split}.csv")
        first = fetch_audiocaps_metadata("test", template)
    second = fetch_audiocaps_metadata("test", template)  # server gone: the cache answers
    assert first == second and first.parent == tmp_path / "cache" / "audiocaps" and first.name.startswith("test-")
    assert read_audiocaps_metadata(second)[0].captions == ("one",)


METADATA = b"audiocap_id,youtube_id,start_time,caption\n1,abcdefghijk,20,one\n"


def test_the_default_metadata_is_one_commit_of_the_official_repository_with_a_hash_per_split():
    from lassbench.corpora import audiocaps_metadata as audiocaps

    assert f"/cdjkim/audiocaps/{audiocaps.METADATA_COMMIT}/dataset/" in audiocaps.METADATA_URL_TEMPLATE
    assert len(audiocaps.METADATA_COMMIT) == 40 and set(audiocaps.METADATA_SHA256) == set(audiocaps.SPLITS)


def test_the_pinned_metadata_url_is_refused_when_its_bytes_are_not_the_pinned_ones(tmp_path, monkeypatch):
    from lassbench.corpora import audiocaps_metadata as audiocaps

    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path / "cache"))
    with MediaServer() as server:
        server.add("test.csv", METADATA, "csv")
        monkeypatch.setattr(audiocaps, "METADATA_URL_TEMPLATE", server.url("{split}.csv"))
        with pytest.raises(LassbenchError, match="SHA-256 [0-9a-f]{64} differs from the expected b91c4b7d"):
            fetch_audiocaps_metadata("test")
        assert not list((tmp_path / "cache" / "audiocaps").glob("*"))  # a refused file is never cached
        monkeypatch.setattr(audiocaps, "METADATA_SHA256", {"test": hashlib.sha256(METADATA).hexdigest()})
        assert read_audiocaps_metadata(fetch_audiocaps_metadata("test"))[0].youtube_id == "abcdefghijk"


def test_another_metadata_file_is_taken_from_the_environment_and_checked_when_a_hash_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path / "cache"))
    with MediaServer() as server:
        server.add("val.csv", METADATA, "csv")
        monkeypatch.setenv("LASSBENCH_AUDIOCAPS_METADATA_URL", server.url("{split}.csv"))
        monkeypatch.setenv("LASSBENCH_AUDIOCAPS_METADATA_SHA256", "0" * 64)
        with pytest.raises(LassbenchError, match="differs from the expected 0000"):
            fetch_audiocaps_metadata("val")
        monkeypatch.setenv("LASSBENCH_AUDIOCAPS_METADATA_SHA256", hashlib.sha256(METADATA).hexdigest().upper())
        assert read_audiocaps_metadata(fetch_audiocaps_metadata("val"))[0].captions == ("one",)


def test_unreachable_metadata_url_suggests_metadata_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path / "cache"))
    with MediaServer() as server:
        template = server.url("{split}.csv").replace("/media/", "/nothing-here/")
        with pytest.raises(LassbenchError, match=r"cannot fetch AudioCaps val metadata .* pass --metadata CSV"):
            fetch_audiocaps_metadata("val", template)
    assert not list((tmp_path / "cache" / "audiocaps").glob("val*"))
