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
@click.option("--chunk", "chunk_seconds", default=10.0, show_default=True, help="Seconds per processed chunk.")
@click.option("--overlap", "overlap_seconds", default=1.0, show_default=True, help="Cross-faded seconds.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar on stderr for inputs longer than 30 s.")
@click.option("--negative-query", default=None,
              help='What NOT to extract, e.g. "a man speaks": models that take one (clapsep); others refuse it.')
@click.option("--text-encoder", default=None, type=click.Path(),
              help="Published systems (lassnet-release, audiosep, ...): their tokenizer folder (docs/models.md).")
def command(input_path: str, query: str, output: str, model: str, checkpoint: str | None, device: str,
            chunk_seconds: float, overlap_seconds: float, progress: bool, negative_query: str | None,
            text_encoder: str | None) -> None:
    """Extract the sound described by --query from --input; streams, so any length works.

    Stereo (multi-channel) input is averaged to mono, and a note says so. The input is brought to the level the
    model was trained at and the estimate scaled back, so the output's level follows the input's. The input is
    checked (exists, not empty or truncated, no NaN/Inf) and --output refused if it is the input or its extension
    is not a supported format, all before the model loads. Interrupted runs write nothing; rerunning starts again.
    """
    from lassbench.separate import SeparateConfig, separate_file  # torch-free: the checks run before torch loads

    path = separate_file(SeparateConfig(input=input_path, output=output, query=query, model=model,
                                        checkpoint=checkpoint, device=device, chunk_seconds=chunk_seconds,
                                        overlap_seconds=overlap_seconds, progress=progress,
                                        text_encoder=text_encoder, negative_query=negative_query))
    click.echo(f"wrote {path}")
