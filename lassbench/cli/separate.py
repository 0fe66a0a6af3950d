"""``lassbench separate``."""

from __future__ import annotations

import click

EXTENSIONS = ".wav (32-bit float, default), .flac, .ogg, .aiff, .mp3"


@click.command("separate")
@click.option("--input", "input_path", required=True, type=click.Path(), help="Mixture audio file (any rate).")
@click.option("--query", required=True, help='What to extract, e.g. "a high-pitched alarm beeps rapidly".')
@click.option("--output", required=True, type=click.Path(),
              help=f"Estimate file, at the input's rate and level; its extension picks the format: {EXTENSIONS}.")
@click.option("--model", default="lassnet", show_default=True)
@click.option("--checkpoint", default=None, type=click.Path(), help="Default: the checkpoint shipped for MODEL.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--chunk", "chunk_seconds", type=float, default=None,
              help="Seconds per processed chunk (lassbench's models: 10). Published systems run the whole file as "
                   "their official inference does; --chunk makes them use these chunks instead (a note says so).")
@click.option("--overlap", "overlap_seconds", type=float, default=None, help="Cross-faded seconds (default 1).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar on stderr for inputs longer than 30 s.")
@click.option("--text-encoder", default=None, type=click.Path(),
              help="Published systems (lassnet-release, audiosep, ...): their tokenizer folder (docs/models.md).")
def command(input_path: str, query: str, output: str, model: str, checkpoint: str | None, device: str,
            chunk_seconds: float | None, overlap_seconds: float | None, progress: bool,
            text_encoder: str | None) -> None:
    """Extract the sound described by --query from --input; streams, so any length works.

    Stereo (multi-channel) input is averaged to mono, and a note says so.

    Level and segmenting. lassbench's own models (lassnet, tag-queried) are level-normalised: they were trained on
    mixtures around -20 dBFS RMS, so the input is brought to that level and the estimate scaled back (the output's
    level follows the input's), and the file is separated in cross-faded chunks. Published systems (lassnet-release,
    audiosep, dcase2024-baseline, audiosep-dp) run as their official inference: no level change, the whole file in
    one pass; past 30 s the AudioSep family uses its own chunk_inference and lassnet-release lassbench's chunks,
    with a note.

    The input is
    checked (exists, not empty or truncated, no NaN/Inf) and --output refused if it is the input or its extension
    is not a supported format, all before the model loads. Interrupted runs write nothing; rerunning starts again.
    """
    from lassbench.separate import SeparateConfig, separate_file  # torch-free: the checks run before torch loads

    path = separate_file(SeparateConfig(input=input_path, output=output, query=query, model=model,
                                        checkpoint=checkpoint, device=device, chunk_seconds=chunk_seconds,
                                        overlap_seconds=overlap_seconds, progress=progress,
                                        text_encoder=text_encoder))
    click.echo(f"wrote {path}")
