"""The synth corpus on disk: generated once into the cache, keyed by the generator's digest, then reused."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
from filelock import FileLock

from lassbench.audio import TEMP_MARK, sha1_file, sweep_stale_temps, temp_prefix, write_audio
from lassbench.corpora.synth.classes import synth_class_table
from lassbench.corpora.synth.clips import SPLIT_SEED_CODES, generate_clip
from lassbench.errors import LassbenchError
from lassbench.manifests import write_manifest_csv
from lassbench.paths import cache_dir
from lassbench.pools import process_pool

# Caches made before the key was the generator's digest (v1-...): their code is unknown, so they are never reused.
SYNTH_VERSION = "v2"
# temp folders of those versions: .<root name>.<8 random>; removed once this old (no PID to check)
_LEGACY_TEMP = re.compile(r"^\.v1-.+\.[a-z0-9_]{8}$")
_LEGACY_TEMP_AGE = 3600.0
DEFAULT_CLIPS = {"train": 1200, "val": 150, "test": 200}
# what decides the clips besides numpy and scipy: every file of this package, by name
_PACKAGE = Path(__file__).parent
_PACKAGE_SUFFIXES = (".py", ".json")


def synth_corpus(
    root: str | Path | None = None,
    *,
    sample_rate: int = 16000,
    duration: float = 4.0,
    seed: int = 0,
    clips: dict[str, int] | None = None,
    progress: bool | None = None,
) -> Path:
    """Path to the source manifest of the synth corpus, generating it first when absent (a progress bar on stderr
    while it does: ``progress`` True or False, or None for only when stderr is a terminal).

    ``root`` defaults to ``cache_dir()/synth/<key>``, the key naming the generator's digest
    (:func:`generator_digest`: this package's code and class table and the numpy / scipy versions) and the
    parameters, so a cache made by other code is never reused. Generation writes into a temporary folder named
    after this process, renamed onto ``root`` at the end: a killed run leaves nothing that looks finished, and the
    next run removes the folder of a process that no longer exists. A file lock beside ``root`` makes a second first
    run wait for the one generating, then reuse its corpus. ``clips`` maps split -> number of clips (default 1200 /
    150 / 200).
    """
    clips = dict(DEFAULT_CLIPS if clips is None else clips)
    unknown = sorted(set(clips) - set(SPLIT_SEED_CODES))
    if unknown:
        raise LassbenchError(f"synth corpus: unknown split(s) {', '.join(unknown)}; use train, val, test")
    if root is None:
        root = cache_dir() / "synth" / corpus_key(sample_rate=sample_rate, duration=duration, seed=seed, clips=clips)
    root = Path(root)
    manifest = root / "manifest.csv"
    if manifest.is_file():
        return manifest
    root.parent.mkdir(parents=True, exist_ok=True)
    # a second first run waits for the one generating, then reuses its corpus
    with FileLock(root.parent / f"{root.name}.lock"):
        if manifest.is_file():
            return manifest
        _sweep_debris(root.parent)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(root), suffix=TEMP_MARK, dir=root.parent))
        try:
            _generate_into(tmp, sample_rate=sample_rate, duration=duration, seed=seed, clips=clips,
                           progress=progress)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def corpus_key(*, sample_rate: int = 16000, duration: float = 4.0, seed: int = 0,
               clips: dict[str, int] | None = None) -> str:
    """The cache folder name of a corpus: generator digest and parameters."""
    clips = dict(DEFAULT_CLIPS if clips is None else clips)
    counts = "-".join(str(clips.get(s, 0)) for s in SPLIT_SEED_CODES)
    return f"{SYNTH_VERSION}-{generator_digest()}-sr{sample_rate}-d{duration:g}-seed{seed}-n{counts}"


@lru_cache(maxsize=1)
def generator_digest() -> str:
    """12 hex digits of SHA-1 over what decides the clips: every file of this package (its modules and the class
    table, by name, in name order) and the numpy / scipy versions (their random streams and filters). Any edit of
    any of those files, even a comment, makes a new cache: a stale one cannot be reused by mistake, which is how
    committed results once came from audio the code no longer made."""
    digest = hashlib.sha1()
    for path in package_files():
        digest.update(f"{path.name}\n".encode())
        digest.update(path.read_bytes())
    digest.update(f"\nnumpy {np.__version__}\nscipy {scipy.__version__}\n".encode())
    return digest.hexdigest()[:12]


def package_files() -> list[Path]:
    """The files :func:`generator_digest` covers, in the order it reads them."""
    return sorted(p for p in _PACKAGE.iterdir() if p.suffix in _PACKAGE_SUFFIXES and p.is_file())


def _sweep_debris(folder: Path) -> None:
    """Remove temp folders of killed generations: those of dead processes, and unmarked ones of old versions."""
    sweep_stale_temps(folder)
    now = time.time()
    for entry in folder.glob(".v1-*"):
        try:
            old = now - entry.lstat().st_mtime > _LEGACY_TEMP_AGE
        except FileNotFoundError:
            continue
        if old and entry.is_dir() and _LEGACY_TEMP.match(entry.name):
            shutil.rmtree(entry, ignore_errors=True)


def _generate_into(folder: Path, *, sample_rate: int, duration: float, seed: int, clips: dict[str, int],
                   progress: bool | None = None) -> None:
    from tqdm import tqdm

    jobs = [(split, start, min(start + _CHUNK, count)) for split, count in clips.items()
            for start in range(0, count, _CHUNK)]
    work = partial(_generate_chunk, folder, sample_rate=sample_rate, duration=duration, seed=seed)
    workers = min(len(jobs), os.cpu_count() or 1)
    bar = tqdm(total=sum(clips.values()), desc="generating the synth corpus", unit="clip", file=sys.stderr,
               leave=False, disable=None if progress is None else not progress)
    chunks = []
    with bar, process_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        # ~7 ms per clip: worth both cores for the default 1,550 clips; workers die with this process
        for chunk in (pool.map(work, jobs) if pool else map(work, jobs)):
            chunks.append(chunk)
            bar.update(len(chunk))
    write_manifest_csv(pd.DataFrame([row for chunk in chunks for row in chunk]), folder / "manifest.csv")


_CHUNK = 100


def _generate_chunk(folder: Path, job: tuple[str, int, int], *, sample_rate: int, duration: float, seed: int
                    ) -> list[dict]:
    split, start, stop = job
    classes = synth_class_table()
    rows = []
    for index in range(start, stop):
        clip = generate_clip(split, index, sample_rate=sample_rate, duration=duration, seed=seed)
        rel = f"audio/{clip.source_id}.wav"
        write_audio(folder / rel, clip.audio, sample_rate, subtype="PCM_16")
        rows.append({
            "source_id": clip.source_id, "path": rel, "captions": clip.captions,
            "labels": [classes[clip.class_id].label], "split": split, "sample_rate": sample_rate,
            "num_samples": len(clip.audio), "duration": len(clip.audio) / sample_rate,
            "sha1": sha1_file(folder / rel), "attributes": json.dumps(clip.attributes, sort_keys=True),
            "paraphrases": clip.paraphrases, "class_id": clip.class_id,
        })
    return rows
