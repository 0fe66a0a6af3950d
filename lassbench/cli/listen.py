"""``lassbench listen build|score``: a MUSHRA-style listening test (thin wrapper over lassbench.listen)."""

from __future__ import annotations

from pathlib import Path

import click

_BUILD_EPILOG = """\b
Example:
  lassbench run lassnet --save-audio && lassbench run tag-queried --save-audio
  lassbench listen build results/synth/lassnet results/synth/tag-queried --out listening/synth --trials 10
  # open listening/synth/index.html in a browser (file://, no server); send listeners the folder

\b
Each trial: the query, the open reference (the target), and in random order the hidden reference, the 3.5 kHz
low-pass anchor, the 7 kHz anchor (rates above 16 kHz), the mixture and every system, loudness-matched.
"""

_SCORE_EPILOG = """\b
Example:
  lassbench listen score ratings_*.csv --test listening/synth --out listening/synth/results

\b
Excludes assessors per ITU-R BS.1534-3 §4.1.2 (hidden reference < 90 in > 15% of items; 7 kHz anchor > 90 in
> 15% of items), prints mean (95% CI), median and IQR per condition, and the Pearson / Spearman correlation of
listener means with SDRi, SI-SDRi and CLAPScore (when the runs have them). See docs/evaluation.md.
"""


@click.group("listen")
def command() -> None:
    """MUSHRA-style listening tests: build a static page from saved runs, score the exported ratings."""


@command.command("build", epilog=_BUILD_EPILOG)
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for index.html, test.json, audio/.")
@click.option("--data", help="The built benchmark the runs separated (default: the synth benchmark for synth runs).")
@click.option("--trials", type=int, default=10, show_default=True, help="Items drawn at random (seeded).")
@click.option("--items", help="Comma-separated item ids instead of a random draw.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the item draw and condition orders.")
@click.option("--loudness", type=float, default=-23.0, show_default=True, help="Loudness of every stimulus (LUFS).")
@click.option("--max-seconds", type=float, default=10.0, show_default=True,
              help="Cut stimuli to this length (BS.1534: about 10 s).")
def build(runs, out, data, trials, items, seed, loudness, max_seconds) -> None:
    """Build the test page from run folders OUT/<benchmark>/<system> made with `lassbench run ... --save-audio`."""
    from lassbench.listen.build import ListenConfig, build_test

    chosen = [i.strip() for i in items.split(",") if i.strip()] if items else None
    page = build_test(ListenConfig(runs=[str(r) for r in runs], out=str(out), data=data, trials=trials, seed=seed,
                                   items=chosen, loudness_lufs=loudness, max_seconds=max_seconds))
    click.echo(f"wrote {page} (open it in a browser; ratings export as CSV)")


@command.command("score", epilog=_SCORE_EPILOG)
@click.argument("ratings", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--test", "test_dir", type=click.Path(path_type=Path), required=True,
              help="The folder `listen build` wrote (its test.json).")
@click.option("--out", type=click.Path(path_type=Path), help="Write listening_summary.json and conditions.csv here.")
def score(ratings, test_dir, out) -> None:
    """Score exported ratings: post-screening, per-condition means with 95% CIs, correlation with metrics."""
    from lassbench.listen.scoring import format_report, score_ratings

    result = score_ratings(list(ratings), test_dir, out)
    click.echo(format_report(result))
    if out is not None:
        click.echo(f"wrote {out / 'listening_summary.json'} and {out / 'conditions.csv'}", err=True)
