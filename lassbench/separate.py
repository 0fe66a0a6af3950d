"""``lassbench separate``: one file, one query, any length, any sample rate, any level, any number of channels.

The file is streamed through a :class:`lassbench.separator.Separator`: read in blocks, resampled to the model's rate
with a streaming resampler, separated in the separator's cross-faded chunks (lassbench's own models,
level-normalised by one gain over the whole file), resampled back and written block by block; memory stays flat
however long the file is. A published system running as its official inference reads the file whole. A
multi-channel file is separated channel by channel (:mod:`lassbench.separate_channels`), so a stereo input gives a
stereo estimate.

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
from lassbench.separate_channels import separate_channels
from lassbench.separator import (
    Separator,
    check_chunking,
    check_device,
    check_negative_query,
    check_query,
    chunk_sizes,
    level_gain,
    load_separator,
    overlap_add,
    text_model_entry,
    to_stderr,
)

READ_BLOCK = 65536
SCAN_BLOCK = 1 << 20  # the check pass only decodes and sums: bigger blocks, fewer Python steps
LONG_FILE_SECONDS = 30.0  # longer inputs get a progress bar

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
    steps: int | None = None  # generative systems: sampler steps; None: the official default
    sampler_seed: int | None = None  # generative systems: seed of the sampler's noise; None: the official default


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


# ---------------------------------------------------------------------------------------------------- files


def separate_file(config: SeparateConfig, *, log: Callable[[str], None] = to_stderr,
                  loaded: Callable[[], Separator] | None = None) -> Path:
    """Separate ``config.input`` into ``config.output``; every check runs before the model is loaded. ``loaded``
    returns the separator to use (e.g. one already loaded for a folder of files) instead of loading one."""
    output_format = check_output(config.input, config.output)
    check_input(config.input)
    check_chunking(config.chunk_seconds, config.overlap_seconds)
    check_query(config.query)
    if config.checkpoint is not None and not Path(config.checkpoint).exists():  # SAM Audio's: a folder
        raise LassbenchError(f"{config.checkpoint}: checkpoint not found")
    text_model_entry(config.model)
    from lassbench.models.registry import check_published_checkpoint, check_sampler_options, takes_negative_query

    check_negative_query(config.model, config.negative_query, takes_negative_query(config.model))
    check_sampler_options(config.model, config.steps, config.sampler_seed)
    check_published_checkpoint(config.model, config.checkpoint)
    check_device(config.device)
    scan = scan_input(config.input, progress=config.progress)
    load = loaded or (lambda: load_separator(config.model, config.checkpoint, device=config.device,
                                             text_encoder=config.text_encoder, steps=config.steps,
                                             sampler_seed=config.sampler_seed))
    if scan.channels > 1:  # the models are mono: each channel is separated, so the output keeps the input's channels
        return _channel_by_channel(config, scan.channels, output_format, functools.cache(load), log)
    return stream_separate(config.input, config.output, scan, output_format, load, config, log=log)


def _channel_by_channel(config: SeparateConfig, channels: int, output_format: tuple[str, str],
                        load: Callable[[], Separator], log: Callable[[str], None]) -> Path:
    """Each channel streamed through the one separator ``load()`` returns (one model load for all channels)."""

    def separate_mono(mono: Path, estimate: Path, mono_format: tuple[str, str]) -> None:
        stream_separate(mono, estimate, scan_input(mono), mono_format, load, config, log=log)

    return separate_channels(config.input, config.output, channels, output_format, separate_mono, log)


def stream_separate(input_path: str | Path, output_path: str | Path, scan: InputScan, output_format: tuple[str, str],
                    load: Callable[[], Separator], config: SeparateConfig, *,
                    log: Callable[[str], None] = to_stderr) -> Path:
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
    chunk, overlap = chunk_sizes(config.chunk_seconds, config.overlap_seconds, model_sr)
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



def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
