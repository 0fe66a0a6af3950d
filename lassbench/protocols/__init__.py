"""Benchmark protocols: how the items of a benchmark are chosen and mixed. One small module per protocol.

==========  ==========================================================================================
name        what it builds
==========  ==========================================================================================
lassbench   lassbench's own loudness-controlled protocol (:mod:`lassbench.protocols.lassbench`)
lassnet     LASS-Net's evaluation pairs and its released mixing rule (:mod:`.lassnet`)
audiosep    AudioSep's six lists: its rendered files as they are, or re-mixed (:mod:`.audiosep`)
dcase2024   DCASE 2024 Task 9 index lists, mixed as its evaluator does (:mod:`.dcase2024`)
clapsep     CLAPSep's five lists with negative captions, mixed as its AudioCaps evaluator does (:mod:`.clapsep`)
==========  ==========================================================================================

Every protocol module exposes ``prepare(frame, request) -> Prepared``: which source clips to read, then a
``plan(usable_ids) -> Plan`` returning :class:`~lassbench.mixing.ItemSpec` s. A module may also expose
``resolve_sources(sources, index) -> ResolvedSources | None`` when the index itself names the files to read (AudioSep's
rendered evaluation data); ``None`` falls back to :func:`lassbench.corpora.resolve_sources`. docs/protocols.md
defines each one. That contract (:class:`BuildRequest`, :class:`Prepared`, :class:`Plan`) is :mod:`.base`; the
index-file toolkit the published protocols share (read, resolve clip names, one item per row) is :mod:`.index`.

Only the ``lassbench`` protocol gates clips by loudness (-70 LUFS, 0.4 s): a published evaluator scores every row it
lists, so under the published protocols a quiet or short clip is built as it is (``Prepared.loudness_gate``).
"""

from __future__ import annotations

import importlib

from lassbench.errors import LassbenchError
from lassbench.protocols.base import BuildRequest, Plan, Prepared, item_id, item_rng

__all__ = ["PROTOCOLS", "BuildRequest", "Plan", "Prepared", "get_protocol", "item_id", "item_rng", "protocol_names"]

PROTOCOLS: dict[str, str] = {
    "lassbench": "lassbench.protocols.lassbench",
    "lassnet": "lassbench.protocols.lassnet",
    "audiosep": "lassbench.protocols.audiosep",
    "dcase2024": "lassbench.protocols.dcase2024",
    "clapsep": "lassbench.protocols.clapsep",
}


def protocol_names() -> list[str]:
    return list(PROTOCOLS)


def get_protocol(name: str):
    """The module implementing protocol ``name``."""
    if name not in PROTOCOLS:
        raise LassbenchError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return importlib.import_module(PROTOCOLS[name])
