"""Separating every audio file of a folder: one query for all, or a query per file from a CSV.

Resumable: ``separated.csv`` in the output folder records, for each estimate written, the input, query, model and
checkpoint it came from; a rerun skips an estimate already written from the same inputs and redoes one whose query
or model changed. Each estimate is written atomically (by :func:`lassbench.separate.separate_file`), and the record
after it, so an interrupted run keeps every finished file. The model is loaded once, when the first file needs it.
"""

from __future__ import annotations

import csv
import functools
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lassbench.audio import AUDIO_EXTENSIONS, list_audio_files, write_text_atomic
from lassbench.errors import LassbenchError
from lassbench.separate import SeparateConfig, check_input, separate_file
from lassbench.separator import load_separator, to_stderr

RECORD = "separated.csv"
# what an estimate depends on; a column added later reads "" in older records, which is also its default's value
RECORD_COLUMNS = ["output", "input", "query", "model", "checkpoint", "sampler", "negative_query", "text_encoder",
                  "chunking"]


@dataclass(frozen=True)
class FolderJob:
    source: Path
    query: str
    output: Path


@dataclass(frozen=True)
class FolderReport:
    written: list[Path]
    skipped: list[Path]  # already written by an earlier run from the same input, query and model


def plan_folder(input_dir: str | Path, output_dir: str | Path, *, query: str | None = None,
                queries: str | Path | None = None, extension: str = ".wav") -> list[FolderJob]:
    """One job per file: every audio file of ``input_dir`` with ``query``, or the ``file,query`` rows of
    ``queries``; each estimate is ``output_dir/<input stem><extension>``."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise LassbenchError(f"{input_dir}: no such folder")
    if output_dir.resolve() == input_dir.resolve():
        raise LassbenchError(f"{output_dir}: the output folder is the input folder; choose another --output so the "
                             "mixtures are kept")
    if (query is None) == (queries is None):
        raise LassbenchError("give --query (one query for every file) or --queries CSV (file,query rows), not both")
    if queries is None:
        sources = list_audio_files(input_dir)
        if not sources:
            raise LassbenchError(f"{input_dir}: holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        pairs = [(source, query) for source in sources]
    else:
        pairs = [(input_dir / name, text) for name, text in read_queries(queries)]
    jobs = [FolderJob(source, text, output_dir / f"{source.stem}{extension}") for source, text in pairs]
    _refuse_shared_outputs(jobs)
    return jobs


def read_queries(path: str | Path) -> list[tuple[str, str]]:
    """(file name, query) rows of a ``file,query`` CSV; every file once, every query non-empty."""
    path = Path(path)
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
        rows, header = list(reader), set(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LassbenchError(f"{path}: cannot read the queries CSV ({exc})") from exc
    if not {"file", "query"} <= header:
        raise LassbenchError(f"{path}: needs the columns file,query (one row per file to separate)")
    pairs, seen = [], set()
    for line, row in enumerate(rows, start=2):
        name, text = (row["file"] or "").strip(), (row["query"] or "").strip()
        if not name or not text:
            raise LassbenchError(f"{path}, line {line}: empty file or query")
        if name in seen:
            raise LassbenchError(f"{path}, line {line}: {name} is listed twice; one query per file")
        seen.add(name)
        pairs.append((name, text))
    if not pairs:
        raise LassbenchError(f"{path}: lists no files")
    return pairs


def _refuse_shared_outputs(jobs: list[FolderJob]) -> None:
    by_output: dict[Path, Path] = {}
    for job in jobs:
        other = by_output.setdefault(job.output, job.source)
        if other != job.source:
            raise LassbenchError(f"{other.name} and {job.source.name} would both be written to {job.output.name}; "
                                 "rename one")


def separate_folder(jobs: list[FolderJob], config: SeparateConfig, *, progress: bool = True,
                    log: Callable[[str], None] | None = None) -> FolderReport:
    """Run ``jobs`` with the model, checkpoint, device and chunking of ``config`` (its input, output and query are
    the jobs'); skips estimates a previous run already wrote from the same inputs."""
    log = log or to_stderr
    for job in jobs:  # every input is checked before the model loads
        check_input(job.source)
    output_dir = jobs[0].output.parent
    done = _read_record(output_dir / RECORD)
    load = functools.cache(lambda: load_separator(config.model, config.checkpoint, device=config.device,
                                                  text_encoder=config.text_encoder, steps=config.steps,
                                                  sampler_seed=config.sampler_seed))
    written, skipped = [], []
    for job in _bar(jobs, progress):
        row = _record_row(job, config)
        if job.output.is_file() and done.get(row["output"]) == row:
            skipped.append(job.output)
            continue
        separate_file(replace(config, input=str(job.source), output=str(job.output), query=job.query,
                              progress=False), log=log, loaded=load)
        done[row["output"]] = row
        _write_record(output_dir / RECORD, done)
        written.append(job.output)
    return FolderReport(written, skipped)


def _record_row(job: FolderJob, config: SeparateConfig) -> dict[str, str]:
    return {"output": job.output.name, "input": str(job.source.resolve()), "query": job.query,
            "model": config.model, "checkpoint": str(Path(config.checkpoint).resolve()) if config.checkpoint else "",
            "sampler": _sampler_label(config), "negative_query": config.negative_query or "",
            "text_encoder": str(Path(config.text_encoder).resolve()) if config.text_encoder else "",
            "chunking": "" if config.chunk_seconds is None and config.overlap_seconds is None
            else f"{config.chunk_seconds},{config.overlap_seconds}"}


def _sampler_label(config: SeparateConfig) -> str:
    """A generative system's --steps / --sampler-seed ("" for the defaults, as records written before it hold)."""
    if config.steps is None and config.sampler_seed is None:
        return ""
    return f"steps={config.steps if config.steps is not None else 'default'},seed=" + (
        str(config.sampler_seed) if config.sampler_seed is not None else "default")


def _read_record(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["output"]: {c: row.get(c) or "" for c in RECORD_COLUMNS} for row in csv.DictReader(fh)}


def _write_record(path: Path, rows: dict[str, dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RECORD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows[name] for name in sorted(rows))
    write_text_atomic(path, buffer.getvalue())


def _bar(jobs: list[FolderJob], progress: bool):
    from tqdm import tqdm

    return tqdm(jobs, desc="separating", unit="file", file=sys.stderr, disable=not progress, mininterval=1.0)
