"""AudioCaps onto disk, reliably and resumably: ``lassbench download audiocaps``.

AudioCaps exists only as metadata (``audiocap_id,youtube_id,start_time,caption`` CSVs in cdjkim/audiocaps) plus
YouTube. :func:`download_audiocaps` turns one split into::

    DIR/audio/<youtube_id>.wav   mono PCM-16 WAV at the requested rate, exactly the requested length when available
    DIR/manifest.csv             a lassbench source manifest + youtube_id, audiocap_ids, start_time
    DIR/failures.csv             youtube_id, reason_class, message, attempts (clips that are not on disk)

Reliability rules: a clip reaches ``audio/`` only by an atomic rename of a finished file (temporary files live in
``DIR/.partial/``, emptied at every start), so a killed run leaves only whole clips; rerunning the same command skips
clips already present after a cheap header check and rebuilds both CSVs from disk + metadata.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from lassbench.audio import AudioInfo, audio_info, resample, sha1_file, write_audio
from lassbench.corpora.audiocaps_labels import AudiosetLabels, load_audioset_labels
from lassbench.corpora.audiocaps_metadata import (
    AudiocapsClip,
    check_split,
    fetch_audiocaps_metadata,
    read_audiocaps_metadata,
)
from lassbench.corpora.audiocaps_sources import (
    AGE_RESTRICTED,
    DEFAULT_URL_TEMPLATE,
    GEO_BLOCKED,
    INVALID_ID,
    OTHER,
    PRIVATE,
    TOO_SHORT,
    UNAVAILABLE,
    YOUTUBE_ID_PATTERN,
    ClipError,
    ClipRequest,
    ClipSource,
    make_source,
)
from lassbench.errors import LassbenchError
from lassbench.manifests import SOURCE_COLUMNS, read_manifest, write_manifest_csv
from lassbench.safe_names import is_plain_name

MANIFEST_COLUMNS = [*SOURCE_COLUMNS, "youtube_id", "audiocap_ids", "start_time"]
FAILURE_COLUMNS = ["youtube_id", "reason_class", "message", "attempts"]
# Failures a rerun would only repeat: not retried unless asked (--retry-failed).
PERMANENT_REASONS = frozenset({UNAVAILABLE, PRIVATE, AGE_RESTRICTED, GEO_BLOCKED})
# A section a few packets short of the requested length is padded with silence; a genuinely short video is not.
PAD_TOLERANCE_S = 0.1


@dataclass
class AudiocapsDownloadConfig:
    split: str
    out_dir: Path
    metadata: Path | None = None           # local CSV; else fetched from metadata_url_template and cached
    source: str = "youtube"                # youtube | dir:PATH | hf:NAME_OR_PATH
    url_template: str = DEFAULT_URL_TEMPLATE
    metadata_url_template: str | None = None  # None: $LASSBENCH_AUDIOCAPS_METADATA_URL, else the pinned commit
    metadata_sha256: str | None = None  # None: $LASSBENCH_AUDIOCAPS_METADATA_SHA256, else the pin (pinned URL only)
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    min_duration: float = 1.0              # shorter clips are dropped (too_short); longer ones kept at real length
    workers: int = 4
    retries: int = 3                       # extra attempts for transient failures (network, rate_limited)
    backoff_seconds: float = 2.0           # wait before retry k: backoff_seconds * 2**(k-1)
    limit: int | None = None               # only the first N clips of the metadata
    audioset_labels: tuple[Path, ...] = ()
    retry_failed: bool = False             # also retry clips failed earlier as unavailable/private/...
    progress: bool | None = None           # None: a progress bar only on a terminal
    ffmpeg: str = "ffmpeg"
    socket_timeout: float = 30.0


@dataclass
class ClipOutcome:
    youtube_id: str
    reason_class: str = ""  # "" when the clip is on disk
    message: str = ""
    attempts: int = 0
    sha1: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason_class


@dataclass
class DownloadReport:
    split: str
    out_dir: Path
    downloaded: int = 0
    already_present: int = 0
    failed: int = 0
    not_retried: int = 0
    in_manifest: int = 0
    failure_counts: dict[str, int] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.csv"

    @property
    def failures_path(self) -> Path:
        return self.out_dir / "failures.csv"

    def summary_line(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.failure_counts.items()))
        failed = f"{self.failed} failed" + (f" ({reasons})" if reasons else "")
        known = f", {self.not_retried} of them known from earlier runs" if self.not_retried else ""
        return (
            f"audiocaps {self.split}: {self.downloaded} ok, {failed}{known}, "
            f"{self.already_present} skipped (already present); "
            f"{self.manifest_path} lists {self.in_manifest} clips, failures in {self.failures_path}"
        )


# ---------------------------------------------------------------------------------------------------- download


def download_audiocaps(config: AudiocapsDownloadConfig) -> DownloadReport:
    """Fetch the split's clips into ``config.out_dir`` and (re)write manifest.csv and failures.csv.

    Rerunning the same call resumes: clips already in ``audio/`` are kept, failures are retried when transient.
    """
    _check_config(config)
    out_dir = _prepare_out_dir(Path(config.out_dir))
    with _exclusive_lock(out_dir):
        metadata = config.metadata or fetch_audiocaps_metadata(config.split, config.metadata_url_template,
                                                                sha256=config.metadata_sha256)
        clips = read_audiocaps_metadata(metadata)
        labels = load_audioset_labels(config.audioset_labels) if config.audioset_labels else None
        source = make_source(config.source, url_template=config.url_template, split=config.split,
                             ffmpeg=config.ffmpeg, socket_timeout=config.socket_timeout)
        clips, invalid = _validate_ids(clips, strict=source.strict_ids)
        partial_dir = _fresh_dir(out_dir / ".partial")
        report = DownloadReport(split=config.split, out_dir=out_dir)
        failures = {o.youtube_id: o for o in invalid} | _previous_failures(out_dir, {c.youtube_id for c in clips})
        selected = clips[: config.limit] if config.limit is not None else clips
        pending = _plan(selected, out_dir, config, failures, report)
        outcomes: dict[str, ClipOutcome] = {}
        try:
            _run(pending, source, config, partial_dir, outcomes)
        finally:
            # Also on Ctrl-C: both CSVs describe exactly what is on disk now.
            _finish(report, clips, invalid, selected, outcomes, failures, labels, config)
            shutil.rmtree(partial_dir, ignore_errors=True)
    return report


def _check_config(config: AudiocapsDownloadConfig) -> None:
    check_split(config.split)
    if config.workers < 1:
        raise LassbenchError(f"--workers must be at least 1, got {config.workers}")
    if config.sample_rate <= 0:
        raise LassbenchError(f"--sample-rate must be positive, got {config.sample_rate}")
    if not 0 <= config.min_duration <= config.clip_seconds:
        raise LassbenchError(
            f"--min-duration must be between 0 and {config.clip_seconds:g} s, got {config.min_duration}"
        )
    if config.limit is not None and config.limit < 1:  # --limit 0 would "succeed" with an empty manifest
        raise LassbenchError(f"--limit must be at least 1, got {config.limit}")
    if config.retries < 0:
        raise LassbenchError(f"--retries must be non-negative, got {config.retries}")


def _prepare_out_dir(out_dir: Path) -> Path:
    try:
        (out_dir / "audio").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise LassbenchError(f"{out_dir}: cannot write the download there ({exc.strerror or exc})") from exc
    return out_dir


@contextlib.contextmanager
def _exclusive_lock(out_dir: Path) -> Iterator[None]:
    """Two runs into one folder would empty each other's .partial/: refuse the second (released even on SIGKILL)."""
    try:
        with FileLock(out_dir / ".lock", timeout=0):
            yield
    except Timeout as exc:
        raise LassbenchError(f"{out_dir}: another download is writing into this folder") from exc


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)  # leftovers of a killed run
    path.mkdir(parents=True)
    return path


