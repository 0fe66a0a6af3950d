"""Streaming separation + scoring for ``lassbench run``: bounded memory, resumable, split across torchrun ranks.

An item's estimate depends on the model, its checkpoint, the item and its query only, never on its batch: a batch
holds items of one length and rate, so nothing is ever padded before the model (convolutions, the last STFT frames
and a U-Net's padding to a multiple of its stride would all see the padding). Items are grouped by the sample count
and rate in their mixture's header, each group cut into batches of ``batch_size`` in manifest order, and the batches
ordered by their first item: a pure function of the manifest and the files, so a batch holds the same items however
many processes run or how often the run was interrupted. An item whose length no other item shares goes alone.
Rank ``r`` of ``world`` owns batches ``r, r+world, ...``. A DataLoader's workers read the batches ahead; each batch
is scored as it finishes and its score rows are appended as ONE JSON line to ``OUT/.partial/rank<r>.jsonl``
(flushed), so a kill loses at most the batch in flight and a torn last line is dropped on resume. Each partial file
starts with the run's fingerprint: rows made with other options are never reused. Only the score rows stay in
memory; :func:`merge_partials` orders them back into manifest order.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lassbench.audio import audio_info, read_audio, write_audio
from lassbench.controls import QUIET_THRESHOLD_DB, VariantPlan, false_separation
from lassbench.distributed import Distributed, all_ranks_ok
from lassbench.errors import LassbenchError
from lassbench.evaluate import evaluate_arrays
from lassbench.models.lassnet import QueryBatch

PARTIAL_DIR = ".partial"
Separator = Callable[[torch.Tensor, QueryBatch], torch.Tensor]


SMALL_SEPARATOR = 5_000_000  # parameters (text encoder excluded): the shipped tiny models have 1.3 M


def default_batch_size(device: str, parameters: int = 0) -> int:
    """Items separated together: 8 on an accelerator, where a batch keeps the device busy; on CPU, 8 for a small
    separator (a batch shares each layer's fixed cost: faster per item, docs/performance.md) and 1 for a
    full-size one, whose peak memory then stays at one item's. Batches only ever hold items of one length."""
    if torch.device(device).type != "cpu" or parameters < SMALL_SEPARATOR:
        return 8
    return 1


def default_workers() -> int:
    """Reader processes: enough to keep one separator busy on a small machine, none on a single core."""
    return min(2, max(0, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    def batches(self, n_batches: int) -> list[int]:
        return list(range(self.rank, n_batches, self.world))


def item_shapes(data_dir: Path, ids: list[str]) -> list[tuple[int, int]]:
    """(samples, rate) of every item's mixture, from its header (nothing is decoded)."""
    infos = (audio_info(Path(data_dir) / "mixture" / f"{item}.wav") for item in ids)
    return [(info.num_samples, info.sample_rate) for info in infos]


def equal_length_batches(shapes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Item indexes cut into batches of at most ``batch_size`` items of one (samples, rate), in manifest order
    within a shape, batches ordered by their first item. Items of equal length keep the batches of manifest order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(index)
    batches = [members[start:start + batch_size] for members in groups.values()
               for start in range(0, len(members), batch_size)]
    return sorted(batches, key=lambda batch: batch[0])


class BatchReader(Dataset):
    """Batch ``b`` of a plan: mixtures and references of items of one length, read from disk.
    ``shapes`` (:func:`item_shapes`) are read from the headers when not given.
    Read errors come back as ``{"error": text}`` so a worker's failure stays one line in the main process."""

    def __init__(self, data_dir: Path, ids: list[str], plan: VariantPlan, batch_size: int,
                 shapes: list[tuple[int, int]] | None = None):
        self.data_dir, self.ids, self.plan = Path(data_dir), list(ids), plan
        shapes = item_shapes(self.data_dir, self.ids) if shapes is None else shapes
        self.batches = equal_length_batches(shapes, batch_size)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> dict:
        span = self.batches[b]
        try:
            read = [read_audio(self.data_dir / "mixture" / f"{self.ids[i]}.wav") for i in span]
            mixtures, rates = [audio for audio, _ in read], [rate for _, rate in read]
            if len({len(m) for m in mixtures}) > 1:
                raise LassbenchError(f"{self.data_dir / 'mixture'}: mixtures changed length while running; "
                                     "rerun the same command")
            references = [_fit(self._reference(i, len(m)), len(m)) for i, m in zip(span, mixtures, strict=True)]
        except LassbenchError as exc:
            return {"error": str(exc)}
        return {
            "batch": b, "index": list(span), "ids": [self.ids[i] for i in span], "rates": rates,
            "mixture": torch.from_numpy(np.stack(mixtures)), "reference": torch.from_numpy(np.stack(references)),
            "queries": [self.plan.queries[i] for i in span], "labels": [self.plan.labels[i] for i in span],
            "negatives": None if self.plan.negatives is None else [self.plan.negatives[i] for i in span],
        }

    def _reference(self, i: int, length: int) -> np.ndarray:
        relative = self.plan.references[i]
        if relative is None:  # absent: nothing to find; oracles get silence
            return np.zeros(length, dtype=np.float32)
        return read_audio(self.data_dir / relative)[0]


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    """A reference scored over its mixture's span: cut, or zero-padded where it ends first."""
    return audio[:length] if len(audio) >= length else np.pad(audio, (0, length - len(audio)))


# ------------------------------------------------------------------------------------------------ one shard


def run_shards(separate: Separator, reader: BatchReader, partial_dir: Path, fingerprint: str, *, dist: Distributed,
               system: str, **options) -> None:
    """:func:`run_shard` over this rank's share of the batches (``options``: its keywords); then every rank raises
    when any rank failed (its own error, or a line saying another process failed), so none waits on the others."""
    failure = None
    try:
        run_shard(separate, reader, partial_dir, fingerprint, shard=Shard(dist.rank, dist.world),
                  desc=f"separate {system}", **options)
    except (LassbenchError, OSError) as exc:
        failure = exc
    if not all_ranks_ok(failure is None, dist, options["device"]):
        if failure is not None:
            raise failure
        raise LassbenchError(f"another process failed while separating {system}; see its message above")


def run_shard(separate: Separator, reader: BatchReader, partial_dir: Path, fingerprint: str, *, shard: Shard,
              metrics: tuple[str, ...], workers: int, device: str, estimates_dir: Path | None = None,
              desc: str = "separate", clap=None, convention: str = "zero-mean", fad=None, judge=None) -> None:
    """Separate and score this rank's batches not yet in a partial file; append each batch's rows as it finishes.
    ``clap`` (a :class:`lassbench.clapscore.ClapScorer`) adds the reference-free CLAPScore columns to every row,
    ``judge`` (a :class:`lassbench.judge.JudgeScorer`) the SAM Audio judge's four scores;
    ``fad`` (a :class:`lassbench.fad.FadScorer`) the estimate's and reference's embeddings, for the run's FAD."""
    mine = shard.batches(len(reader))
    done = done_batches(partial_dir, fingerprint)
    todo = [b for b in mine if b not in done]
    own = _open_partial(partial_dir / f"rank{shard.rank}.jsonl", fingerprint)
    loader = DataLoader(reader, batch_size=None, sampler=todo, num_workers=workers,
                        prefetch_factor=2 if workers else None)
    bar = tqdm(total=sum(_batch_size(reader, b) for b in mine), initial=sum(_batch_size(reader, b) for b in mine
               if b in done), desc=desc, unit="item", dynamic_ncols=True, disable=shard.rank != 0)
    try:
        for batch in loader:
            if "error" in batch:
                raise LassbenchError(batch["error"])
            estimates = _separate(separate, batch, device)
            if estimates_dir is not None:
                for item_id, estimate, rate in zip(batch["ids"], estimates, batch["rates"], strict=True):
                    write_audio(estimates_dir / f"{item_id}.wav", estimate, rate)
            rows = score_batch(batch, estimates, metrics, reader.plan.scores_false_separation, convention)
            for scorer in (clap, judge):  # reference-free: every variant's rows, with the variant's queries
                if scorer is not None:
                    extra = scorer.score_rows(batch["ids"], batch["queries"], estimates,
                                              list(batch["mixture"].numpy()), batch["rates"])
                    rows = [{**row, **extra[row["item"]]} for row in rows]
            if fad is not None and not reader.plan.scores_false_separation:
                extra = fad.embed_rows(batch["ids"], estimates, list(batch["reference"].numpy()), batch["rates"])
                rows = [{**row, **extra[row["item"]]} for row in rows]
            own.write(json.dumps({"batch": batch["batch"], "rows": rows}) + "\n")
            own.flush()
            bar.update(len(rows))
            give_freed_memory_back()
    finally:
        own.close()
        bar.close()


def give_freed_memory_back() -> None:
    """Hand the memory freed by the last batch back to the OS (glibc's ``malloc_trim``), once per batch.

    glibc keeps freed buffers for reuse and raises its mmap threshold as large buffers are freed, so without a trim
    a long run's heap keeps batch-sized holes. Serving every buffer over 128 KiB by mmap instead returns each one at
    once, but then every intermediate tensor of every layer is fresh memory to fault in (about twice the page faults
    of the whole run: docs/performance.md). One trim per batch keeps the reuse inside a batch and returns the rest
    between batches. No-op where there is no glibc.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl or another libc: keep its defaults
        return None


def _batch_size(reader: BatchReader, b: int) -> int:
    return len(reader.batches[b])


def _separate(separate: Separator, batch: dict, device: str) -> list[np.ndarray]:
    query = QueryBatch(queries=batch["queries"], labels=batch["labels"], targets=batch["reference"],
                       negatives=batch.get("negatives"))
    with torch.no_grad():
        output = separate(batch["mixture"].to(device), query.to_device(device)).cpu().numpy()
    return list(output)


def score_batch(batch: dict, estimates: list[np.ndarray], metrics: tuple[str, ...],
                false_separation_only: bool, convention: str = "zero-mean") -> list[dict]:
    mixtures = list(batch["mixture"].numpy())
    if false_separation_only:
        levels = [false_separation(e, m) for e, m in zip(estimates, mixtures, strict=True)]
        return [{"item": i, "false_separation_db": v, "below_-20db": float(v < QUIET_THRESHOLD_DB)}
                for i, v in zip(batch["ids"], levels, strict=True)]
    references = list(batch["reference"].numpy())
    frame = evaluate_arrays(zip(batch["ids"], references, estimates, mixtures, strict=True), metrics=list(metrics),
                            convention=convention)
    return frame.to_dict("records")


# ------------------------------------------------------------------------------------------------ partial files


def done_batches(partial_dir: Path, fingerprint: str) -> set[int]:
    """Batches written completely, by any rank, with this fingerprint."""
    return {b for b, _ in _read_partials(partial_dir, fingerprint)}


def _read_partials(partial_dir: Path, fingerprint: str):
    if not partial_dir.is_dir():
        return
    for path in sorted(partial_dir.glob("rank*.jsonl")):
        lines, _ = _complete_lines(path)
        if not lines or _header(lines[0]) != fingerprint:
            continue
        for line in lines[1:]:
            record = _parse(line)
            if record is not None:
                yield int(record["batch"]), record["rows"]


def _complete_lines(path: Path) -> tuple[list[str], bool]:
    """The file's complete lines, and whether a torn (unterminated) last line follows them."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [], False
    *lines, tail = text.split("\n")  # tail: "" after a complete last line, else a line cut off mid-write
    return lines, tail != ""


def _parse(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "batch" in record and "rows" in record else None


def _header(line: str) -> str | None:
    try:
        return json.loads(line).get("fingerprint")
    except (ValueError, AttributeError):
        return None


def _open_partial(path: Path, fingerprint: str):
    """Append handle to this rank's partial file: kept when its fingerprint matches (a torn last line cut off),
    started afresh otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines, torn = _complete_lines(path) if path.is_file() else ([], False)
    if lines and _header(lines[0]) == fingerprint:
        keep = [lines[0], *(line for line in lines[1:] if _parse(line) is not None)]
        if torn or len(keep) != len(lines):
            _rewrite(path, keep)
    else:
        _rewrite(path, [json.dumps({"fingerprint": fingerprint})])
    return path.open("a", encoding="utf-8")


def _rewrite(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def merge_partials(partial_dir: Path, fingerprint: str, total_batches: int,
                   order: list[str] | None = None) -> list[dict]:
    """Every batch's rows, in the item order ``order`` (the manifest's ids) or else in batch order; one error when a
    batch is missing."""
    by_batch: dict[int, list[dict]] = {}
    for b, rows in _read_partials(partial_dir, fingerprint):
        by_batch.setdefault(b, rows)
    missing = [b for b in range(total_batches) if b not in by_batch]
    if missing:
        raise LassbenchError(f"{partial_dir}: {len(missing)} batch(es) of scores missing (first: {missing[0]}); "
                             "rerun the same command to finish them")
    rows = [row for b in range(total_batches) for row in by_batch[b]]
    if order is None:
        return rows
    position = {item: k for k, item in enumerate(order)}
    return sorted(rows, key=lambda row: position[row["item"]])


def remove_partials(partial_dir: Path) -> None:
    shutil.rmtree(partial_dir, ignore_errors=True)
