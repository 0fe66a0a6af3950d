"""``lassbench separate``: one file (or array), one query, any length, any sample rate, any level.

Two kinds of model, two ways of running them:

* lassbench's own models (``lassnet``, ``tag-queried``): the file is streamed — read in blocks, resampled to the
  model's rate with a streaming resampler, separated in chunks of ``chunk_seconds`` that overlap by
  ``overlap_seconds`` and are cross-faded (overlap-add with complementary linear ramps), resampled back and written
  block by block; memory stays flat however long the file is. They are *level-normalised*: they were trained on
  mixtures around :data:`TRAINING_RMS_DB`, and a mask network fed a mixture far louder (or quieter) than that
  separates badly, so the input is scaled by one gain to that RMS on the way in and the estimate divided by the same
  gain on the way out: ``separate(g * x) == g * separate(x)`` up to float rounding.
* published systems (``lassnet-release``, ``audiosep``, ``dcase2024-baseline``, ``audiosep-dp``) run as their official
  inference runs: no level change, the file (resampled to the system's rate, as ``librosa.load`` does) separated in
  one pass. Past :data:`WHOLE_FILE_SECONDS` the AudioSep family uses its own ``chunk_inference`` (AudioSep's
  ``pipeline.separate_audio(use_chunk=True)``) and ``lassnet-release``, which has none, lassbench's chunks; either
  way a note says so. ``--chunk`` given explicitly runs them in lassbench's chunks, also with a note.

Everything that can be checked is checked before the model is loaded (see :func:`check_output`,
:func:`check_input`, :func:`scan_input`): the output's format, folder and that it is not the input; that the input
exists, is not empty or truncated, and holds no NaN/Inf. The cheap checks import no torch, so a typo fails at once.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from lassbench.audio import atomic_path, audio_write_errors, sweep_stale_temps, wav_shortfall
from lassbench.errors import LassbenchError
from lassbench.progress import ticking

READ_BLOCK = 65536
SCAN_BLOCK = 1 << 20  # the check pass only decodes and sums: bigger blocks, fewer Python steps
# Median RMS of the mixtures the shipped models were trained and benchmarked on (lassbench loudness rule, targets at
# -23 LUFS): -20.2 dBFS over 40 synth test mixtures (docs/guarantees.md names the command).
TRAINING_RMS_DB = -20.0
SILENCE_RMS = 1e-9  # below this the input is treated as silence and not scaled
LONG_FILE_SECONDS = 30.0  # longer inputs get a progress bar
# Published systems separate a file this long or shorter in one pass, as their official inference does: the longest
# clip of their evaluation sets (Clotho, 30 s). A pass holds every layer's activations for the whole file, so longer
# files go through the release's own chunked inference where it has one (benchmarks/published_long_input.py).
WHOLE_FILE_SECONDS = 30.0
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_OVERLAP_SECONDS = 1.0
# How far lassbench's chunks put lassnet-release from one pass: `python benchmarks/published_long_input.py` (36 s,
# seeded weights), quoted in the note a long input gets and in docs/models.md
LONG_INPUT_EXAMPLE = "0.9 dB SDR, 0.77 of the peak at worst, 36 s with seeded weights"
MAX_CHUNK_SECONDS = 600.0  # memory stays flat only while chunks stay bounded
MIN_CHUNK_SECONDS = 0.1
MIN_STEP_SECONDS = 0.01

# extension -> (soundfile format, subtype). FLOAT keeps samples beyond full scale; integer and lossy formats cannot,
# so their samples are clipped explicitly (libsndfile would wrap them around) and the clipping is reported.
_FORMATS = {
    ".wav": ("WAV", "FLOAT"),
    ".flac": ("FLAC", "PCM_24"),
    ".ogg": ("OGG", "VORBIS"),
    ".aiff": ("AIFF", "FLOAT"),
    ".aif": ("AIFF", "FLOAT"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
OUTPUT_FORMATS = {ext: spec for ext, spec in _FORMATS.items() if spec[0] in sf.available_formats()}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class SeparateConfig:
    input: str
    output: str
    query: str = ""
    model: str = "lassnet"
    checkpoint: str | None = None
    device: str = "cpu"
    chunk_seconds: float | None = None  # None: the model's own segmenting (lassbench's models: 10 s chunks)
    overlap_seconds: float | None = None  # None: 1 s
    progress: bool = True
    text_encoder: str | None = None  # published systems: the tokenizer folder (docs/models.md)
    negative_query: str | None = None  # what not to separate: models that take one (clapsep) only


@dataclass(frozen=True)
class InputScan:
    """What one full read of the input found (its header may claim more than the file holds)."""

    sample_rate: int
    frames: int
    channels: int
    rms: float  # of the mono downmix that is separated


# ---------------------------------------------------------------------------------------------------- checks


def check_output(input_path: str | Path, output_path: str | Path) -> tuple[str, str]:
    """The (format, subtype) ``output_path``'s extension asks for, after refusing outputs that would lose data."""
    output = Path(output_path)
    spec = OUTPUT_FORMATS.get(output.suffix.lower())
    if spec is None:
        raise LassbenchError(f"{output}: cannot write '{output.suffix or '(no extension)'}' audio: "
                             f"use one of {', '.join(OUTPUT_FORMATS)}")
    if _same_file(Path(input_path), output):
        raise LassbenchError(f"{output}: the output is the input file; choose another --output so the mixture is kept")
    if output.is_dir():
        raise LassbenchError(f"{output}: is a folder; --output must be a file name")
    folder = _nearest_existing(output.parent)
    if not folder.is_dir():
        raise LassbenchError(f"{output}: cannot create it: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LassbenchError(f"{output}: cannot write there: {folder} is not writable")
    return spec


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():  # also catches symlinks and other spellings of one path
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _nearest_existing(folder: Path) -> Path:
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_input(path: str | Path):
    """Header checks that take no time: the file exists, is audio, is not empty and not truncated; its sf.info."""
    path = Path(path)
    if not path.exists():
        raise LassbenchError(f"{path}: no such file")
    if not path.is_file():
        raise LassbenchError(f"{path}: not a file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for one cause: unreadable
        raise LassbenchError(f"{path}: cannot read audio ({_short(exc)})") from exc
    if info.frames == 0:
        raise LassbenchError(f"{path}: holds no samples (0 frames)")
    shortfall = wav_shortfall(path)
    if shortfall is not None:
        declared, present = shortfall
        raise LassbenchError(f"{path}: truncated: its header declares {declared} bytes of samples but the file holds "
                             f"{present}; re-copy or re-download it")
    return info


def scan_input(path: str | Path, *, progress: bool = False) -> InputScan:
    """Read the whole input once (block by block): every sample finite, how many frames really decode, the RMS."""
    path = Path(path)
    info = check_input(path)
    frames, energy = 0, 0.0
    with _open(path) as source, _bar(info.frames, info.samplerate, "checking", progress) as bar:
        for block in _blocks(source, path, SCAN_BLOCK):
            mono = _mono(block).astype(np.float64)
            block_energy = float(np.dot(mono, mono))
            if not math.isfinite(block_energy):  # NaN or Inf somewhere in the block
                bad = frames + int(np.argmin(np.isfinite(mono)))
                raise LassbenchError(f"{path}: holds NaN or infinite samples (first at {bad / info.samplerate:.3f} s);"
                                     " repair the file before separating it")
            energy += block_energy
            frames += len(block)
            bar.update(min(len(block), bar.total - bar.n))  # the header may promise fewer frames
    if frames == 0:
        raise LassbenchError(f"{path}: holds no samples (0 frames decode)")
    if frames < info.frames and info.format != "MP3":  # an MP3 header's frame count may be an estimate
        raise LassbenchError(f"{path}: truncated: its header declares {info.frames} frames but only {frames} decode")
    return InputScan(int(info.samplerate), frames, int(info.channels), math.sqrt(energy / frames))


def level_gain(rms: float) -> float:
    """The gain that brings a signal of this RMS to :data:`TRAINING_RMS_DB` (1 for silence)."""
    if rms < SILENCE_RMS:
        return 1.0
    return 10.0 ** (TRAINING_RMS_DB / 20.0) / rms


def _check_chunking(chunk_seconds: float | None, overlap_seconds: float | None) -> None:
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


def _check_negative_query(model: str, negative: str | None, accepted: bool) -> None:
    if negative is None:
        return
    if not accepted:
        raise LassbenchError(f"model '{model}' takes no negative query: --negative-query is for clapsep")
    if not negative.strip():
        raise LassbenchError("empty --negative-query: describe the sound to leave out, or omit the option")


def _check_query(query: str) -> None:
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


# ---------------------------------------------------------------------------------------------------- the model


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

        _check_query(query)
        _check_negative_query(self.name, negative_query, getattr(self.model, "takes_negative_query", False))
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
                 log: Callable[[str], None] = _stderr) -> np.ndarray:
        """The estimate of ``query`` in ``audio`` (``(n,)``, or ``(channels, n)`` whose channels are separated one
        by one), at ``sample_rate`` and the same shape as the input. lassbench's own models run level-normalised in
        chunks (default 10 s, 1 s cross-fade); published systems as their official inference (see
        :meth:`segmenting`). ``negative_query``: what not to separate, for models that take one (clapsep)."""
        _check_chunking(chunk_seconds, overlap_seconds)
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
            chunk, overlap = _chunk_sizes(*_chunking(chunk_seconds, overlap_seconds), self.sample_rate)
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
                   text_encoder: str | None = None) -> Separator:
    """A text-queried model ready to separate: ``checkpoint`` or the one shipped for ``model``."""
    entry = _text_model_entry(model)
    check_device(device)
    path = Path(checkpoint) if checkpoint else entry.shipped_checkpoint()
    if path is None:
        raise LassbenchError(f"no checkpoint ships for '{model}': pass --checkpoint")
    with ticking(f"loading {model}"):  # importing torch and the text encoder takes seconds
        from lassbench.models.registry import load_model

        loaded, payload = load_model(path, expected=model, device=device, text_encoder=text_encoder)
    if entry.query_type == "tags" and payload.get("tags") is None:  # checkpoints trained before tags were recorded
        _stderr(f"note: {path.name} does not record the tags it was trained on, so tag queries are not checked")
    return Separator(loaded, model, entry.query_type, device, tags=payload.get("tags"))


