"""Reading, writing and resampling audio: the only module that touches soundfile.

Every write is atomic (temporary file in the same folder, then ``os.replace``), so a killed process never leaves a
half-written WAV under its final name. Temporary names follow one recognisable pattern that embeds the writer's host
and PID (``.<name>.<host>-<pid>-<rand>.lbtmp<suffix>``), so :func:`sweep_stale_temps` can remove what a process
killed with SIGKILL left behind without touching the temp files of a writer that is still running.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import shutil
import socket
import struct
import tempfile
import threading
import time
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
        raise unreadable(path, exc) from exc
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
        raise unreadable(path, exc) from exc
    data = data.T  # (channels, n)
    if mono:
        data = data.mean(axis=0)
    if sample_rate is not None and sample_rate != sr:
        data = resample(data, sr, sample_rate)
        sr = sample_rate
    return np.ascontiguousarray(data, dtype=np.float32), int(sr)


def read_single_channel(path: str | Path, *, role: str = "audio") -> tuple[np.ndarray, int]:
    """:func:`read_audio` for a file that must hold one channel (an estimate scored against a mono reference):
    averaging the channels would score a signal nobody wrote, so a multi-channel file is refused."""
    data, sr = read_audio(path, mono=False)
    if data.shape[0] != 1:
        raise LassbenchError(f"{path}: {role} has {data.shape[0]} channels but the references are mono; write one "
                             "channel per file (the channel to score, or the mean of the channels)")
    return data[0], sr


def read_audio_range(path: str | Path, start: int, frames: int, *, sample_rate: int | None = None) -> np.ndarray:
    """Mono float32 samples ``[start, start + frames)`` of ``path`` (at ``sample_rate`` when given), decoding only
    that range; shorter when the file ends first. A file at another rate is decoded whole and resampled (a ranged
    resample would differ from :func:`read_audio`'s at the edges)."""
    try:
        with sf.SoundFile(str(path)) as fh:
            if sample_rate is None or int(fh.samplerate) == sample_rate:
                fh.seek(min(max(start, 0), fh.frames))
                data = fh.read(frames=max(frames, 0), dtype="float32", always_2d=True)
                return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
    except Exception as exc:
        raise unreadable(path, exc) from exc
    whole, _ = read_audio(path, sample_rate=sample_rate)
    return whole[max(start, 0):max(start, 0) + max(frames, 0)]


def unreadable(path: str | Path, exc: Exception) -> LassbenchError:
    """The error for audio soundfile could not open. libsndfile reports a missing file as "System error.", which
    names neither the file nor the cause: say what is wrong with the path when it is the path."""
    path = Path(path)
    if not path.exists():
        return LassbenchError(f"{path}: no such file")
    if path.is_dir():
        return LassbenchError(f"{path}: is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        return LassbenchError(f"{path}: permission denied")
    return LassbenchError(f"{path}: cannot read audio ({_short(exc)})")


def encode_flac(data: np.ndarray, sample_rate: int, *, subtype: str = "PCM_16") -> bytes:
    """Mono ``data`` as the bytes of a FLAC file (what a WebDataset shard's ``.flac`` member holds)."""
    buffer = io.BytesIO()
    # libsndfile does not clip float-to-integer conversion: an out-of-range sample would wrap around
    sf.write(buffer, np.clip(data, -1.0, 1.0), int(sample_rate), subtype=subtype, format="FLAC")
    return buffer.getvalue()


def decode_audio_range(data: bytes, start: int, frames: int, *, name: str) -> tuple[np.ndarray, int]:
    """Mono float32 samples ``[start, start + frames)`` (``frames < 0``: to the end) of an encoded file held in
    memory, and its rate; ``name`` says where the bytes came from in the error."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as fh:
            fh.seek(min(max(start, 0), fh.frames))
            audio = fh.read(frames=frames, dtype="float32", always_2d=True)
            return np.ascontiguousarray(audio.mean(axis=1), dtype=np.float32), int(fh.samplerate)
    except Exception as exc:
        raise LassbenchError(f"{name}: cannot read audio ({_short(exc)})") from exc


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample the last axis from ``sr_in`` to ``sr_out`` with soxr."""
    if sr_in == sr_out:
        return x
    if x.ndim == 1:
        return soxr.resample(x, sr_in, sr_out).astype(np.float32)
    return np.stack([soxr.resample(ch, sr_in, sr_out) for ch in x]).astype(np.float32)


TEMP_MARK = ".lbtmp"
# .<name>.<host>-<pid>-<rand>.lbtmp<suffix>; mkstemp's random part is [a-z0-9_]
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-[A-Za-z0-9_]+\.lbtmp(\.[^.]*)?$")
# what versions before the pattern above left: .<name>.<rand>.tmp<suffix> (no PID: removed once an hour old)
_LEGACY_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[^.]*)?$")
FOREIGN_TEMP_AGE = 24 * 3600.0  # temp files of another host (shared disk) are removed only when this old
LEGACY_TEMP_AGE = 3600.0


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16]


