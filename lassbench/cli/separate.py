"""``lassbench separate``."""

from __future__ import annotations

import click


@click.command("separate")
@click.option("--input", "input_path", required=True, type=click.Path(), help="Mixture audio file (any rate).")
@click.option("--query", required=True, help='What to extract, e.g. "a high-pitched alarm beeps rapidly".')
@click.option("--output", required=True, type=click.Path(), help="Estimate WAV (written at the input's rate).")
@click.option("--model", default="lassnet", show_default=True)
@click.option("--checkpoint", default=None, type=click.Path(), help="Default: the checkpoint shipped for MODEL.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--chunk", "chunk_seconds", default=10.0, show_default=True, help="Seconds per processed chunk.")
@click.option("--overlap", "overlap_seconds", default=1.0, show_default=True, help="Cross-faded seconds.")
def command(input_path: str, query: str, output: str, model: str, checkpoint: str | None, device: str,
            chunk_seconds: float, overlap_seconds: float) -> None:
    """Extract the sound described by --query from --input; streams, so any length works."""
    from lassbench.separate import SeparateConfig, separate_file

    path = separate_file(SeparateConfig(input=input_path, output=output, query=query, model=model,
                                        checkpoint=checkpoint, device=device, chunk_seconds=chunk_seconds,
                                        overlap_seconds=overlap_seconds))
    click.echo(f"wrote {path}")
