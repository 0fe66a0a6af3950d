"""Where source clips come from, and loading them (audio + loudness, once per clip).

Every corpus ends as one source manifest (:mod:`lassbench.manifests`): the embedded ``synth`` corpus, a folder made
by ``lassbench download audiocaps`` (its ``manifest.csv``), any source-manifest CSV, or a plain folder of audio files
indexed on the fly (:mod:`lassbench.corpora.folder`). :func:`resolve_sources` accepts any of them.

:func:`load_sources` reads the clips of a manifest at one sample rate, measures each clip's integrated loudness once
(loudness is a property of a clip, not of a mixture) and reports the clips it cannot use:

* ``missing``: the file named by the manifest does not exist;
* ``unreadable``: it cannot be decoded;
* ``too_short``: shorter than the 0.4 s BS.1770 gating block (no integrated loudness);
* ``silent``: all blocks below the -70 LUFS absolute gate.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench.audio import read_audio
from lassbench.errors import LassbenchError
from lassbench.manifests import read_source_manifest
from lassbench.mixing import LOUDNESS_BLOCK_SECONDS, fit_length, integrated_loudness
from lassbench.pools import process_pool

SKIP_REASONS = {
    "missing": "file not found",
    "unreadable": "cannot be decoded",
    "too_short": "shorter than the 0.4 s loudness gate",
    "silent": "silent (below the -70 LUFS gate)",
    "excluded": "listed by --exclude-ids",
}


@dataclass
class ResolvedSources:
    """A source manifest in memory: ``frame`` has absolute paths and decoded ``captions``/``labels`` lists."""

    frame: pd.DataFrame
    name: str  # "synth", or the folder / manifest name
    origin: str  # what the user passed (or the synth manifest path)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source id or file name, reason)


@dataclass
class LoadedSources:
    """Source clips in memory (float32, mono, one rate), their loudness in LUFS, and what was skipped."""

    audio: dict[str, np.ndarray]
    loudness: dict[str, float]
    sample_rate: int
    skipped: list[tuple[str, str]]


def resolve_sources(sources: str | Path | None = None) -> ResolvedSources:
    """``None`` or ``"synth"``: the synth corpus; a ``.csv``: a source manifest; a folder with ``manifest.csv``: that
    manifest; any other folder: its audio files, indexed on the fly."""
    if sources is None or str(sources) == "synth":
        from lassbench.corpora.synth import synth_corpus

        manifest = synth_corpus()
        return ResolvedSources(read_source_manifest(manifest), "synth", str(manifest))
    path = Path(sources)
    if path.is_file():
        return ResolvedSources(read_source_manifest(path), path.parent.name or path.stem, str(path))
    if path.is_dir() and (path / "manifest.csv").is_file():
        return ResolvedSources(read_source_manifest(path / "manifest.csv"), path.name, str(path))
    if path.is_dir():
        from lassbench.corpora.folder import index_folder

        frame, skipped = index_folder(path)
        return ResolvedSources(frame, path.name, str(path), skipped)
    raise LassbenchError(f"{path}: --sources is neither 'synth', a manifest CSV nor a folder")


def read_source(path: str | Path, sample_rate: int, num_samples: int | None = None) -> np.ndarray:
    """One clip as float32 mono at ``sample_rate``, cropped / zero-padded to ``num_samples`` when given."""
    audio, _ = read_audio(path, sample_rate=sample_rate)
    return audio if num_samples is None else fit_length(audio, num_samples)


def measure_source(path: str | Path, sample_rate: int, num_samples: int | None = None
                   ) -> tuple[np.ndarray | None, float, str | None]:
    """``(audio, loudness, reason)``: ``reason`` is ``None`` for a usable clip, else one of :data:`SKIP_REASONS`."""
    if not Path(path).is_file():
        return None, math.nan, "missing"
    try:
        audio = read_source(path, sample_rate, num_samples)
    except LassbenchError:
        return None, math.nan, "unreadable"
    if audio.shape[0] < LOUDNESS_BLOCK_SECONDS * sample_rate:
        return None, math.nan, "too_short"
    loudness = integrated_loudness(audio, sample_rate)
    if not math.isfinite(loudness):
        return None, loudness, "silent"
    return audio, loudness, None


def load_sources(
    frame: pd.DataFrame,
    sample_rate: int,
    *,
    num_samples: int | None = None,
    workers: int = 1,
    keep_audio: bool = True,
) -> LoadedSources:
    """Read every clip of a source manifest once: audio (if ``keep_audio``) and loudness, keyed by ``source_id``.

    This is the in-memory path for on-the-fly mixing (training): pass the result's ``audio`` and ``loudness`` to
    :func:`lassbench.mixing.render`. Use ``num_samples`` to give every clip one length (loudness is measured on the
    fitted clip, so rendered loudness and SNRs are exact).
    """
    jobs = list(zip(frame["source_id"], frame["path"], strict=True))
    work = _Measure(sample_rate, num_samples, keep_audio)
    if workers > 1 and len(jobs) > 1:
        with process_pool(min(workers, os.cpu_count() or 1)) as pool:  # workers die with this process
            results = list(pool.map(work, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    else:
        results = [work(job) for job in jobs]
    audio, loudness, skipped = {}, {}, []
    for source_id, clip, level, reason in results:
        if reason is not None:
            skipped.append((source_id, reason))
            continue
        loudness[source_id] = level
        if keep_audio:
            audio[source_id] = clip
    return LoadedSources(audio, loudness, sample_rate, skipped)


@dataclass(frozen=True)
class _Measure:
    sample_rate: int
    num_samples: int | None
    keep_audio: bool

    def __call__(self, job: tuple[str, str]) -> tuple[str, np.ndarray | None, float, str | None]:
        source_id, path = job
        audio, loudness, reason = measure_source(path, self.sample_rate, self.num_samples)
        return source_id, audio if self.keep_audio else None, loudness, reason