def _validate_ids(clips: list[AudiocapsClip], strict: bool) -> tuple[list[AudiocapsClip], list[ClipOutcome]]:
    """Ids become file names (and URLs): anything but a YouTube id (or, for local sources, a plain stem) is out."""
    valid, invalid = [], []
    for clip in clips:
        ok = YOUTUBE_ID_PATTERN.fullmatch(clip.youtube_id) if strict else is_plain_name(clip.youtube_id)
        if ok:
            valid.append(clip)
        else:
            kind = "an 11-character YouTube id [A-Za-z0-9_-]" if strict else "a plain file name"
            invalid.append(ClipOutcome(clip.youtube_id, INVALID_ID, f"metadata id is not {kind}; skipped", 0))
    return valid, invalid


def _previous_failures(out_dir: Path, known_ids: set[str]) -> dict[str, ClipOutcome]:
    path = out_dir / "failures.csv"
    if not path.is_file():
        return {}
    try:
        frame = read_manifest(path, FAILURE_COLUMNS)
    except LassbenchError:
        return {}  # an unreadable old report only costs retries
    result = {}
    for row in frame.itertuples(index=False):
        youtube_id = row.youtube_id
        if youtube_id in known_ids:
            attempts = int(row.attempts) if str(row.attempts).isdigit() else 0
            result[youtube_id] = ClipOutcome(youtube_id, row.reason_class, row.message, attempts)
    return result


