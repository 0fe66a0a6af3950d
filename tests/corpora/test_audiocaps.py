"""`lassbench download audiocaps` end to end: yt-dlp -> ffmpeg -> WAV against a loopback HTTP server."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from lassbench.corpora.audiocaps import AudiocapsDownloadConfig, download_audiocaps
from lassbench.manifests import read_source_manifest

from support.audiocaps_download import SERVED_SR, download_interrupted_by, write_metadata
from support.media_server import MediaServer, encode_media, synth_signal

IDS = {"wav": "wavClip0001", "mp3": "mp3Clip0002", "mp4": "mp4Clip0003"}


def config_for(server: MediaServer, tmp_path: Path, metadata: Path, **overrides) -> AudiocapsDownloadConfig:
    options = dict(split="test", out_dir=tmp_path / "out", metadata=metadata, url_template=server.url_template,
                   workers=2, retries=1, backoff_seconds=0.0, progress=False, socket_timeout=10.0)
    options.update(overrides)
    return AudiocapsDownloadConfig(**options)


def correlation_with_segment(saved: np.ndarray, served: np.ndarray, start: float, sample_rate: int) -> float:
    segment = served[int(start * SERVED_SR): int((start + 10) * SERVED_SR)]
    expected = soxr.resample(segment, SERVED_SR, sample_rate)
    n = min(len(expected), len(saved))
    return float(np.corrcoef(expected[:n], saved[:n])[0, 1])


def test_saved_clips_equal_the_served_segment_for_wav_mp3_and_mp4(tmp_path):
    served = {kind: synth_signal(16, SERVED_SR, seed) for seed, kind in enumerate(IDS)}
    starts = {"wav": 3.0, "mp3": 4.5, "mp4": 5.0}
    with MediaServer() as server:
        for kind, youtube_id in IDS.items():
            server.add(youtube_id, encode_media(served[kind], SERVED_SR, kind, tmp_path / "media"), kind)
        metadata = write_metadata(tmp_path / "meta.csv", [(IDS[k], starts[k], [f"a {k} clip"]) for k in IDS])
        report = download_audiocaps(config_for(server, tmp_path, metadata, workers=3))
    assert (report.downloaded, report.failed) == (3, 0)
    for kind, youtube_id in IDS.items():
        saved, sample_rate = sf.read(tmp_path / "out" / "audio" / f"{youtube_id}.wav", dtype="float32")
        assert sample_rate == 32000 and saved.ndim == 1 and len(saved) == 320000
        assert correlation_with_segment(saved, served[kind], starts[kind], sample_rate) > 0.99, kind


def test_manifest_is_a_source_manifest_with_all_captions_of_each_clip(tmp_path):
    with MediaServer() as server:
        server.add("captionClip", encode_media(synth_signal(12, SERVED_SR, 1), SERVED_SR, "wav", tmp_path), "wav")
        captions = ["=HYPERLINK(\"x\") a dog barks", "a dog barks twice"]
        metadata = write_metadata(tmp_path / "meta.csv", [("captionClip", 1.0, captions)])
        download_audiocaps(config_for(server, tmp_path, metadata))
    manifest = read_source_manifest(tmp_path / "out" / "manifest.csv")
    row = manifest.iloc[0]
    assert row["source_id"] == row["youtube_id"] == "captionClip"
    assert row["captions"] == captions
    assert json.loads(row["audiocap_ids"]) == ["101", "102"] and float(row["start_time"]) == 1.0
    assert row["split"] == "test" and int(row["num_samples"]) == 320000 and float(row["duration"]) == 10.0
    assert Path(row["path"]) == tmp_path / "out" / "audio" / "captionClip.wav"


def test_failures_are_classified_and_only_good_clips_reach_the_manifest(tmp_path):
    with MediaServer() as server:
        long_clip = encode_media(synth_signal(12, SERVED_SR, 2), SERVED_SR, "wav", tmp_path)
        for name in ("goodClip001", "flakyClip01", "cutClip0001"):
            server.add(name, long_clip, "wav")
        server.add("shortVideo1", encode_media(synth_signal(3, SERVED_SR, 3), SERVED_SR, "wav", tmp_path), "wav")
        server.missing.add("goneClip001")
        server.truncate["cutClip0001"] = 0.3
        server.fail_first["flakyClip01"] = 1
        ids = ["goodClip001", "flakyClip01", "goneClip001", "cutClip0001", "shortVideo1", "../escape;rm", "=1+cmd|x"]
        metadata = write_metadata(tmp_path / "meta.csv", [(i, 1.0, ["a sound"]) for i in ids])
        report = download_audiocaps(config_for(server, tmp_path, metadata, min_duration=5.0))
    failures = pd.read_csv(tmp_path / "out" / "failures.csv", dtype=str).set_index("youtube_id")
    assert failures.loc["goneClip001", "reason_class"] == "unavailable"
    assert failures.loc["cutClip0001", "reason_class"] == "network"
    assert failures.loc["cutClip0001", "attempts"] == "2"  # transient: retried once (retries=1)
    assert failures.loc["goneClip001", "attempts"] == "1"  # permanent: not retried
    assert failures.loc["shortVideo1", "reason_class"] == "too_short"
    assert failures.loc["../escape;rm", "reason_class"] == "invalid_id"
    assert failures.loc["'=1+cmd|x", "reason_class"] == "invalid_id"  # quoted: a spreadsheet will not run it
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str)
    assert sorted(manifest["youtube_id"]) == ["flakyClip01", "goodClip001"]
    assert sorted(p.name for p in (tmp_path / "out" / "audio").iterdir()) == ["flakyClip01.wav", "goodClip001.wav"]
    assert (report.downloaded, report.failed) == (2, 5)
    assert not list(tmp_path.glob("escape*")) and not list((tmp_path / "out").glob("**/*escape*"))
    assert not (tmp_path / "out" / ".partial").exists()


def test_a_video_ending_early_is_kept_at_its_real_length_above_min_duration(tmp_path):
    with MediaServer() as server:
        server.add("endsEarly01", encode_media(synth_signal(8, SERVED_SR, 4), SERVED_SR, "wav", tmp_path), "wav")
        metadata = write_metadata(tmp_path / "meta.csv", [("endsEarly01", 2.0, ["a sound"])])
        report = download_audiocaps(config_for(server, tmp_path, metadata, min_duration=5.0))
    assert report.downloaded == 1
    info = sf.info(tmp_path / "out" / "audio" / "endsEarly01.wav")
    assert abs(info.duration - 6.0) < 0.05


def test_rerun_skips_clips_already_downloaded(tmp_path):
    with MediaServer() as server:
        payload = encode_media(synth_signal(11, SERVED_SR, 5), SERVED_SR, "wav", tmp_path)
        for name in ("firstClip01", "secondClip1"):
            server.add(name, payload, "wav")
        metadata = write_metadata(tmp_path / "meta.csv", [("firstClip01", 0, ["a"]), ("secondClip1", 0, ["b"])])
        download_audiocaps(config_for(server, tmp_path, metadata))
        before = (tmp_path / "out" / "manifest.csv").read_text()
        server.requests.clear()
        report = download_audiocaps(config_for(server, tmp_path, metadata))
        assert sum(server.requests.values()) == 0
    assert (report.downloaded, report.already_present, report.failed) == (0, 2, 0)
    assert (tmp_path / "out" / "manifest.csv").read_text() == before
    assert "0 ok, 0 failed, 2 skipped (already present)" in report.summary_line()


def test_unavailable_clips_are_not_retried_on_rerun_unless_asked(tmp_path):
    with MediaServer() as server:
        server.missing.add("goneClip001")
        metadata = write_metadata(tmp_path / "meta.csv", [("goneClip001", 0, ["a"])])
        download_audiocaps(config_for(server, tmp_path, metadata))
        server.requests.clear()
        report = download_audiocaps(config_for(server, tmp_path, metadata))
        assert sum(server.requests.values()) == 0 and report.not_retried == 1
        report = download_audiocaps(config_for(server, tmp_path, metadata, retry_failed=True))
        assert server.requests["goneClip001"] >= 1
    assert report.failure_counts == {"unavailable": 1}
    assert pd.read_csv(tmp_path / "out" / "failures.csv")["youtube_id"].tolist() == ["goneClip001"]


def test_limit_downloads_only_the_first_clips(tmp_path):
    with MediaServer() as server:
        payload = encode_media(synth_signal(11, SERVED_SR, 6), SERVED_SR, "wav", tmp_path)
        names = [f"limitClip0{i}" for i in range(3)]
        for name in names:
            server.add(name, payload, "wav")
        metadata = write_metadata(tmp_path / "meta.csv", [(n, 0, ["a"]) for n in names])
        report = download_audiocaps(config_for(server, tmp_path, metadata, limit=1))
    assert report.downloaded == 1
    assert [p.name for p in (tmp_path / "out" / "audio").iterdir()] == ["limitClip00.wav"]


def test_missing_ffmpeg_is_an_error_before_any_clip(tmp_path):
    metadata = write_metadata(tmp_path / "meta.csv", [("someClip001", 0, ["a"])])
    config = AudiocapsDownloadConfig(split="test", out_dir=tmp_path / "out", metadata=metadata,
                                     ffmpeg="ffmpeg-not-installed", progress=False)
    with pytest.raises(Exception, match="ffmpeg not found"):
        download_audiocaps(config)
    assert list((tmp_path / "out" / "audio").iterdir()) == []


def test_killed_run_resumes_without_partial_files_or_downloading_a_clip_twice(tmp_path):
    names = [f"killClip{i:03d}" for i in range(8)]
    with download_interrupted_by(signal.SIGKILL, tmp_path, names) as killed:
        out, server = killed.out, killed.server
        survivors = {p.name: p.stat().st_ino for p in (out / "audio").iterdir()}
        assert 2 <= len(survivors) < len(names), "the kill came too late to test anything"
        server.requests.clear()
        second = subprocess.run(killed.command, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        refetched = {name for name in names if server.requests[name] and f"{name}.wav" in survivors}
    assert refetched == set()
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(f"{n}.wav" for n in names)
    assert all((out / "audio" / name).stat().st_ino == inode for name, inode in survivors.items())
    assert not (out / ".partial").exists()
    assert len(pd.read_csv(out / "manifest.csv")) == len(names)
    for path in (out / "audio").iterdir():
        assert sf.info(path).frames == 320000


def test_ctrl_c_leaves_a_manifest_of_exactly_the_clips_on_disk(tmp_path):
    names = [f"intClip{i:04d}" for i in range(8)]
    with download_interrupted_by(signal.SIGINT, tmp_path, names) as interrupted:
        run, err, out = interrupted.process, interrupted.stderr, interrupted.out
    assert run.returncode == 130 and "Traceback" not in err
    on_disk = sorted(p.stem for p in (out / "audio").iterdir())
    assert 2 <= len(on_disk) < len(names)
    assert sorted(pd.read_csv(out / "manifest.csv")["youtube_id"]) == on_disk
    assert not (out / ".partial").exists()
