"""Training examples remixed from sharded sources (``lassbench shard``): each rank and worker reads its own shards.

Every rank has ``streams`` streams (``STREAMS``, fewer when there are too few shards); stream ``s`` of rank ``r`` owns
the shards ``r * streams + s``, ``+ world * streams``, ... — no shard is read by two ranks or two streams. Step ``k``
of a rank is drawn from its stream ``k % streams``; a stream visits its shards in an order shuffled per epoch by
(seed, stream, epoch), and a shard gives as many examples as it holds clips. Each example is the build protocol's
own draw (:func:`lassbench.protocols.lassbench.draw_spec`) over the clips of the one shard it falls in — the shard
is the shuffle buffer — mixed by :func:`lassbench.mixing.render` with the loudness of the shard's index.

So an example is a pure function of (seed, step, rank, world size, shard layout): a resumed run starts at its step
with no replay, and the batches do not depend on ``--workers``. DataLoader workers take steps in turn, so with
``streams`` a multiple of the number of workers (1, 2, 4 or 8 for the default 8) each worker opens only its own
streams' shards; with other numbers of workers the batches are the same but workers share shards.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.shards import SHARDS_DIR, ShardReader, check_shards, read_index, read_shard_index
from lassbench.train_examples import Example, RemixSource

STREAMS = 8  # per rank; a multiple of the usual worker counts (see the module docstring)
OPEN_SHARDS = STREAMS  # shards a worker keeps open and indexed (its streams' current ones)


class _ShardClips(RemixSource):
    """The remixing of :class:`lassbench.train_examples.RemixSource` over one shard's clips, read from the tar."""

    def __init__(self, table: pd.DataFrame, reader: ShardReader, params, seed: int, sample_rate: int,
                 crop: str) -> None:
        super().__init__(table.assign(path=str(reader.path)), params, seed, sample_rate, crop)
        self.reader = reader
        self.ranges = dict(zip(table["source_id"], zip(table["offset"].tolist(), table["size"].tolist(),
                                                        strict=True), strict=True))

    def _read_whole(self, source_id: str) -> np.ndarray:
        return self.reader.read(*self.ranges[source_id])

    def _read_range(self, source_id: str, offset: int, frames: int) -> np.ndarray:
        return self.reader.read(*self.ranges[source_id], start=offset, frames=frames)


class ShardSource:
    """Examples drawn by step from the shards of ``data_dir/shards`` (see the module docstring)."""

    def __init__(self, data_dir: Path, dataset: dict, seed: int, sample_rate: int, crop: str) -> None:
        from lassbench.protocols.lassbench import LassbenchParams

        self.folder = data_dir / SHARDS_DIR
        index = read_index(self.folder)
        if int(index["sample_rate"]) != sample_rate:
            raise LassbenchError(f"{self.folder}: shards at {index['sample_rate']} Hz, the benchmark at "
                                 f"{sample_rate} Hz: rewrite them with lassbench shard")
        check_shards(self.folder, index["shards"])
        known = {f.name for f in fields(LassbenchParams)}
        params = {k: v for k, v in (dataset.get("parameters") or {}).items() if k in known}
        self.params, self.seed, self.sample_rate, self.crop = LassbenchParams(**params), seed, sample_rate, crop
        self.shards = [(s["name"], int(s["clips"])) for s in index["shards"]]
        smallest = min(self.shards, key=lambda shard: shard[1])
        if smallest[1] <= self.params.max_interferers:  # a shard is the pool each of its examples is drawn from
            raise LassbenchError(f"{self.folder}/{smallest[0]}.tar holds {smallest[1]} clip(s): too few to draw a "
                                 f"target and {self.params.max_interferers} interferers; rewrite with a larger "
                                 "lassbench shard --clips-per-shard")
        self.classes = list(index["classes"])
        self.tags = list(index.get("tags", index["classes"]))  # indexes written before tags were recorded: classes
        self.fingerprint = hashlib.sha1(
            f"shards {index['digest']} {json.dumps(params, sort_keys=True, default=str)}".encode()).hexdigest()[:16]
        self.batch_size = self.global_batch = 0
        self._open: OrderedDict[str, _ShardClips] = OrderedDict()

    def bind(self, batch_size: int, global_batch: int) -> None:
        world = global_batch // batch_size
        if len(self.shards) < world:
            raise LassbenchError(f"{self.folder}: {len(self.shards)} shard(s) for {world} processes: each process "
                                 "needs its own; rewrite with a smaller lassbench shard --clips-per-shard")
        self.batch_size, self.global_batch = batch_size, global_batch
        self.streams = min(STREAMS, len(self.shards) // world)
        self.world = world

    def stream_shards(self, rank: int, stream: int) -> list[tuple[str, int]]:
        """The shards (name, clips) owned by ``stream`` of ``rank``."""
        return self.shards[rank * self.streams + stream::self.world * self.streams]

    def locate(self, step: int, rank: int, within: int) -> tuple[str, int]:
        """The shard example ``within`` of ``step`` falls in, and the stream it belongs to."""
        stream = step % self.streams
        owned = self.stream_shards(rank, stream)
        counts = np.array([clips for _, clips in owned])
        position = (step // self.streams) * self.batch_size + within
        epoch, position = divmod(position, int(counts.sum()))
        order = np.random.default_rng([self.seed, rank * self.streams + stream, epoch, 29]).permutation(len(owned))
        ends = np.cumsum(counts[order])
        return owned[int(order[int(np.searchsorted(ends, position, side="right"))])][0], stream

    def example(self, index: int, segment: int) -> Example:
        if not self.batch_size:
            raise RuntimeError("ShardSource.bind() must be called before drawing examples")
        step, rest = divmod(index, self.global_batch)
        rank, within = divmod(rest, self.batch_size)
        name, _ = self.locate(step, rank, within)
        return self._clips(name).example(index, segment)

    def _clips(self, name: str) -> _ShardClips:
        if name in self._open:
            self._open.move_to_end(name)
            return self._open[name]
        if len(self._open) >= OPEN_SHARDS:
            self._open.popitem(last=False)[1].reader.close()
        table = read_shard_index(self.folder, name)
        reader = ShardReader(self.folder / f"{name}.tar")
        self._open[name] = _ShardClips(table, reader, self.params, self.seed, self.sample_rate, self.crop)
        return self._open[name]

    def __getstate__(self) -> dict:
        # sent to DataLoader workers: open files stay behind, each worker opens its own
        return {**self.__dict__, "_open": OrderedDict()}
