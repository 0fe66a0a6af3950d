"""``lassbench run``."""

from __future__ import annotations

import click


@click.command("run")
@click.argument("model")
@click.option("--data", default=None, type=click.Path(),
              help="Built benchmark folder; default: the embedded synth benchmark (built on first use, offline).")
@click.option("--split", default="test", show_default=True)
@click.option("--checkpoint", default=None, type=click.Path(), help="Default: the checkpoint shipped for MODEL.")
@click.option("--out", default="results", show_default=True, type=click.Path(),
              help="Results go to OUT/<benchmark>/<system>/.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--control", type=click.Choice(["wrong-query"]), default=None,
              help="Also run with each query swapped for another item's caption and report the SDRi drop.")
@click.option("--queries", type=click.Choice(["caption", "all"]), default="caption", show_default=True,
              help="all: query-robustness study (other captions, tags, paraphrases, wrong query).")
@click.option("--save-audio", is_flag=True, help="Keep the estimates under OUT/.../estimates/.")
@click.option("--limit", type=int, default=None, help="Only the first N items (quick look).")
def command(model: str, data: str | None, split: str, checkpoint: str | None, out: str, device: str,
            batch_size: int, control: str | None, queries: str, save_audio: bool, limit: int | None) -> None:
    """Separate a benchmark with MODEL, score it (SDR, SDRi, SI-SDR, SI-SDRi with 95% CIs), write results.

    MODEL is one of `lassbench models`: lassnet, tag-queried, class-conditioned, or the references mixture,
    oracle-irm, oracle-ibm.
    """
    from lassbench.run import RunConfig, print_outcomes, run_model

    outcomes = run_model(RunConfig(model=model, data=data, split=split, checkpoint=checkpoint, out=out,
                                   device=device, batch_size=batch_size, control=control, queries=queries,
                                   save_audio=save_audio, limit=limit))
    click.echo(print_outcomes(outcomes))