def _text_model_entry(model: str):
    from lassbench.models.registry import get_model_entry

    entry = get_model_entry(model)
    if entry.query_type not in ("caption", "tags", "class-id"):  # class-id: --query names one of its classes
        raise LassbenchError(f"model '{model}' cannot take a text query (query type: {entry.query_type})")
    return entry


# ---------------------------------------------------------------------------------------------------- files


def separate_file(config: SeparateConfig, *, log: Callable[[str], None] = _stderr,
                  loaded: Callable[[], Separator] | None = None) -> Path:
    """Separate ``config.input`` into ``config.output``; every check runs before the model is loaded. ``loaded``
    returns the separator to use (e.g. one already loaded for a folder of files) instead of loading one."""
    output_format = check_output(config.input, config.output)
    check_input(config.input)
    _check_chunking(config.chunk_seconds, config.overlap_seconds)
    _check_query(config.query)
    if config.checkpoint is not None and not Path(config.checkpoint).is_file():
        raise LassbenchError(f"{config.checkpoint}: checkpoint not found")
    _text_model_entry(config.model)
    from lassbench.models.registry import check_published_checkpoint, takes_negative_query

    _check_negative_query(config.model, config.negative_query, takes_negative_query(config.model))
    check_published_checkpoint(config.model, config.checkpoint)
    check_device(config.device)
    scan = scan_input(config.input, progress=config.progress)
    load = loaded or (lambda: load_separator(config.model, config.checkpoint, device=config.device,
                                             text_encoder=config.text_encoder))
    if scan.channels > 1:  # the models are mono: each channel is separated, so the output keeps the input's channels
        from lassbench.separate_channels import separate_channels

        return separate_channels(config, scan.channels, output_format, functools.cache(load), log)
    return stream_separate(config.input, config.output, scan, output_format, load, config, log=log)


