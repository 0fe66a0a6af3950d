"""``lassbench separate``."""

from __future__ import annotations

from pathlib import Path

import click

from lassbench.cli.sampler_options import sampler_options

EXTENSIONS = ".wav (32-bit float, default), .flac, .ogg, .aiff, .mp3"


@click.command("separate")
@click.option("--input", "input_path", required=True, type=click.Path(),
              help="Mixture audio file (any rate), or a folder: every audio file in it is separated.")
@click.option("--query", default=None,
              help='What to extract, e.g. "a high-pitched alarm beeps rapidly" (class-conditioned: a class name).')
@click.option("--queries", "queries_csv", default=None, type=click.Path(),
              help="With a folder --input: CSV of file,query rows, a query per file (instead of --query).")
@click.option("--output", required=True, type=click.Path(),
              help=f"Estimate file, at the input's rate and level; its extension picks the format: {EXTENSIONS}. "
                   "With a folder --input: the folder for the estimates (<input name>.wav).")
@click.option("--model", default="lassnet", show_default=True)
@click.option("--checkpoint", default=None, type=click.Path(),
              help="Default: the checkpoint shipped for MODEL. Published systems: their released file (sam-audio: "
                   "its folder with config.json), never downloaded (docs/models.md).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--chunk", "chunk_seconds", type=float, default=None,
              help="Seconds per processed chunk (lassbench's models: 10). Published systems run the whole file as "
                   "their official inference does; --chunk makes them use these chunks instead (a note says so).")
@click.option("--overlap", "overlap_seconds", type=float, default=None, help="Cross-faded seconds (default 1).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar on stderr for inputs longer than 30 s, and over the files of a folder.")
@click.option("--negative-query", default=None,
              help='What NOT to extract, e.g. "a man speaks": models that take one (clapsep); others refuse it.')
@click.option("--text-encoder", default=None, type=click.Path(),
              help="Published systems (lassnet-release, audiosep, ...): their tokenizer folder (docs/models.md).")
@sampler_options
def command(input_path: str, query: str | None, queries_csv: str | None, output: str, model: str,
            checkpoint: str | None, device: str, chunk_seconds: float | None, overlap_seconds: float | None,
            progress: bool, negative_query: str | None, text_encoder: str | None, steps: int | None,
            sampler_seed: int | None) -> None:
    """Extract the sound described by --query from --input; streams, so any length works.

    Multi-channel input gives multi-channel output: each channel is separated on its own.

    Level and segmenting. lassbench's own models (lassnet, tag-queried) are level-normalised: they were trained on
    mixtures around -20 dBFS RMS, so the input is brought to that level and the estimate scaled back (the output's
    level follows the input's), and the file is separated in cross-faded chunks. Published systems (lassnet-release,
    audiosep, dcase2024-baseline, audiosep-dp) run as their official inference: no level change, the whole file in
    one pass; past 30 s the AudioSep family uses its own chunk_inference and lassnet-release lassbench's chunks,
    with a note. clapsep likewise runs at the input's level.

    The input is checked (exists, not empty or truncated, no NaN/Inf) and --output refused if it is the input or
    its extension is not a supported format, all before the model loads. An interrupted file is not written.

    \b
    A folder: one query for every file, or a query per file from a CSV (columns file,query):
      lassbench separate --input mixtures/ --query "a dog barks" --output estimates/
      lassbench separate --input mixtures/ --queries queries.csv --output estimates/
    Reruns skip the estimates already written from the same file, query, model and settings (OUTPUT/separated.csv).
    """
    # torch-free: the checks run before torch loads
    from lassbench.separate import SeparateConfig, separate_file

    config = SeparateConfig(input=input_path, output=output, query=query or "", model=model, checkpoint=checkpoint,
                            device=device, chunk_seconds=chunk_seconds, overlap_seconds=overlap_seconds,
                            progress=progress, text_encoder=text_encoder, negative_query=negative_query,
                            steps=steps, sampler_seed=sampler_seed)
    if Path(input_path).is_dir():
        _separate_folder(config, query, queries_csv)
        return
    if queries_csv is not None:
        raise click.UsageError("--queries needs a folder as --input; for one file give --query")
    if query is None:
        raise click.UsageError("missing --query: describe the sound to separate, e.g. --query 'a dog barks'")
    click.echo(f"wrote {separate_file(config)}")


def _separate_folder(config, query: str | None, queries_csv: str | None) -> None:
    from lassbench.separate_folder import plan_folder, separate_folder

    jobs = plan_folder(config.input, config.output, query=query, queries=queries_csv)
    report = separate_folder(jobs, config, progress=config.progress)
    kept = f"; {len(report.skipped)} already there, kept" if report.skipped else ""
    click.echo(f"wrote {len(report.written)} estimate(s) to {config.output}{kept}")
