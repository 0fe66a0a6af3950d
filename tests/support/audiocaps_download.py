"""AudioCaps downloads against the loopback media server: a metadata CSV in AudioCaps' columns, and a download
interrupted by a signal once two clips are on disk (shared by the download and the signal tests)."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .media_server import MediaServer, encode_media, synth_signal

SERVED_SR = 44100  # the rate the served media are encoded at


def write_metadata(path: Path, clips: list[tuple[str, float, list[str]]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        number = 100
        for youtube_id, start, captions in clips:
            for caption in captions:
                number += 1
                writer.writerow([number, youtube_id, start, caption])
    return path


@dataclass
class InterruptedDownload:
    process: subprocess.Popen
    stderr: str
    out: Path
    command: list[str]
    server: MediaServer  # still serving: a test can rerun the command and see what it fetched again


@contextmanager
def download_interrupted_by(signum: int, tmp_path, names: list[str]):
    """A 2-worker download of ``names`` from a slow loopback server, sent ``signum`` once two clips are on disk.
    Yields an :class:`InterruptedDownload` while the server still serves, so a test can rerun the command."""
    with MediaServer(delay=0.15) as server:
        payload = encode_media(synth_signal(11, SERVED_SR, 8), SERVED_SR, "wav", tmp_path)
        for name in names:
            server.add(name, payload, "wav")
        metadata = write_metadata(tmp_path / "meta.csv", [(n, 0, ["a"]) for n in names])
        out = tmp_path / "out"
        command = [sys.executable, "-m", "lassbench", "download", "audiocaps", "--split", "test", "--out", str(out),
                   "--metadata", str(metadata), "--url-template", server.url_template, "--workers", "2"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(list((out / "audio").glob("*.wav"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        yield InterruptedDownload(process, err, out, command, server)