def _plan(selected: list[AudiocapsClip], out_dir: Path, config: AudiocapsDownloadConfig,
          failures: dict[str, ClipOutcome], report: DownloadReport) -> list[AudiocapsClip]:
    pending = []
    for clip in selected:
        if _valid_clip_info(out_dir / "audio" / f"{clip.youtube_id}.wav", config) is not None:
            report.already_present += 1
        elif clip.youtube_id in failures and failures[clip.youtube_id].reason_class in PERMANENT_REASONS \
                and not config.retry_failed:
            report.not_retried += 1
        else:
            pending.append(clip)
    return pending


def _valid_clip_info(path: Path, config: AudiocapsDownloadConfig) -> AudioInfo | None:
    """Cheap check that a finished clip matches this run's settings (header only, no decoding)."""
    if not path.is_file():
        return None
    try:
        info = audio_info(path)
    except LassbenchError:
        return None
    longest = round(config.clip_seconds * config.sample_rate)
    shortest = max(1, int(np.ceil(config.min_duration * config.sample_rate)))
    if info.sample_rate != config.sample_rate or info.channels != 1 or not shortest <= info.num_samples <= longest:
        return None
    return info


def _run(pending: list[AudiocapsClip], source: ClipSource, config: AudiocapsDownloadConfig, partial_dir: Path,
         outcomes: dict[str, ClipOutcome]) -> None:
    from tqdm import tqdm

    audio_dir = partial_dir.parent / "audio"
    counts = Counter()
    disable = None if config.progress is None else not config.progress
    with tqdm(total=len(pending), unit="clip", desc=f"audiocaps {config.split}", disable=disable) as bar:
        executor = ThreadPoolExecutor(max_workers=config.workers)
        try:
            futures = [executor.submit(_fetch_clip, c, source, config, partial_dir, audio_dir) for c in pending]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[outcome.youtube_id] = outcome
                counts["ok" if outcome.ok else "failed"] += 1
                bar.set_postfix(ok=counts["ok"], failed=counts["failed"], refresh=False)
                bar.update()
        finally:
            # Ctrl-C or an abort: start no new clip and let clips in flight end (ffmpeg got the same Ctrl-C), so the
            # manifest written next sees the final state of audio/.
            executor.shutdown(wait=True, cancel_futures=True)


def _fetch_clip(clip: AudiocapsClip, source: ClipSource, config: AudiocapsDownloadConfig, partial_dir: Path,
                audio_dir: Path) -> ClipOutcome:
    request = ClipRequest(clip.youtube_id, clip.start_time, config.clip_seconds, config.sample_rate)
    attempt = 0
    while True:
        attempt += 1
        try:
            audio, sample_rate = source.fetch(request, partial_dir)
            sha1 = _store_clip(clip.youtube_id, audio, sample_rate, config, partial_dir, audio_dir)
            return ClipOutcome(clip.youtube_id, attempts=attempt, sha1=sha1)
        except ClipError as exc:
            if not exc.transient or attempt > config.retries:
                return ClipOutcome(clip.youtube_id, exc.reason_class, exc.message, attempt)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
                raise LassbenchError(f"{audio_dir}: cannot write clips ({exc.strerror})") from exc
            return ClipOutcome(clip.youtube_id, OTHER, f"{type(exc).__name__}: {exc}", attempt)
        time.sleep(config.backoff_seconds * 2 ** (attempt - 1))