def stream_separate(input_path: str | Path, output_path: str | Path, scan: InputScan, output_format: tuple[str, str],
                    load: Callable[[], Separator], config: SeparateConfig, *,
                    log: Callable[[str], None] = _stderr) -> Path:
    """Stream ``input_path`` through the separator ``load()`` returns into ``output_path`` (atomic)."""
    fmt, subtype = output_format
    clipped = 0
    # what an earlier run killed with SIGKILL left; the user's folder: only names with lassbench's marker
    sweep_stale_temps(Path(output_path).parent, legacy=False)
    with _open(Path(input_path)) as source, atomic_path(output_path) as tmp:
        try:
            sink = sf.SoundFile(str(tmp), "w", samplerate=scan.sample_rate, channels=1, format=fmt, subtype=subtype)
        except Exception as exc:
            raise LassbenchError(f"{output_path}: cannot write {fmt} at {scan.sample_rate} Hz ({_short(exc)}); "
                                 "use .wav") from exc
        with audio_write_errors(output_path), sink, _bar(scan.frames, scan.sample_rate, "separating",
                                                         config.progress) as bar:
            separator = load()
            plan, note = separator.segmenting(scan.frames / scan.sample_rate, config.chunk_seconds)
            if note:
                log(note)
            if plan == "chunks":
                pieces = _streamed(source, Path(input_path), separator, scan, config, bar)
            else:  # a published system on the whole file: read it whole, as its release does
                pieces = [_in_one_piece(source, Path(input_path), separator, scan, config, bar)]
            for out in pieces:
                if subtype != "FLOAT":
                    clipped += int(np.count_nonzero(np.abs(out) > 1.0))
                    out = np.clip(out, -1.0, 1.0)
                sink.write(out)
    if clipped:
        log(f"note: {clipped} samples of {output_path} exceeded full scale and were clipped; "
            "write a .wav (32-bit float) to keep them")
    return Path(output_path)