def temp_prefix(path: Path) -> str:
    """The start of every temporary name for ``path`` this process creates (see :func:`sweep_stale_temps`)."""
    return f".{path.name}.{_host_tag()}-{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed.

    The temporary keeps ``path``'s suffix (so tools that sniff the extension still work) and is removed on any
    exception, including KeyboardInterrupt and the CLI's SIGTERM (see :mod:`lassbench.cli`); only SIGKILL can
    leave it behind, and :func:`sweep_stale_temps` removes that debris on the next run.
    """
    path = Path(path)
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_MARK + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; finished files get the usual mode
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        for folder in created:  # deepest first: a failed write leaves no folder it made behind
            try:
                folder.rmdir()
            except OSError:  # not empty (another writer used it) or already gone
                break
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def sweep_stale_temps(folder: str | Path, *, recursive: bool = False, legacy: bool = True) -> list[Path]:
    """Remove temporary files (and folders) lassbench writers left in ``folder`` when they were killed.

    A temp is stale when its embedded PID is not a running process on this host, when it belongs to another host
    and is older than a day, or when it has the older unmarked pattern and is older than an hour. Temps of running
    writers (e.g. a parallel build shard writing into the same folder) are left alone. Returns what was removed.
    ``legacy=False`` in folders lassbench does not own (``separate``'s output folder): there only names that carry
    lassbench's marker are touched, since the older pattern could match a user's own hidden files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    entries = folder.rglob(".*") if recursive else folder.glob(".*")
    for entry in list(entries):
        if _is_stale_temp(entry.name, entry, legacy):
            try:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            except FileNotFoundError:  # its writer finished or another sweeper was faster
                continue
            removed.append(entry)
    return removed


def _is_stale_temp(name: str, entry: Path, legacy: bool = True) -> bool:
    match = _TEMP_NAME.match(name)
    try:
        age = time.time() - entry.lstat().st_mtime
    except FileNotFoundError:
        return False
    if match is None:
        return legacy and bool(_LEGACY_TEMP_NAME.match(name)) and age > LEGACY_TEMP_AGE
    if match["host"] != _host_tag():
        return age > FOREIGN_TEMP_AGE
    return not _pid_alive(int(match["pid"]))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a killed writer stays a zombie until reaped: it writes nothing any more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def wav_shortfall(path: str | Path) -> tuple[int, int] | None:
    """For a RIFF/WAVE file whose ``data`` chunk is shorter on disk than its header says: (declared, present) bytes.

    libsndfile silently reads only what is there, so a truncated download or copy would otherwise pass as a
    shorter, complete file. ``None`` for complete files, other formats, and streamed WAVs whose header carries a
    placeholder size (0 or 0xFFFFFFFF).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            position = 12
            while position + 8 <= size:
                fh.seek(position)
                chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
                if chunk_id == b"data":
                    present = size - position - 8
                    if chunk_size in (0, 0xFFFFFFFF) or present >= chunk_size:
                        return None
                    return chunk_size, present
                position += 8 + chunk_size + (chunk_size & 1)
    except OSError:
        return None
    return None


def write_audio(path: str | Path, data: np.ndarray, sample_rate: int, *, subtype: str = "FLOAT") -> Path:
    """Write ``data`` (``(n,)`` or ``(channels, n)``) atomically as WAV. ``subtype`` as soundfile names it.

    Byte-reproducible: libsndfile stamps float WAVs with the time of writing (the ``timestamp`` of their PEAK
    chunk), which would make identical builds differ; it is zeroed before the file appears under its name.
    """
    data = np.asarray(data)
    frames = data.T if data.ndim == 2 else data
    with atomic_path(path) as tmp, audio_write_errors(path):
        sf.write(str(tmp), frames, int(sample_rate), subtype=subtype, format="WAV")
        _clear_peak_timestamp(tmp)
    return Path(path)


@contextlib.contextmanager
def audio_write_errors(path: str | Path) -> Iterator[None]:
    """libsndfile reports a full disk as "System error.": turn it into the OSError it is (ENOSPC when the folder
    has less than 1 MiB left, else EIO), naming ``path``, so the CLI prints one line saying what to do."""
    try:
        yield
    except sf.LibsndfileError as exc:
        stats = os.statvfs(Path(path).parent)
        full = stats.f_bavail * stats.f_frsize < (1 << 20)
        raise OSError(errno.ENOSPC if full else errno.EIO, f"cannot write audio ({exc})", str(path)) from exc


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
    """The process umask. Read from /proc where it is shown (setting it to read it, the portable way, would let
    another thread create a file with umask 0 in between); elsewhere set-and-restore under a lock."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
