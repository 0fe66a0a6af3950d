"""``lassbench models``: the model zoo at a glance."""

from __future__ import annotations

import click


@click.command("models")
@click.option("--size", default="tiny", show_default=True, type=click.Choice(["tiny", "base"]),
              help="Configuration whose parameter count is shown.")
def command(size: str) -> None:
    """List every model: name, query type, parameters, and whether a checkpoint ships with lassbench.

    Parameter counts exclude the frozen text encoder (MiniLM: 22.7 M; bert-mini: 11.2 M).
    """
    from lassbench.models.lassnet import sized_config
    from lassbench.models.registry import MODELS, build_model, count_parameters

    click.echo(f"{'model':<18} {'query':<9} {'params':>10}  {'checkpoint':<10} description")
    for entry in MODELS.values():
        config = sized_config(size)
        if entry.name == "class-conditioned":
            config.classes = ["class"] * 12  # parameter count for a 12-class vocabulary
        params = count_parameters(build_model(entry.name, config, attach_encoder=False)) if entry.trainable else 0
        shipped = "shipped" if entry.shipped_checkpoint(size) else ("-" if entry.trainable else "n/a")
        click.echo(f"{entry.name:<18} {entry.query_type:<9} {params:>10,}  {shipped:<10} {entry.description}")
