"""``lassbench listen build|score``: a MUSHRA-style listening test (thin wrapper over lassbench.listen)."""

from __future__ import annotations

from pathlib import Path

import click

_BUILD_EPILOG = """\b
Example:
  lassbench run lassnet --save-audio && lassbench run tag-queried --save-audio
  lassbench listen build results/synth/lassnet results/synth/tag-queried --out listening/synth --trials 10
  # open listening/synth/index.html in a browser (file://, no server); send listeners the folder
  # keep listening/synth.key.json: it says which stimulus is which system

\b
Each trial: the query, the open reference (the target), and in a secret random order the hidden reference, the
3.5 kHz low-pass anchor, the 7 kHz anchor (rates above 16 kHz), the mixture and every system, loudness-matched.
The test is blind: the folder names no condition (opaque stimulus ids); the key outside it maps them back.
"""

_SCORE_EPILOG = """\b
Example:
  lassbench listen score ratings_*.csv --key listening/synth.key.json --out listening/synth-results
  lassbench listen score webMUSHRA/results/<testId>/mushra.csv --key listening/synth.key.json

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
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="The folder sent to listeners (index.html, audio/).")
@click.option("--key", type=click.Path(path_type=Path),
              help="Where to write the key (which stimulus is which condition, metrics); it must be outside --out. "
                   "[default: <out>.key.json]")
@click.option("--data", help="The built benchmark the runs separated (default: the synth benchmark for synth runs).")
@click.option("--trials", type=int, default=10, show_default=True, help="Items drawn at random (seeded).")
@click.option("--items", help="Comma-separated item ids instead of a random draw.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the item draw (the condition order is the key's secret).")
@click.option("--loudness", type=float, default=-23.0, show_default=True, help="Loudness of every stimulus (LUFS).")
@click.option("--max-seconds", type=float, default=10.0, show_default=True,
              help="Cut stimuli to this length (BS.1534: about 10 s).")
def build(runs, out, key, data, trials, items, seed, loudness, max_seconds) -> None:
    """Build the test page from run folders OUT/<benchmark>/<system> made with `lassbench run ... --save-audio`."""
    from lassbench.listen.build import ListenConfig, build_test

    chosen = [i.strip() for i in items.split(",") if i.strip()] if items else None
    config = ListenConfig(runs=[str(r) for r in runs], out=str(out), data=data, trials=trials, seed=seed,
                          items=chosen, loudness_lufs=loudness, max_seconds=max_seconds,
                          key=None if key is None else str(key))
    page = build_test(config)
    click.echo(f"wrote {page} (open it in a browser; ratings export as CSV)")
    click.echo(f"wrote {config.key_path} (the key: keep it from listeners; `listen score` needs it)")


@command.command("score", epilog=_SCORE_EPILOG)
@click.argument("ratings", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--key", "--test", "key", type=click.Path(path_type=Path), required=True,
              help="The key `listen build` wrote (or the listeners' folder it sits beside).")
@click.option("--out", type=click.Path(path_type=Path), help="Write listening_summary.json and conditions.csv here.")
def score(ratings, key, out) -> None:
    """Score ratings (the page's exports or webMUSHRA's mushra.csv) with the test's key: post-screening,
    per-condition means with 95% CIs, correlation with metrics."""
    from lassbench.listen.scoring import format_report, score_ratings

    result = score_ratings(list(ratings), key, out)
    click.echo(format_report(result))
    if out is not None:
        click.echo(f"wrote {out / 'listening_summary.json'} and {out / 'conditions.csv'}", err=True)
