"""Ready-made benchmarks, built on first use and reused, and which one ``run --data`` names.

* ``synth`` (:func:`default_benchmark`): the embedded synth corpus's benchmark in ``cache_dir()/benchmarks/synth``.
  It is a cache that follows the code: a build made from another synth corpus (older generator code) or by other
  rendering code (:func:`render_digest`) is removed and rebuilt, so ``run`` always scores what the installed code
  makes. ``build-dataset`` with no ``--out`` builds into the same folder, under the same rule
  (:func:`build_benchmark`).
* ``real`` (:func:`real_benchmark`): the benchmark of the real-recordings corpus (``download packaged``).
* a downloaded corpus's own benchmark (:func:`corpus_benchmark`), built inside the corpus folder.

``--data`` accepts, in this order:

* nothing: the embedded synth benchmark (built in the cache on first use);
* a built benchmark (a folder with an item manifest ``id, query, ...``, or that manifest);
* a corpus folder written by ``lassbench download packaged`` / ``download audiocaps`` (a *source* manifest): its
  benchmark is built once, inside that folder (``<corpus>/benchmarks/<name>``, protocol ``lassbench``, seed 0, the
  corpus's evaluation splits) and reused by every later run;
* ``real``: the real-recordings benchmark, from a corpus already downloaded to ``data/real`` (the folder the docs
  use) or to the cache; downloaded into the cache only when neither holds it, saying where it looked.

A corpus is therefore never downloaded twice and never built twice.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from lassbench.audio import write_text_atomic
from lassbench.build import (
    STATE_DIR,
    BuildConfig,
    BuildResult,
    build_dataset,
    check_config,
    default_out,
    output_folder,
    read_build_state,
)
from lassbench.corpora.packaged import OWNER_MARK, UNSEEN_SPLIT, PackagedConfig, download_packaged
from lassbench.errors import LassbenchError
from lassbench.manifests import built_benchmark_dir
from lassbench.paths import cache_dir

REAL = "real"  # `--data real`: the benchmark name and the shorthand
USER_REAL_CORPUS = Path("data") / REAL  # where the README downloads it (`download packaged --out data/real`)
EVALUATION_SPLITS = ("val", "test", UNSEEN_SPLIT)  # a benchmark for `run` skips train: nothing scores it
SYNTH_FIRST_USE_NOTE = "building the embedded synth benchmark (first use; later runs reuse it)..."  # = cli.run's
RENDER_STATE = "render.json"  # the default benchmark's render_digest: its cache key besides the corpus
_RENDER_MODULES = ("lassbench.build", "lassbench.build_outputs", "lassbench.mixing", "lassbench.audio",
                   "lassbench.corpora", "lassbench.protocols.lassbench")
_RENDER_PACKAGES = ("numpy", "scipy", "pyloudnorm", "soundfile", "soxr")


def resolve_benchmark(data: str | Path | None, log) -> Path:
    """The built benchmark folder ``--data`` names (built first where needed); ``log`` gets one line per step."""
    if data is None:
        return _synth(log)
    path = Path(data)
    if str(data) == REAL and not path.exists():
        return real_benchmark_folder(log)
    if path.is_dir() and is_corpus(path):
        return corpus_benchmark(path, log)
    if path.is_file() and is_corpus(path.parent) and path.name == "manifest.csv":
        return corpus_benchmark(path.parent, log)
    if path.is_dir() and not (path / "manifest.csv").is_file():
        if _is_packaged(path):
            raise LassbenchError(f"{path}: a `download packaged` that did not finish (no manifest.csv yet); rerun "
                                 f"`lassbench download packaged --out {path}` to complete it")
        raise LassbenchError(f"{path}: neither a built benchmark nor a downloaded corpus (no manifest.csv); "
                             "build one with `lassbench build-dataset --sources DIR`")
    return built_benchmark_dir(path)


def is_corpus(folder: Path) -> bool:
    """A folder whose manifest.csv lists source clips (``source_id, path``), not benchmark items (``id, query``)."""
    columns = _manifest_columns(folder / "manifest.csv")
    return {"source_id", "path"} <= columns and not {"id", "query"} <= columns


def corpus_benchmark(corpus: Path, log) -> Path:
    """The benchmark of a downloaded corpus, built once inside it (reused when its dataset.json exists)."""
    out = _benchmark_folder_of(corpus)
    if _is_built(out):
        return out
    log(f"building the benchmark of the corpus {corpus} in {out} (protocol lassbench, seed 0; once, later runs "
        "reuse it)...")
    build_dataset(BuildConfig(out=out, sources=str(corpus), splits=_evaluation_splits(corpus), seed=0,
                              progress=True))
    return out


def real_benchmark_folder(log) -> Path:
    """``--data real``: a built real benchmark, else one built from a corpus the user already downloaded, else the
    corpus is downloaded into the cache (naming where it was looked for, and how to point at another copy)."""
    cached_corpus = _cached_real_corpus()
    corpora = [USER_REAL_CORPUS, cached_corpus]
    for corpus in corpora:
        if _is_built(_benchmark_folder_of(corpus)):
            return _benchmark_folder_of(corpus)
    for corpus in corpora:
        if (corpus / "manifest.csv").is_file() and is_corpus(corpus):
            return corpus_benchmark(corpus, log)
    log(f"no downloaded real-recordings corpus in {USER_REAL_CORPUS} or {cached_corpus}; if you downloaded it "
        "elsewhere, stop and pass --data THAT_FOLDER")
    return real_benchmark(log)


def real_benchmark(log=print, *, mirror: str | None = None) -> Path:
    """The real-recordings benchmark of the corpus in the cache (``cache_dir()/benchmarks/real``: val + test +
    test-unseen, seed 0): the corpus is downloaded to ``cache_dir()/corpora/packaged`` and the benchmark built on
    first use, reused afterwards."""
    corpus = _cached_real_corpus()
    if not _is_built(_benchmark_folder_of(corpus)) and not (corpus / "manifest.csv").is_file():
        log(f"downloading the real-recordings corpus to {corpus} (first use; ~1.0 GB of pinned Debian packages)...")
        download_packaged(PackagedConfig(out_dir=corpus, mirror=mirror, use_apt=mirror is None))
    return corpus_benchmark(corpus, log)


def _cached_real_corpus() -> Path:
    return cache_dir() / "corpora" / "packaged"


def _benchmark_folder_of(corpus: Path) -> Path:
    """Where a corpus's benchmark lives: the cache's own corpus keeps the cache's layout, any other corpus holds
    its benchmark (named ``real`` for the packaged corpus, else after the corpus folder)."""
    if corpus.resolve() == _cached_real_corpus().resolve():
        return cache_dir() / "benchmarks" / REAL
    return corpus / "benchmarks" / (REAL if _is_packaged(corpus) else corpus.resolve().name)


def _is_packaged(corpus: Path) -> bool:
    return (corpus / "packages.json").is_file() or (corpus / OWNER_MARK).is_file()


def _is_built(folder: Path) -> bool:
    return (folder / "dataset.json").is_file() and (folder / "manifest.csv").is_file()


def _evaluation_splits(corpus: Path) -> tuple[str, ...] | None:
    """val and test where the corpus has them (train items are never scored); else every split it has."""
    try:
        splits = set(pd.read_csv(corpus / "manifest.csv", usecols=["split"], dtype=str)["split"].dropna())
    except (ValueError, OSError):  # no split column: the protocol's default
        return None
    chosen = tuple(s for s in EVALUATION_SPLITS if s in splits)
    return chosen or None


def _manifest_columns(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    try:
        return set(pd.read_csv(path, nrows=0).columns)
    except (ValueError, OSError, UnicodeDecodeError):
        return set()


def _synth(log) -> Path:
    if not (default_out(None, "lassbench") / "dataset.json").is_file():
        log(SYNTH_FIRST_USE_NOTE)
    return Path(default_benchmark(progress=True))


# ------------------------------------------------------------------------------------- the synth benchmark


def default_benchmark(splits: Iterable[str] = ("val", "test"), *, out: str | Path | None = None,
                      workers: int = 1, progress: bool = False) -> Path:
    """The built synth benchmark folder (``cache_dir()/benchmarks/synth`` unless ``out``): built when absent or
    incomplete, reused when its ``dataset.json`` already covers ``splits``. At the default location, a build made
    from another synth corpus (older generator code) or by other rendering code (:func:`render_digest`) is removed
    and rebuilt, so results follow the code."""
    splits = tuple(splits)
    if out is None:
        out = default_out(None, "lassbench")
        _drop_stale_synth_build(out)
    out = Path(out)
    described = out / "dataset.json"
    if described.is_file() and (out / "manifest.csv").is_file():
        try:
            built = json.loads(described.read_text())["parameters"]["splits"]
        except (ValueError, KeyError, TypeError):
            built = []
        if set(splits) <= set(built):
            return out
        splits = tuple(dict.fromkeys([*built, *splits]))  # extend the build: its manifest keeps the splits it had
    build_benchmark(BuildConfig(out=out, splits=splits, workers=workers, progress=progress))
    return out


def build_benchmark(config: BuildConfig) -> BuildResult:
    """:func:`~lassbench.build.build_dataset` as ``build-dataset`` runs it: into the synth benchmark's default
    folder (shared with ``run``), a stale build (:func:`default_benchmark`) is removed first and this code's
    :func:`render_digest` recorded, before anything is built, so a killed build resumes instead of being dropped
    as stale."""
    check_config(config)
    out = output_folder(config)
    if _is_default_synth_build(out, config):
        _drop_stale_synth_build(out)
        write_text_atomic(out / STATE_DIR / RENDER_STATE, json.dumps({"render_digest": render_digest()}))
    return build_dataset(config)


def render_digest() -> str:
    """12 hex digits of SHA-1 over the code that turns corpus clips into benchmark items (build and its outputs,
    mixing, audio I/O, the lassbench protocol) and the versions of the numeric packages it uses."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha1()
    for name in _RENDER_MODULES:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    for package in _RENDER_PACKAGES:
        try:
            digest.update(f"{package} {version(package)}\n".encode())
        except PackageNotFoundError:
            digest.update(f"{package} -\n".encode())
    return digest.hexdigest()[:12]


def _is_default_synth_build(out: Path, config: BuildConfig) -> bool:
    return (config.protocol == "lassbench" and str(config.sources or "synth") == "synth"
            and out.resolve() == default_out(None, "lassbench").resolve())


def _drop_stale_synth_build(out: Path) -> None:
    """Remove the cached default benchmark when it was made from another synth corpus or by other rendering code
    (or before the rendering code was recorded): a stale cache once fed committed results."""
    from lassbench.corpora.synth import corpus_key

    state = read_build_state(out / STATE_DIR / "build.json")
    if not isinstance(state, dict) or "sources" not in state:
        return
    current = str(cache_dir() / "synth" / corpus_key() / "manifest.csv")
    rendered = read_build_state(out / STATE_DIR / RENDER_STATE) or {}
    if state["sources"] != current:
        why = f"another synth corpus ({state['sources']})"
    elif rendered.get("render_digest") != render_digest():
        why = "other rendering code"
    else:
        return
    import click

    click.echo(f"note: {out} was built from {why}; rebuilding", err=True)
    shutil.rmtree(out)
