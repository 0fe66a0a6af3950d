"""What ``run --data`` names, resolved to one built benchmark folder.

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

from pathlib import Path

import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.manifests import built_benchmark_dir

REAL = "real"  # `--data real`: the benchmark name and the shorthand
USER_REAL_CORPUS = Path("data") / REAL  # where the README downloads it (`download packaged --out data/real`)
EVALUATION_SPLITS = ("val", "test", "test-unseen")  # a benchmark for `run` skips train: nothing scores it
SYNTH_FIRST_USE_NOTE = "building the embedded synth benchmark (first use; later runs reuse it)..."  # = cli.run's


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
    from lassbench.build import BuildConfig, build_dataset

    log(f"building the benchmark of the corpus {corpus} in {out} (protocol lassbench, seed 0; once, later runs "
        "reuse it)...")
    build_dataset(BuildConfig(out=out, sources=str(corpus), splits=_evaluation_splits(corpus), seed=0,
                              progress=True))
    return out


def real_benchmark_folder(log) -> Path:
    """``--data real``: a built real benchmark, else one built from a corpus the user already downloaded, else the
    corpus is downloaded into the cache (naming where it was looked for, and how to point at another copy)."""
    from lassbench.paths import cache_dir

    cached_corpus = cache_dir() / "corpora" / "packaged"
    corpora = [USER_REAL_CORPUS, cached_corpus]
    for corpus in corpora:
        if _is_built(_benchmark_folder_of(corpus)):
            return _benchmark_folder_of(corpus)
    for corpus in corpora:
        if (corpus / "manifest.csv").is_file() and is_corpus(corpus):
            return corpus_benchmark(corpus, log)
    log(f"no downloaded real-recordings corpus in {USER_REAL_CORPUS} or {cached_corpus}; if you downloaded it "
        "elsewhere, stop and pass --data THAT_FOLDER")
    from lassbench.corpora.packaged import real_benchmark

    return real_benchmark(log)


def _benchmark_folder_of(corpus: Path) -> Path:
    """Where a corpus's benchmark lives: the cache's own corpus keeps the cache's layout, any other corpus holds
    its benchmark (named ``real`` for the packaged corpus, else after the corpus folder)."""
    from lassbench.paths import cache_dir

    if corpus.resolve() == (cache_dir() / "corpora" / "packaged").resolve():
        return cache_dir() / "benchmarks" / REAL
    return corpus / "benchmarks" / (REAL if _is_packaged(corpus) else corpus.resolve().name)


def _is_packaged(corpus: Path) -> bool:
    from lassbench.corpora.packaged import OWNER_MARK

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
    from lassbench.build import default_benchmark, default_out

    if not (default_out(None, "lassbench") / "dataset.json").is_file():
        log(SYNTH_FIRST_USE_NOTE)
    return Path(default_benchmark(progress=True))