def _store_clip(youtube_id: str, audio: np.ndarray, sample_rate: int, config: AudiocapsDownloadConfig,
                partial_dir: Path, audio_dir: Path) -> str:
    """Resample, fit the length, write into .partial/, then rename into audio/ (the only way a clip gets there)."""
    audio = _fit_length(resample(np.asarray(audio, dtype=np.float32), sample_rate, config.sample_rate), config)
    staged = write_audio(partial_dir / f"{youtube_id}.wav", audio, config.sample_rate, subtype="PCM_16")
    sha1 = sha1_file(staged)
    os.replace(staged, audio_dir / f"{youtube_id}.wav")
    return sha1


def _fit_length(audio: np.ndarray, config: AudiocapsDownloadConfig) -> np.ndarray:
    target = round(config.clip_seconds * config.sample_rate)
    if len(audio) >= target:
        return audio[:target]
    if target - len(audio) <= PAD_TOLERANCE_S * config.sample_rate:
        return np.pad(audio, (0, target - len(audio)))
    seconds = len(audio) / config.sample_rate
    if len(audio) == 0 or seconds < config.min_duration:
        raise ClipError(TOO_SHORT, f"{seconds:.2f} s of audio, below --min-duration {config.min_duration:g} s")
    return audio  # a video that ends early: kept at its real length, as --min-duration allows


# ---------------------------------------------------------------------------------------------------- reports


def _finish(report: DownloadReport, clips: list[AudiocapsClip], invalid: list[ClipOutcome],
            selected: list[AudiocapsClip], outcomes: dict[str, ClipOutcome], failures: dict[str, ClipOutcome],
            labels: AudiosetLabels | None, config: AudiocapsDownloadConfig) -> None:
    out_dir = report.out_dir
    manifest = build_manifest(clips, out_dir, config, labels, {k: o.sha1 for k, o in outcomes.items() if o.ok})
    write_manifest_csv(manifest, out_dir / "manifest.csv")
    on_disk = set(manifest["youtube_id"])
    failures = {**failures, **{k: o for k, o in outcomes.items() if not o.ok}}
    order = [o.youtube_id for o in invalid] + [c.youtube_id for c in clips]
    rows = [failures[k] for k in dict.fromkeys(order) if k in failures and k not in on_disk]
    table = pd.DataFrame([[o.youtube_id, o.reason_class, o.message, o.attempts] for o in rows], columns=FAILURE_COLUMNS)
    write_manifest_csv(table, out_dir / "failures.csv")
    selected_ids = {c.youtube_id for c in selected} | {o.youtube_id for o in invalid}
    this_selection = [o for o in rows if o.youtube_id in selected_ids]
    report.downloaded = sum(o.ok for o in outcomes.values())
    report.failed = len(this_selection)
    report.failure_counts = dict(Counter(o.reason_class for o in this_selection))
    report.in_manifest = len(manifest)


def build_manifest(clips: list[AudiocapsClip], out_dir: Path, config: AudiocapsDownloadConfig,
                   labels: AudiosetLabels | None = None, known_sha1: dict[str, str] | None = None) -> pd.DataFrame:
    """One source-manifest row per metadata clip whose WAV in ``out_dir/audio`` passes the validity check."""
    known = {**_previous_sha1(out_dir), **(known_sha1 or {})}
    rows = []
    for clip in clips:
        relative = f"audio/{clip.youtube_id}.wav"
        info = _valid_clip_info(out_dir / relative, config)
        if info is None:
            continue
        sha1 = (known.get(clip.youtube_id) or known.get(f"{relative}:{info.num_samples}")
                or sha1_file(out_dir / relative))
        rows.append({
            "source_id": clip.youtube_id, "path": relative, "captions": list(clip.captions),
            "labels": labels.labels_for(clip.youtube_id, clip.start_time) if labels else [],
            "split": config.split, "sample_rate": info.sample_rate, "num_samples": info.num_samples,
            "duration": round(info.duration, 6), "sha1": sha1, "youtube_id": clip.youtube_id,
            "audiocap_ids": list(clip.audiocap_ids), "start_time": clip.start_time,
        })
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def _previous_sha1(out_dir: Path) -> dict[str, str]:
    """Checksums from the last manifest, keyed by path and length, so a resume does not re-hash every clip."""
    path = out_dir / "manifest.csv"
    if not path.is_file():
        return {}
    try:
        frame = read_manifest(path, ["path", "num_samples", "sha1"])
    except LassbenchError:
        return {}
    return {f"{p}:{n}": s for p, n, s in zip(frame["path"], frame["num_samples"], frame["sha1"], strict=True)}
