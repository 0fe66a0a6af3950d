"""Reading, writing and resampling audio: the only module that touches soundfile.

Every write is atomic (temporary file in the same folder, then ``os.replace``), so a killed process never leaves a
half-written WAV under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from lassbench.errors import LassbenchError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    num_samples: int
    channels: int

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Header information without decoding the samples."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for one cause: unreadable
        raise LassbenchError(f"{path}: cannot read audio ({_short(exc)})") from exc
    return AudioInfo(sample_rate=int(info.samplerate), num_samples=int(info.frames), channels=int(info.channels))


def read_audio(
    path: str | Path, *, sample_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float32. Mono gives shape ``(n,)`` (channels averaged), else ``(channels, n)``.

    With ``sample_rate`` the signal is resampled (soxr, high quality) and that rate is returned.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise LassbenchError(f"{path}: cannot read audio ({_short(exc)})") from exc
    data = data.T  # (channels, n)
    if mono:
        data = data.mean(axis=0)
    if sample_rate is not None and sample_rate != sr:
        data = resample(data, sr, sample_rate)
        sr = sample_rate
    return np.ascontiguousarray(data, dtype=np.float32), int(sr)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample the last axis from ``sr_in`` to ``sr_out`` with soxr."""
    if sr_in == sr_out:
        return x
    if x.ndim == 1:
        return soxr.resample(x, sr_in, sr_out).astype(np.float32)
    return np.stack([soxr.resample(ch, sr_in, sr_out) for ch in x]).astype(np.float32)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; finished files get the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_audio(path: str | Path, data: np.ndarray, sample_rate: int, *, subtype: str = "FLOAT") -> Path:
    """Write ``data`` (``(n,)`` or ``(channels, n)``) atomically as WAV. ``subtype`` as soundfile names it.

    Byte-reproducible: libsndfile stamps float WAVs with the time of writing (the ``timestamp`` of their PEAK
    chunk), which would make identical builds differ; it is zeroed before the file appears under its name.
    """
    data = np.asarray(data)
    frames = data.T if data.ndim == 2 else data
    with atomic_path(path) as tmp:
        sf.write(str(tmp), frames, int(sample_rate), subtype=subtype, format="WAV")
        _clear_peak_timestamp(tmp)
    return Path(path)


def _clear_peak_timestamp(path: Path) -> None:
    with open(path, "r+b") as fh:
        head = fh.read(512)
        at = head.find(b"PEAK")
        if at >= 0 and head[at + 8:at + 12] == b"\x01\x00\x00\x00":  # chunk id, size, version 1, timestamp
            fh.seek(at + 12)
            fh.write(b"\x00\x00\x00\x00")


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def file_digest(path: str | Path, algorithm: str = "sha1", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha1_file(path: str | Path) -> str:
    return file_digest(path, "sha1")


def sha256_file(path: str | Path) -> str:
    return file_digest(path, "sha256")


def list_audio_files(folder: str | Path) -> list[Path]:
    """Audio files directly inside ``folder`` (not recursive), sorted by name; hidden/temp files ignored."""
    folder = Path(folder)
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
