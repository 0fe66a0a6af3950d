"""The separator: a loaded text-queried model that separates arrays of any length, rate and level.

Two kinds of model, two ways of running them:

* lassbench's own models (``lassnet``, ``tag-queried``): separated in chunks of ``chunk_seconds`` that overlap by
  ``overlap_seconds`` and are cross-faded (:func:`overlap_add`: complementary linear ramps). They are
  *level-normalised*: they were trained on mixtures around :data:`TRAINING_RMS_DB`, and a mask network fed a mixture
  far louder (or quieter) than that separates badly, so the input is scaled by one gain to that RMS on the way in and
  the estimate divided by the same gain on the way out: ``separate(g * x) == g * separate(x)`` up to float rounding.
* published systems (``lassnet-release``, ``audiosep``, ``dcase2024-baseline``, ``audiosep-dp``) run as their official
  inference runs: no level change, the input (resampled to the system's rate, as ``librosa.load`` does) separated in
  one pass. Past :data:`WHOLE_FILE_SECONDS` the AudioSep family uses its own ``chunk_inference`` (AudioSep's
  ``pipeline.separate_audio(use_chunk=True)``) and ``lassnet-release``, which has none, lassbench's chunks; either
  way a note says so. ``--chunk`` given explicitly runs them in lassbench's chunks, also with a note.

:mod:`lassbench.separate` streams files of any length through a separator.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soxr

from lassbench.errors import LassbenchError
from lassbench.progress import ticking

# Median RMS of the mixtures the shipped models were trained and benchmarked on (lassbench loudness rule, targets at
# -23 LUFS): -20.2 dBFS over 40 synth test mixtures (docs/guarantees.md names the command).
TRAINING_RMS_DB = -20.0
SILENCE_RMS = 1e-9  # below this the input is treated as silence and not scaled
# Published systems separate a file this long or shorter in one pass, as their official inference does: the longest
# clip of their evaluation sets (Clotho, 30 s). A pass holds every layer's activations for the whole file, so longer
# files go through the release's own chunked inference where it has one (perf/published_long_input.py).
WHOLE_FILE_SECONDS = 30.0
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_OVERLAP_SECONDS = 1.0
# How far lassbench's chunks put lassnet-release from one pass: `python perf/published_long_input.py` (36 s,
# seeded weights), quoted in the note a long input gets and in docs/models.md
LONG_INPUT_EXAMPLE = "0.9 dB SDR, 0.77 of the peak at worst, 36 s with seeded weights"
MAX_CHUNK_SECONDS = 600.0  # memory stays flat only while chunks stay bounded
MIN_CHUNK_SECONDS = 0.1
MIN_STEP_SECONDS = 0.01


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def level_gain(rms: float) -> float:
    """The gain that brings a signal of this RMS to :data:`TRAINING_RMS_DB` (1 for silence)."""
    if rms < SILENCE_RMS:
        return 1.0
    return 10.0 ** (TRAINING_RMS_DB / 20.0) / rms


def check_chunking(chunk_seconds: float | None, overlap_seconds: float | None) -> None:
    chunk_seconds, overlap_seconds = _chunking(chunk_seconds, overlap_seconds)
    if not (math.isfinite(chunk_seconds) and chunk_seconds > 0):
        raise LassbenchError(f"--chunk must be a positive number of seconds, not {chunk_seconds}")
    if chunk_seconds > MAX_CHUNK_SECONDS:  # one chunk is one forward pass: its spectrogram is held in memory
        raise LassbenchError(f"--chunk {chunk_seconds:g} s is too long: at most {MAX_CHUNK_SECONDS:g} s per chunk")
    if chunk_seconds < MIN_CHUNK_SECONDS:  # shorter chunks give one forward pass per few samples
        raise LassbenchError(f"--chunk {chunk_seconds:g} s is too short: at least {MIN_CHUNK_SECONDS:g} s per chunk")
    # MIN_STEP_SECONDS: the hop between chunks, also after rounding to samples at any model rate
    if not (math.isfinite(overlap_seconds) and 0 <= overlap_seconds <= chunk_seconds - MIN_STEP_SECONDS):
        raise LassbenchError(f"--overlap must be at least 0 and at least {MIN_STEP_SECONDS:g} s shorter than --chunk")


def _chunking(chunk_seconds: float | None, overlap_seconds: float | None) -> tuple[float, float]:
    return (DEFAULT_CHUNK_SECONDS if chunk_seconds is None else chunk_seconds,
            DEFAULT_OVERLAP_SECONDS if overlap_seconds is None else overlap_seconds)


def chunk_sizes(chunk_seconds: float | None, overlap_seconds: float | None, rate: int) -> tuple[int, int]:
    """(chunk, overlap) in samples at ``rate``; ``None``: the default (10 s chunks, 1 s overlap)."""
    chunk_seconds, overlap_seconds = _chunking(chunk_seconds, overlap_seconds)
    chunk = max(1, int(round(chunk_seconds * rate)))
    overlap = int(round(overlap_seconds * rate))
    if not 0 <= overlap < chunk:
        raise LassbenchError("--overlap must be shorter than --chunk")
    return chunk, overlap


def check_negative_query(model: str, negative: str | None, accepted: bool) -> None:
    if negative is None:
        return
    if not accepted:
        raise LassbenchError(f"model '{model}' takes no negative query: --negative-query is for clapsep")
    if not negative.strip():
        raise LassbenchError("empty --negative-query: describe the sound to leave out, or omit the option")


def check_query(query: str) -> None:
    if not query.strip():
        raise LassbenchError("empty query: describe the sound to separate, e.g. --query 'a dog barks'")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:  # bytes that are not UTF-8 reach Python as lone surrogates
        raise LassbenchError(f"the query is not UTF-8 text ({ascii(query)}): check the terminal's encoding") from exc


def check_device(device: str) -> None:
    """Refuse a device torch does not know or this machine does not have, before anything is loaded."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError) as exc:
        raise LassbenchError(f"unknown --device '{device}': use cpu, cuda, cuda:N or mps") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise LassbenchError(f"--device {device}: torch sees no CUDA GPU on this machine; use --device cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise LassbenchError(f"--device {device}: MPS is not available on this machine; use --device cpu")


def _check_class(model, query: str) -> None:
    """A class-conditioned model takes no free text: the query must name one of the classes it was trained on."""
    classes = getattr(model, "class_index", None)
    if classes is not None and query not in classes:
        raise LassbenchError(f"the class-conditioned model takes a class name as the query, not {query!r}: "
                             f"give --query one of: {'; '.join(sorted(classes))}")


def _check_tags(separator: Separator, query: str) -> None:
    """A tag-queried model was trained on class tags: refuse tags its checkpoint says it never saw."""
    if separator.query_type != "tags" or separator.tags is None:
        return
    known = set(separator.tags)
    unknown = [] if query in known else [t.strip() for t in query.split(",") if t.strip() not in known]
    if unknown:
        raise LassbenchError(f"the tag-queried model was never trained on the tag(s) {', '.join(map(repr, unknown))}: "
                             f"give --query one or more of (comma-separated): {'; '.join(separator.tags)}")


class Separator:
    """A loaded text-queried model that separates arrays of any length, rate and level."""

    level_normalised = True  # lassbench's own models; published systems run at the input's own level
    official_chunking = False  # a published system with its own long-audio inference (AudioSep's chunk_inference)

    def __init__(self, model, name: str, query_type: str, device: str = "cpu", tags: list[str] | None = None) -> None:
        self.model = model
        self.name = name
        self.query_type = query_type
        self.device = device
        self.tags = tags  # tag-queried: the tags its checkpoint was trained on, when it records them
        # lassbench's models carry a config; published systems (models/published) their rate and STFT size
        backbone = getattr(getattr(model, "config", None), "backbone", None)
        self.sample_rate = int(getattr(model, "sample_rate", None) or backbone.sample_rate)
        self._min_length = 2 * int(getattr(model, "n_fft", None) or backbone.n_fft)  # reflect padding needs frames
        published = getattr(model, "spec", None)
        self.level_normalised = published is None
        self.official_chunking = published is not None and published.family == "resunet30"

    def chunk_function(self, query: str, negative_query: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
        """Mono float32 chunk at :attr:`sample_rate` -> same-length estimate, for :func:`overlap_add`."""
        import torch

        from lassbench.models.lassnet import QueryBatch

        check_query(query)
        check_negative_query(self.name, negative_query, getattr(self.model, "takes_negative_query", False))
        _check_class(self.model, query)
        _check_tags(self, query)
        batch = QueryBatch([query], labels=[[query]], negatives=[negative_query] if negative_query else None)

        def apply(chunk: np.ndarray) -> np.ndarray:
            padded = np.pad(chunk, (0, max(0, self._min_length - len(chunk))))
            with torch.no_grad():
                mixture = torch.from_numpy(np.ascontiguousarray(padded, dtype=np.float32))[None].to(self.device)
                return self.model(mixture, batch).cpu().numpy()[0, : len(chunk)]

        return apply

    def segmenting(self, seconds: float, chunk_seconds: float | None = None) -> tuple[str, str | None]:
        """How an input of ``seconds`` is cut: ``"whole"`` (one pass), ``"official-chunks"`` (the release's
        ``chunk_inference``) or ``"chunks"`` (lassbench's cross-faded chunks); and the note that tells the user when
        a published system does not run as its official inference does (``None`` otherwise)."""
        if self.level_normalised:
            return "chunks", None
        official = f"{self.name}'s official inference separates a file in one pass"
        if chunk_seconds is not None:
            return "chunks", (f"note: --chunk given: {self.name} separated in lassbench's {chunk_seconds:g} s chunks, "
                              f"cross-faded; {official}")
        if seconds <= WHOLE_FILE_SECONDS:
            return "whole", None
        longer = f"note: the input ({seconds:.1f} s) is longer than {WHOLE_FILE_SECONDS:g} s"
        if self.official_chunking:
            return "official-chunks", (f"{longer}: separated with the release's own chunk_inference (5 s windows, each "
                                       "keeping its middle 3 s; AudioSep's separate_audio with use_chunk=True), not "
                                       "in one pass")
        return "chunks", (f"{longer}: separated in lassbench's {DEFAULT_CHUNK_SECONDS:g} s chunks cross-faded over "
                          f"{DEFAULT_OVERLAP_SECONDS:g} s; {official}, and the two differ (by {LONG_INPUT_EXAMPLE} "
                          "on a measured example: docs/models.md)")

    def separate(self, audio: np.ndarray, sample_rate: int, query: str, *, chunk_seconds: float | None = None,
                 overlap_seconds: float | None = None, negative_query: str | None = None,
                 log: Callable[[str], None] = to_stderr) -> np.ndarray:
        """The estimate of ``query`` in ``audio`` (``(n,)``, or ``(channels, n)`` whose channels are separated one
        by one), at ``sample_rate`` and the same shape as the input. lassbench's own models run level-normalised in
        chunks (default 10 s, 1 s cross-fade); published systems as their official inference (see
        :meth:`segmenting`). ``negative_query``: what not to separate, for models that take one (clapsep)."""
        check_chunking(chunk_seconds, overlap_seconds)
        audio = _checked_shape(audio, sample_rate)
        if audio.ndim == 2:  # the models are mono: each channel is separated on its own
            return np.stack([self.separate(channel, sample_rate, query, chunk_seconds=chunk_seconds,
                                           overlap_seconds=overlap_seconds, negative_query=negative_query, log=log)
                             for channel in audio])
        gain = level_gain(float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))) if self.level_normalised else 1.0
        at_model = soxr.resample(audio * np.float32(gain), sample_rate, self.sample_rate).astype(np.float32)
        plan, note = self.segmenting(len(audio) / sample_rate, chunk_seconds)
        if note:
            log(note)
        if plan == "chunks":
            chunk, overlap = chunk_sizes(chunk_seconds, overlap_seconds, self.sample_rate)
            pieces = [p for p, _ in overlap_add([at_model], self.chunk_function(query, negative_query), chunk,
                                                overlap)]
            separated = np.concatenate(pieces)
        else:
            separated = self._one_pass(at_model, query, negative_query, official_chunks=plan == "official-chunks")
        estimate = soxr.resample(separated, self.sample_rate, sample_rate).astype(np.float32)
        estimate = np.pad(estimate[: len(audio)], (0, max(0, len(audio) - len(estimate))))
        return estimate / np.float32(gain)

    def _one_pass(self, audio: np.ndarray, query: str, negative_query: str | None, *,
                  official_chunks: bool) -> np.ndarray:
        """A published system on the whole input, as its release runs a file (or through its chunk_inference)."""
        if not official_chunks:
            return self.chunk_function(query, negative_query)(audio)
        net = self.model.net
        net.chunked = True
        try:
            return self.chunk_function(query, negative_query)(audio)
        finally:
            net.chunked = False


