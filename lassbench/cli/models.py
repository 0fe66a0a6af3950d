"""``lassbench models``: the model zoo at a glance."""

from __future__ import annotations

import click


@click.command("models")
@click.option("--size", default="tiny", show_default=True, type=click.Choice(["tiny", "base"]),
              help="Configuration whose parameter count is shown.")
def command(size: str) -> None:
    """List every model: name, query type, parameters, and whether a checkpoint ships with lassbench.

    Parameter counts are those of the shipped checkpoint where one ships (its stored configuration), and exclude
    the frozen text encoder (MiniLM: 22.7 M; bert-mini: 11.2 M).
    """
    from lassbench.corpora.synth import synth_classes
    from lassbench.models.lassnet import SeparatorConfig, sized_config
    from lassbench.models.registry import MODELS, build_model, count_parameters, read_checkpoint

    click.echo(f"{'model':<18} {'query':<9} {'params':>10}  {'checkpoint':<10} description")
    for entry in MODELS.values():
        config = sized_config(size)
        checkpoint = entry.shipped_checkpoint(size)
        if entry.trainable and checkpoint is not None:  # what ships, as its own config says (e.g. its classes)
            config = SeparatorConfig.from_dict(read_checkpoint(checkpoint)["config"])
        elif entry.name == "class-conditioned":
            config.classes = synth_classes()  # the vocabulary it is trained on by default
        params = count_parameters(build_model(entry.name, config, attach_encoder=False)) if entry.trainable else 0
        shipped = "shipped" if checkpoint else ("-" if entry.trainable else "n/a")
        click.echo(f"{entry.name:<18} {entry.query_type:<9} {params:>10,}  {shipped:<10} {entry.description}")
