"""Soundscapes: events placed at onsets over a real background, kept as a spec that regenerates the scene.

scaper's conventions: every sound of a scene is an *event* with a ``role`` (``target``, ``interferer``,
``background``), a ``source_time`` (where in its source clip it starts, s), an ``event_time`` (its onset in the
scene, s) and an ``event_duration`` (s); a background shorter than the scene is looped to fill it. The loudness of
each event is the item's (``snr_db`` relative to the target's ``target_lufs``, :mod:`lassbench.mixing`); a
``source_duration`` longer or shorter than ``event_duration`` is cut, or (background) looped. A scene
spec (:class:`Scene`, stored as JSON in the item's ``scene`` column) plus the source clips regenerates the scene's
mixture bit-exactly (:func:`lassbench.mixing.regenerate_scene`).

Placement is a pure function of the spec and the clips: each event's samples are
``clip[round(source_time * rate) :][: round(source_duration * rate)]`` (looped, for the background), cut to
``round(event_duration * rate)`` and written at ``round(event_time * rate)`` into zeros of the scene's length.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from lassbench.errors import LassbenchError

ROLES = ("target", "interferer", "background")
ACTIVE_FLOOR_DB = -40.0  # an event's span: its 50 ms frames within 40 dB of its loudest frame


@dataclass(frozen=True)
class Event:
    source_id: str
    role: str
    source_time: float
    event_time: float
    event_duration: float
    source_duration: float  # the source segment; a background's is looped to fill event_duration
    snr_db: float = 0.0  # LU below the target (the target's own is 0)


@dataclass(frozen=True)
class Scene:
    sample_rate: int
    num_samples: int
    target_lufs: float  # the target's planned loudness, before any anti-clipping gain
    events: tuple[Event, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Scene:
        try:
            raw = json.loads(text)
            events = tuple(Event(**e) for e in raw["events"])
            scene = cls(int(raw["sample_rate"]), int(raw["num_samples"]), float(raw["target_lufs"]), events)
        except (TypeError, KeyError, ValueError) as exc:
            raise LassbenchError(f"scene spec: malformed ({exc})") from exc
        if any(e.role not in ROLES for e in events):
            raise LassbenchError(f"scene spec: an event role is not one of {', '.join(ROLES)}")
        if [e.role for e in events[:1]] != ["target"]:
            raise LassbenchError("scene spec: the first event must be the target")
        return scene


def active_span(audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(start, end) in seconds of the part of a clip that sounds (whole 50 ms frames)."""
    hop = max(1, int(0.05 * sample_rate))
    frames = audio[: audio.shape[0] // hop * hop].reshape(-1, hop)
    if frames.size == 0:
        return 0.0, audio.shape[0] / sample_rate
    energy_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(energy_db > energy_db.max() + ACTIVE_FLOOR_DB)
    return float(active[0] * hop / sample_rate), float((active[-1] + 1) * hop / sample_rate)


def place(clip: np.ndarray, event: Event, scene: Scene) -> np.ndarray:
    """One event's samples in the scene (zeros elsewhere); a background is looped over its duration."""
    rate = scene.sample_rate
    start, length = int(round(event.source_time * rate)), int(round(event.event_duration * rate))
    onset = int(round(event.event_time * rate))
    segment = np.asarray(clip[start:start + int(round(event.source_duration * rate))], dtype=np.float32)
    if segment.size == 0:
        raise LassbenchError(f"scene: event {event.source_id} has no samples at source_time {event.source_time}")
    if event.role == "background":
        segment = np.tile(segment, -(-length // segment.size))
    segment = segment[:length]
    out = np.zeros(scene.num_samples, dtype=np.float32)
    segment = segment[: max(0, scene.num_samples - onset)]
    out[onset:onset + segment.size] = segment
    return out


def placed_sources(scene: Scene, audio: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``audio`` with every event's clip replaced by the event as it sits in the scene."""
    placed = dict(audio)
    for event in scene.events:
        if event.source_id not in audio:
            raise LassbenchError(f"scene: no audio for event source {event.source_id}")
        placed[event.source_id] = place(audio[event.source_id], event, scene)
    return placed

