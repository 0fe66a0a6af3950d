"""``lassbench leaderboard``: a thin wrapper over :func:`lassbench.leaderboard.write_leaderboards`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("leaderboard")
@click.option("--results", "results_dir", type=click.Path(path_type=Path), default=Path("leaderboards/results"),
              show_default=True,
              help="Folder of scored runs: <benchmark>/<system>/summary.json (+ run.json, per_item.csv).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("leaderboards"),
              show_default=True,
              help="Where <benchmark>.csv and <benchmark>_queries.csv (and PNG plots) are written.")
@click.option("--reported", type=click.Path(path_type=Path), default=None,
              help="Hand-curated reported-results CSV with a citation per row. "
                   "[default: OUT/reported.csv if it exists]")
@click.option("--no-reported", is_flag=True, help="Leave reported (paper) figures out of the tables.")
@click.option("--markdown", type=click.Path(path_type=Path), default=None,
              help="Markdown page with every table. [default: OUT/leaderboard.md]")
@click.option("--no-markdown", is_flag=True, help="Do not write the markdown page.")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="PNG per benchmark (SDRi distribution, per-class SDRi); needs matplotlib "
                   "(the `plot` extra).")
def command(
    results_dir: Path,
    out_dir: Path,
    reported: Path | None,
    no_reported: bool,
    markdown: Path | None,
    no_markdown: bool,
    plots: bool,
) -> None:
    """Gather every summary.json / run.json under RESULTS into one leaderboard CSV per benchmark.

    \b
    Main table OUT/<benchmark>.csv: default-variant runs and outside systems, ranked by SDRi, plus
    reported (paper) figures ranked separately; reference systems (mixture, oracle-*) are listed unranked,
    and so are rows that scored another item set than the table's other rows (noted: not comparable) and
    partial runs (`run --limit`, `evaluate --ids/--limit`; noted: partial).
    Query-robustness table OUT/<benchmark>_queries.csv: one row per (model, variant) of `lassbench run
    MODEL --queries all`. Every row names its SDR definition and aggregation.

    \b
    Example (score your own system, then rank it):
      lassbench evaluate --manifest BENCH/manifest.csv --split test --estimates my_estimates \\
        --out leaderboards/results/synth/my-system
      lassbench leaderboard --results leaderboards/results --out leaderboards
    """
    from lassbench.leaderboard import default_reported_path, write_leaderboards

    if markdown is None:
        markdown = out_dir / "leaderboard.md"  # nothing is written outside the folders the user names
    if no_reported:
        reported = None
    elif reported is None:
        reported = default_reported_path(out_dir)
    outputs = write_leaderboards(
        results_dir, out_dir, reported=reported, markdown=None if no_markdown else markdown, plots=plots
    )
    # notes come after the work, so a failing run still prints exactly one line
    if reported is None and not no_reported:
        click.echo(f"note: no {out_dir / 'reported.csv'}: tables hold reproduced rows only", err=True)
    for note in outputs.notes:
        click.echo(f"note: {note}", err=True)
    for path in [*outputs.tables, *outputs.plots]:
        click.echo(f"wrote {path}")
    if outputs.markdown is not None:
        click.echo(f"wrote {outputs.markdown}")
