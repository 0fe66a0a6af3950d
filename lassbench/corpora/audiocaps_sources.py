"""Where AudioCaps audio comes from: YouTube (or a mirror) through yt-dlp + ffmpeg, a local folder, or a Hugging Face
``datasets`` copy. Every source turns one clip request into decoded mono audio, or raises :class:`ClipError` with a
reason class that ends up in ``failures.csv``.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import socket
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from lassbench.audio import AUDIO_EXTENSIONS, read_audio
from lassbench.errors import LassbenchError

DEFAULT_URL_TEMPLATE = "https://www.youtube.com/watch?v={youtube_id}"

# Reason classes written to failures.csv. Only TRANSIENT ones are retried (with backoff).
UNAVAILABLE = "unavailable"      # removed, deleted account, copyright claim, HTTP 404/410
PRIVATE = "private"              # the uploader made it private
AGE_RESTRICTED = "age_restricted"  # needs a signed-in adult account
GEO_BLOCKED = "geo_blocked"      # not available in the downloader's country
RATE_LIMITED = "rate_limited"    # HTTP 429 / "confirm you're not a bot": back off, then retry
NETWORK = "network"              # timeouts, resets, refused connections, HTTP 5xx, truncated transfers
UNSUPPORTED_FORMAT = "unsupported_format"  # no audio format ffmpeg can cut directly
TOO_SHORT = "too_short"          # the clip is shorter than --min-duration
DECODE_ERROR = "decode_error"    # ffmpeg/soundfile could not decode what was fetched
MISSING = "missing"              # dir:/hf: sources that do not have the clip
INVALID_ID = "invalid_id"        # the metadata's id is not a safe YouTube id / file stem (never attempted)
OTHER = "error"                  # anything not classified above (message kept verbatim)
TRANSIENT = frozenset({NETWORK, RATE_LIMITED})

YOUTUBE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{11}")

# First matching pattern wins; checked against yt-dlp's and ffmpeg's messages, lower-cased.
_REASON_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (PRIVATE, ("private video", "video is private")),
    (AGE_RESTRICTED, ("confirm your age", "age-restricted", "age restricted", "inappropriate for some users")),
    # YouTube: "The uploader has not made this video available in your country" (yt-dlp prefixes "Video unavailable")
    (GEO_BLOCKED, ("available in your country", "geo restriction", "geo-restricted", "blocked it in your")),
    (RATE_LIMITED, ("http error 429", "too many requests", "not a bot", "rate-limit", "rate limit")),
    (UNAVAILABLE, (
        "video unavailable", "http error 404", "http error 410", "404 not found", "410 gone", "has been removed",
        "account associated with this video has been terminated", "copyright", "does not exist",
        "no longer available", "this video is unavailable", "video has been removed", "unsupported url",
    )),
    (UNSUPPORTED_FORMAT, ("requested format is not available", "no video formats found")),
    (NETWORK, (
        "timed out", "timeout", "connection reset", "connection refused", "connection aborted", "broken pipe",
        "temporary failure in name resolution", "name or service not known", "network is unreachable",
        "http error 5", "server returned 5", "5xx", "stream ends prematurely", "end of file",
        "incompleteread", "remote end closed", "unable to download webpage", "unable to connect",
    )),
    (DECODE_ERROR, ("invalid data found", "could not find codec", "does not contain any stream",
                    "output file is empty", "error while decoding", "format not recognised")),
)


class ClipError(Exception):
    """One clip could not be fetched; ``reason_class`` says why in a word a report can count."""

    def __init__(self, reason_class: str, message: str):
        super().__init__(message)
        self.reason_class = reason_class
        self.message = message

    @property
    def transient(self) -> bool:
        return self.reason_class in TRANSIENT


def classify_message(message: str) -> str:
    """Reason class of a yt-dlp/ffmpeg error message (``error`` when nothing matches)."""
    text = message.lower()
    for reason, needles in _REASON_PATTERNS:
        if any(needle in text for needle in needles):
            return reason
    return OTHER


@dataclass(frozen=True)
class ClipRequest:
    """What a source needs to know about one clip."""

    youtube_id: str
    start_time: float
    duration: float
    sample_rate: int


class ClipSource(Protocol):
    """Returns decoded mono float32 audio (any sample rate) for a clip, or raises :class:`ClipError`."""

    #: whether ids must be YouTube ids (a URL is built from them) or may be any safe file stem
    strict_ids: bool

    def fetch(self, clip: ClipRequest, work_dir: Path) -> tuple[np.ndarray, int]: ...


def make_source(spec: str, *, url_template: str = DEFAULT_URL_TEMPLATE, split: str = "",
                ffmpeg: str = "ffmpeg", socket_timeout: float = 30.0) -> ClipSource:
    """``youtube`` (default), ``dir:PATH`` or ``hf:NAME_OR_PATH``; checks what the source needs before any clip."""
    kind, _, arg = spec.partition(":")
    if kind == "youtube" and not arg:
        return YoutubeSource(url_template=url_template, ffmpeg=_require_ffmpeg(ffmpeg), socket_timeout=socket_timeout)
    if kind == "dir" and arg:
        return DirSource(Path(arg))
    if kind == "hf" and arg:
        return HfSource(arg, split=split)
    raise LassbenchError(f"--source {spec!r}: expected youtube, dir:PATH or hf:NAME_OR_PATH")


def _require_ffmpeg(ffmpeg: str) -> str:
    found = shutil.which(ffmpeg)
    if found is None:
        raise LassbenchError(
            f"ffmpeg not found ({ffmpeg!r} is not on PATH): install it (Debian/Ubuntu: apt-get install ffmpeg; "
            "macOS: brew install ffmpeg) — it cuts and converts every downloaded clip"
        )
    return found


class YoutubeSource:
    """yt-dlp resolves the media URL; ffmpeg reads only ``[start, start + duration]`` and decodes it to mono WAV.

    Why not yt-dlp's own ``download_ranges``: it stream-copies, so the cut lands on a packet boundary (measured: an
    MP3 section started 392 samples early at 32 kHz, correlation with the true segment 0.00 on noise), and its
    keyframe-exact mode re-encodes to a second lossy generation. Input seeking with decoding is sample-exact and
    still downloads only the section (HTTP range requests).
    """

    strict_ids = True
    # Formats ffmpeg can read directly from a URL; DASH fragments would need yt-dlp's own downloader.
    _FORMAT = ("bestaudio[protocol^=http][protocol!*=dash]/bestaudio[protocol^=m3u8]/"
               "best[protocol^=http][protocol!*=dash]/best[protocol^=m3u8]")
    # Keep ffmpeg (and HLS playlists it follows) on the network: a playlist must not pull local files.
    _PROTOCOLS = "http,https,tcp,tls,crypto"

    def __init__(self, url_template: str, ffmpeg: str, socket_timeout: float = 30.0):
        if "{youtube_id}" not in url_template:
            raise LassbenchError(f"--url-template {url_template!r} must contain {{youtube_id}}")
        self.url_template = url_template
        self.ffmpeg = ffmpeg
        self.socket_timeout = socket_timeout
        self._local = threading.local()

    def fetch(self, clip: ClipRequest, work_dir: Path) -> tuple[np.ndarray, int]:
        media = self._resolve(self.url_template.replace("{youtube_id}", clip.youtube_id))
        out = work_dir / f"{clip.youtube_id}.section.wav"
        try:
            self._cut(media, clip, out)
            return read_audio(out, mono=True)
        except LassbenchError as exc:
            raise ClipError(DECODE_ERROR, str(exc)) from exc
        finally:
            out.unlink(missing_ok=True)

    def _resolve(self, url: str) -> dict:
        import yt_dlp  # heavy import, only when downloading

        try:
            info = self._downloader().extract_info(url, download=False)
        except yt_dlp.utils.DownloadError as exc:
            message = _clean(str(exc))
            raise ClipError(classify_message(message), message) from exc
        if not info or not info.get("url"):
            raise ClipError(UNSUPPORTED_FORMAT, "yt-dlp found no single audio URL for this video")
        return info

    def _downloader(self):
        """One YoutubeDL per worker thread: it is not thread-safe, and building one costs ~0.1 s (measured)."""
        import yt_dlp

        if getattr(self._local, "ydl", None) is None:
            self._local.ydl = yt_dlp.YoutubeDL({
                "format": self._FORMAT, "quiet": True, "no_warnings": True, "noprogress": True,
                "noplaylist": True, "socket_timeout": self.socket_timeout, "retries": 0, "extractor_retries": 0,
                "logger": _SilentLogger(), "ffmpeg_location": self.ffmpeg,
            })
        return self._local.ydl

    def _cut(self, media: dict, clip: ClipRequest, out: Path) -> None:
        args = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-protocol_whitelist", self._PROTOCOLS, "-rw_timeout", str(int(self.socket_timeout * 1e6))]
        headers = media.get("http_headers") or {}
        if headers:
            args += ["-headers", "".join(f"{k}: {v}\r\n" for k, v in headers.items())]
        args += ["-ss", f"{clip.start_time:.3f}", "-i", media["url"], "-t", f"{clip.duration:.3f}",
                 "-vn", "-ac", "1", "-ar", str(clip.sample_rate), "-c:a", "pcm_s16le", "-f", "wav", str(out)]
        try:
            # A list of arguments, never a shell: ids and URLs cannot inject commands.
            result = subprocess.run(args, capture_output=True, text=True, errors="replace",
                                    timeout=self.socket_timeout * 4)
        except subprocess.TimeoutExpired as exc:
            raise ClipError(NETWORK, f"ffmpeg timed out after {exc.timeout:.0f} s") from exc
        message = _clean(result.stderr)
        if result.returncode != 0 or not out.exists():
            reason = classify_message(message)
            raise ClipError(DECODE_ERROR if reason == OTHER else reason, message or f"ffmpeg exit {result.returncode}")
        if message and classify_message(message) == NETWORK:
            # ffmpeg exits 0 on a transfer cut mid-way; the short file would look like a short video.
            raise ClipError(NETWORK, message)


class DirSource:
    """Clips already on disk, named ``<id>.<ext>`` or AudioSep-style ``Y<id>.<ext>`` (searched recursively)."""

    strict_ids = False

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise LassbenchError(f"--source dir:{folder}: not a folder")
        self.folder = folder
        self.index: dict[str, Path] = {}
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file() and not path.name.startswith("."):
                self.index.setdefault(path.stem, path)

    def fetch(self, clip: ClipRequest, work_dir: Path) -> tuple[np.ndarray, int]:
        path = self.index.get(clip.youtube_id) or self.index.get("Y" + clip.youtube_id)
        if path is None:
            raise ClipError(MISSING, f"no {clip.youtube_id}.wav or Y{clip.youtube_id}.wav under {self.folder}")
        try:
            return read_audio(path, mono=True)
        except LassbenchError as exc:
            raise ClipError(DECODE_ERROR, str(exc)) from exc


# Column names used for the clip id and the audio by known AudioCaps copies.
_HF_ID_COLUMNS = ("youtube_id", "ytid", "youtube", "video_id", "id")
_HF_SPLIT_NAMES = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}


class HfSource:
    """A Hugging Face ``datasets`` copy: a hub name, a local dataset folder, or a ``save_to_disk`` folder.

    Audio is read undecoded (``Audio(decode=False)``) and decoded with soundfile, so torchcodec is not needed.
    """

    strict_ids = False

    def __init__(self, name_or_path: str, split: str = ""):
        self.name = name_or_path
        dataset = _load_hf_dataset(name_or_path)
        self.table, self.audio_column, id_column = _pick_split_and_columns(dataset, name_or_path, split)
        self.index = {str(value): row for row, value in enumerate(self.table[id_column])}
        self._lock = threading.Lock()  # an Arrow-backed table is read by one worker at a time

    def fetch(self, clip: ClipRequest, work_dir: Path) -> tuple[np.ndarray, int]:
        row = self.index.get(clip.youtube_id)
        if row is None:
            raise ClipError(MISSING, f"{clip.youtube_id} is not in Hugging Face dataset {self.name}")
        with self._lock:
            cell = self.table[row][self.audio_column]
        try:
            source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell["path"]
            data, sample_rate = sf.read(source, dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises several types for one cause: undecodable
            raise ClipError(DECODE_ERROR, f"{self.name}: cannot decode audio of {clip.youtube_id} ({exc})") from exc
        return data.mean(axis=1), int(sample_rate)


def _load_hf_dataset(name_or_path: str):
    import datasets  # heavy import, only for this source

    path = Path(name_or_path)
    offline = not path.exists() and not _hub_reachable()
    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return datasets.load_from_disk(str(path))
        if offline:  # no retries against an unreachable hub (11 lines over 25 s): a cached copy still loads
            with _hub_offline():
                return datasets.load_dataset(name_or_path)
        return datasets.load_dataset(name_or_path)
    except Exception as exc:  # offline hub, missing repo, bad folder: all mean "cannot load this"
        why = "the Hugging Face hub is unreachable and no copy is cached" if offline \
            else _clean(str(exc)) or type(exc).__name__
        raise LassbenchError(
            f"--source hf:{name_or_path}: cannot load the dataset ({why}); offline, point it at a local dataset folder"
        ) from exc


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connection to the hub's endpoint (the loaders would retry for ~25 s); False in offline mode."""
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE:
        return False
    url = urllib.parse.urlsplit(hub.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline():
    """Offline mode of huggingface_hub and datasets for one call (both read these flags at call time)."""
    import datasets
    import huggingface_hub.constants as hub

    saved = hub.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def _pick_split_and_columns(dataset, name: str, split: str):
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        wanted = [s for s in _HF_SPLIT_NAMES.get(split, (split,)) if s in dataset]
        parts = [dataset[s] for s in wanted] or list(dataset.values())
        dataset = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    id_column = next((c for c in _HF_ID_COLUMNS if c in dataset.column_names), None)
    audio_column = next((c for c, f in dataset.features.items() if isinstance(f, datasets.Audio)), None)
    if id_column is None or audio_column is None:
        raise LassbenchError(
            f"--source hf:{name}: needs an id column ({', '.join(_HF_ID_COLUMNS)}) and an Audio column; "
            f"found {', '.join(dataset.column_names)}"
        )
    return dataset.cast_column(audio_column, datasets.Audio(decode=False)), audio_column, id_column


class _SilentLogger:
    """yt-dlp logs through this; errors come back as exceptions, so nothing is printed."""

    def debug(self, msg: str) -> None: ...

    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...

    def error(self, msg: str) -> None: ...


def _clean(message: str) -> str:
    """One line for failures.csv: ANSI colours and yt-dlp's ``ERROR:`` prefixes dropped, lines joined."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)
    lines = [re.sub(r"^ERROR:\s*", "", line.strip()) for line in message.splitlines() if line.strip()]
    return " | ".join(lines)[:500]