def _checked_shape(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``audio`` as float32 ``(n,)`` or ``(channels, n)``, refused in one line where it is neither."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[0] > audio.shape[1]:  # soundfile's (n, channels): easy to pass by mistake
        raise LassbenchError(f"audio of shape {audio.shape} looks like (n, channels) as soundfile.read returns; "
                             "pass (channels, n) — e.g. audio.T — or one channel")
    if audio.ndim not in (1, 2) or audio.size == 0:
        raise LassbenchError(f"audio must be a non-empty (n,) or (channels, n) array, not shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise LassbenchError("audio holds NaN or infinite samples")
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise LassbenchError(f"sample_rate must be a positive integer, not {sample_rate!r}")
    return audio


def load_separator(model: str = "lassnet", checkpoint: str | Path | None = None, *, device: str = "cpu",
                   text_encoder: str | None = None, steps: int | None = None,
                   sampler_seed: int | None = None) -> Separator:
    """A text-queried model ready to separate: ``checkpoint`` or the one shipped for ``model``. ``steps`` and
    ``sampler_seed`` replace a generative system's official sampler defaults (refused by the other models)."""
    from lassbench.models.registry import check_sampler_options

    entry = text_model_entry(model)
    check_device(device)
    check_sampler_options(model, steps, sampler_seed)
    path = Path(checkpoint) if checkpoint else entry.shipped_checkpoint()
    if path is None:
        raise LassbenchError(f"no checkpoint ships for '{model}': pass --checkpoint")
    with ticking(f"loading {model}"):  # importing torch and the text encoder takes seconds
        from lassbench.models.registry import load_model

        loaded, payload = load_model(path, expected=model, device=device, text_encoder=text_encoder)
    if steps is not None or sampler_seed is not None:
        loaded.set_sampler(steps, sampler_seed)
    if entry.query_type == "tags" and payload.get("tags") is None:  # checkpoints trained before tags were recorded
        to_stderr(f"note: {path.name} does not record the tags it was trained on, so tag queries are not checked")
    return Separator(loaded, model, entry.query_type, device, tags=payload.get("tags"))


def text_model_entry(model: str):
    from lassbench.models.registry import get_model_entry

    entry = get_model_entry(model)
    if entry.query_type not in ("caption", "tags", "class-id"):  # class-id: --query names one of its classes
        raise LassbenchError(f"model '{model}' cannot take a text query (query type: {entry.query_type})")
    return entry



def overlap_add(blocks, apply, chunk: int, overlap: int) -> Iterator[tuple[np.ndarray, bool]]:
    """Yield (finished output samples, is_last) from chunks of ``chunk`` samples advancing by ``chunk - overlap``."""
    step = chunk - overlap
    fade_in = np.linspace(0.0, 1.0, overlap + 2, dtype=np.float32)[1:-1]
    buffer = np.zeros(0, dtype=np.float32)
    tail = np.zeros(0, dtype=np.float32)  # estimate of the overlap region, waiting for the next chunk
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while len(buffer) >= chunk + step:  # keep enough so the final chunk is never tiny
            estimate = apply(buffer[:chunk])
            yield _crossfade(tail, estimate, fade_in)[:step], False
            tail = estimate[step:]
            buffer = buffer[step:]
    if len(buffer):
        estimate = apply(buffer)
        yield _crossfade(tail, estimate, fade_in), True
    else:
        yield tail, True


def _crossfade(tail: np.ndarray, estimate: np.ndarray, fade_in: np.ndarray) -> np.ndarray:
    if not len(tail):
        return estimate
    n = min(len(tail), len(estimate))
    out = estimate.copy()
    out[:n] = tail[:n] * (1.0 - fade_in[:n]) + estimate[:n] * fade_in[:n]
    return out

