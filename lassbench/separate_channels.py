"""Separating a multi-channel file channel by channel, so a stereo input gives a stereo estimate.

The models are mono. Averaging the channels would hand back a mono file for a stereo recording and lose the stereo
image; instead each channel is split into its own mono file (streamed), separated by the caller's mono path
(``separate_mono``: :func:`lassbench.separate.stream_separate`, one model load for all channels) and the estimates
are interleaved into the output. Each channel gets its own level gain, which the mono path undoes, so levels between
channels are kept. The work files live in one hidden temporary folder beside the output, removed on success or
error.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from lassbench.audio import TEMP_MARK, atomic_path, temp_prefix
from lassbench.errors import LassbenchError

CHANNEL_FORMAT = ("WAV", "FLOAT")  # the work files keep every sample as it is; the output format clips once
BLOCK = 65536  # frames per read and write of the work files


def separate_channels(input_path: str | Path, output_path: str | Path, channels: int, output_format: tuple[str, str],
                      separate_mono: Callable[[Path, Path, tuple[str, str]], None],
                      log: Callable[[str], None]) -> Path:
    """Separate each of ``channels`` channels of ``input_path`` with ``separate_mono(mono input, estimate, (format,
    subtype))`` and write the estimates together to ``output_path`` in ``output_format``."""
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=temp_prefix(output), suffix=TEMP_MARK, dir=output.parent))
    try:
        inputs = _split_channels(Path(input_path), work, channels)
        estimates = []
        for index, mono in enumerate(inputs):
            estimate = work / f"estimate{index}.wav"
            separate_mono(mono, estimate, CHANNEL_FORMAT)
            estimates.append(estimate)
        clipped = _interleave(estimates, output, output_format)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if clipped:
        log(f"note: {clipped} samples of {output} exceeded full scale and were clipped; "
            "write a .wav (32-bit float) to keep them")
    return output


def _split_channels(path: Path, work: Path, channels: int) -> list[Path]:
    outputs = [work / f"channel{index}.wav" for index in range(channels)]
    with sf.SoundFile(str(path)) as source:
        sinks = [sf.SoundFile(str(p), "w", samplerate=source.samplerate, channels=1, format="WAV", subtype="FLOAT")
                 for p in outputs]
        try:
            while len(block := source.read(BLOCK, dtype="float32", always_2d=True)):
                for index, sink in enumerate(sinks):
                    sink.write(block[:, index])
        finally:
            for sink in sinks:
                sink.close()
    return outputs


def _interleave(estimates: list[Path], output: Path, output_format: tuple[str, str]) -> int:
    """Write the mono ``estimates`` as the channels of ``output`` (atomic); how many samples were clipped."""
    fmt, subtype = output_format
    sources = [sf.SoundFile(str(p)) for p in estimates]
    clipped = 0
    try:
        with atomic_path(output) as tmp:
            try:
                sink = sf.SoundFile(str(tmp), "w", samplerate=sources[0].samplerate, channels=len(sources),
                                    format=fmt, subtype=subtype)
            except Exception as exc:
                raise LassbenchError(f"{output}: cannot write {fmt} with {len(sources)} channels "
                                     f"({str(exc).strip() or type(exc).__name__}); use .wav") from exc
            with sink:
                while True:
                    blocks = [s.read(BLOCK, dtype="float32") for s in sources]
                    if not len(blocks[0]):
                        break
                    frames = np.stack(blocks, axis=1)
                    if subtype != "FLOAT":  # integer and lossy formats would wrap samples around: clip, and count
                        clipped += int(np.count_nonzero(np.abs(frames) > 1.0))
                        frames = np.clip(frames, -1.0, 1.0)
                    sink.write(frames)
    finally:
        for source in sources:
            source.close()
    return clipped
