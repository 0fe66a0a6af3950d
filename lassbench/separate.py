"""``lassbench separate``: one file, one query, any length, any sample rate.

The file is streamed: read in blocks, resampled to the model's rate with a streaming resampler, separated in chunks
of ``chunk_seconds`` that overlap by ``overlap_seconds`` and are cross-faded (overlap-add with complementary linear
ramps), resampled back and written block by block — memory stays flat however long the file is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from lassbench.audio import atomic_path
from lassbench.errors import LassbenchError
from lassbench.models.lassnet import QueryBatch
from lassbench.models.registry import get_model_entry, load_model

READ_BLOCK = 65536


@dataclass
class SeparateConfig:
    input: str
    output: str
    query: str = ""
    model: str = "lassnet"
    checkpoint: str | None = None
    device: str = "cpu"
    chunk_seconds: float = 10.0
    overlap_seconds: float = 1.0


def separate_file(config: SeparateConfig) -> Path:
    entry = get_model_entry(config.model)
    if entry.query_type not in ("caption", "tags"):
        raise LassbenchError(f"model '{config.model}' cannot take a text query (query type: {entry.query_type})")
    if not config.query.strip():
        raise LassbenchError("empty query: describe the sound to separate, e.g. --query 'a dog barks'")
    path = Path(config.checkpoint) if config.checkpoint else entry.shipped_checkpoint()
    if path is None:
        raise LassbenchError(f"no checkpoint ships for '{config.model}': pass --checkpoint")
    model, _ = load_model(path, expected=config.model, device=config.device)
    batch = QueryBatch([config.query], labels=[[config.query]])
    model_sr = model.config.backbone.sample_rate

    min_length = 2 * model.config.backbone.n_fft  # the STFT's reflect padding needs a few frames

    def apply(chunk: np.ndarray) -> np.ndarray:
        padded = np.pad(chunk, (0, max(0, min_length - len(chunk))))
        with torch.no_grad():
            mixture = torch.from_numpy(padded)[None].to(config.device)
            return model(mixture, batch).cpu().numpy()[0, : len(chunk)]

    return stream_separate(config.input, config.output, apply, model_sr,
                           chunk_seconds=config.chunk_seconds, overlap_seconds=config.overlap_seconds)


def stream_separate(input_path: str | Path, output_path: str | Path, apply, model_sr: int, *,
                    chunk_seconds: float = 10.0, overlap_seconds: float = 1.0) -> Path:
    """Run ``apply`` (mono float32 chunk at ``model_sr`` -> same-length estimate) over a file of any length."""
    try:
        source = sf.SoundFile(str(input_path))
    except Exception as exc:
        raise LassbenchError(f"{input_path}: cannot read audio ({exc})") from exc
    chunk = int(round(chunk_seconds * model_sr))
    overlap = int(round(overlap_seconds * model_sr))
    if not 0 <= overlap < chunk:
        raise LassbenchError("--overlap must be shorter than --chunk")
    with source, atomic_path(output_path) as tmp:
        in_sr = source.samplerate
        with sf.SoundFile(str(tmp), "w", samplerate=in_sr, channels=1, subtype="FLOAT", format="WAV") as sink:
            to_model = soxr.ResampleStream(in_sr, model_sr, 1, dtype="float32")
            to_output = soxr.ResampleStream(model_sr, in_sr, 1, dtype="float32")
            blocks = _resampled_blocks(source, to_model)
            for piece, last in overlap_add(blocks, apply, chunk, overlap):
                sink.write(to_output.resample_chunk(piece, last=last))
    return Path(output_path)


def _resampled_blocks(source: sf.SoundFile, stream: soxr.ResampleStream) -> Iterator[np.ndarray]:
    while True:
        block = source.read(READ_BLOCK, dtype="float32", always_2d=True)
        last = len(block) < READ_BLOCK
        yield stream.resample_chunk(block.mean(axis=1), last=last)
        if last:
            return


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