def _streamed(source: sf.SoundFile, path: Path, separator: Separator, scan: InputScan, config: SeparateConfig,
              bar) -> Iterator[np.ndarray]:
    """Estimate blocks of lassbench's chunked path: flat memory however long the file."""
    gain = level_gain(scan.rms) if separator.level_normalised else 1.0
    model_sr = separator.sample_rate
    chunk, overlap = _chunk_sizes(*_chunking(config.chunk_seconds, config.overlap_seconds), model_sr)
    to_model = soxr.ResampleStream(scan.sample_rate, model_sr, 1, dtype="float32")
    to_output = soxr.ResampleStream(model_sr, scan.sample_rate, 1, dtype="float32")
    blocks = _resampled_blocks(source, path, to_model, gain, bar)
    for piece, last in overlap_add(blocks, separator.chunk_function(config.query, config.negative_query), chunk,
                                   overlap):
        yield to_output.resample_chunk(piece, last=last) / np.float32(gain)


def _in_one_piece(source: sf.SoundFile, path: Path, separator: Separator, scan: InputScan, config: SeparateConfig,
                  bar) -> np.ndarray:
    blocks = []
    for block in _blocks(source, path):
        mono = _mono(block)
        if not np.isfinite(mono).all():  # changed since it was scanned
            raise LassbenchError(f"{path}: holds NaN or infinite samples")
        blocks.append(mono)
        bar.update(min(len(block), bar.total - bar.n))
    return separator.separate(np.concatenate(blocks), scan.sample_rate, config.query,
                              negative_query=config.negative_query, log=lambda line: None)


def _chunk_sizes(chunk_seconds: float, overlap_seconds: float, rate: int) -> tuple[int, int]:
    chunk = max(1, int(round(chunk_seconds * rate)))
    overlap = int(round(overlap_seconds * rate))
    if not 0 <= overlap < chunk:
        raise LassbenchError("--overlap must be shorter than --chunk")
    return chunk, overlap


def _open(path: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(str(path))
    except Exception as exc:
        raise LassbenchError(f"{path}: cannot read audio ({_short(exc)})") from exc


def _mono(block: np.ndarray) -> np.ndarray:
    """The channel average of a (frames, channels) block; a matrix-vector product, far faster than mean(axis=1)."""
    if block.shape[1] == 1:
        return block[:, 0]
    return block @ np.full(block.shape[1], 1.0 / block.shape[1], dtype=block.dtype)


def _blocks(source: sf.SoundFile, path: Path, size: int = READ_BLOCK) -> Iterator[np.ndarray]:
    while True:
        try:
            block = source.read(size, dtype="float32", always_2d=True)
        except Exception as exc:  # e.g. a FLAC cut short: "decoder lost sync"
            raise LassbenchError(f"{path}: cannot decode past {source.tell()} frames ({_short(exc)}); "
                                 "the file is damaged or truncated") from exc
        if len(block):
            yield block
        if len(block) < size:
            return


def _resampled_blocks(source: sf.SoundFile, path: Path, stream: soxr.ResampleStream, gain: float,
                      bar) -> Iterator[np.ndarray]:
    blocks = _blocks(source, path)
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)
        mono = _mono(block) * np.float32(gain)
        if not np.isfinite(mono).all():  # changed since it was scanned
            raise LassbenchError(f"{path}: holds NaN or infinite samples")
        yield stream.resample_chunk(mono, last=following is None)
        bar.update(min(len(block), bar.total - bar.n))
        block = following


def _bar(frames: int, rate: int, label: str, progress: bool):
    """Counts frames, shows seconds of audio."""
    from tqdm import tqdm

    return tqdm(total=frames, desc=label, unit="s", unit_scale=1.0 / rate, file=sys.stderr, leave=False,
                mininterval=1.0,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]",
                disable=not progress or frames / rate < LONG_FILE_SECONDS)


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


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
