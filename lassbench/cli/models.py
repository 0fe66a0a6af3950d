"""``lassbench models``: the model zoo at a glance."""

from __future__ import annotations

import click


@click.command("models")
@click.option("--size", default="tiny", show_default=True, type=click.Choice(["tiny", "base"]),
              help="Configuration whose parameter count is shown.")
def command(size: str) -> None:
    """List every model: name, query type, parameters, and which weights it runs.

    weights: `shipped` (a checkpoint ships with lassbench), `published` (loads the released checkpoint of a paper,
    given with --checkpoint; see docs/models.md), `-` (train one), `n/a` (no weights). Parameter counts are the shipped
    checkpoint's where one ships (its stored configuration, e.g. its class vocabulary) and exclude the
    text encoder (MiniLM: 22.7 M; bert-mini: 11.2 M; CLAP's RoBERTa: 125 M). `lassnet --size base` is lassbench's
    own architecture at the released size: it does not load the released LASS-Net weights (lassnet-release does).
    """
    from lassbench.corpora.synth import synth_classes
    from lassbench.models.lassnet import SeparatorConfig, sized_config
    from lassbench.models.published.systems import separator_parameters
    from lassbench.models.registry import MODELS, build_model, count_parameters, read_checkpoint

    click.echo(f"{'model':<19} {'query':<9} {'params':>11}  {'weights':<10} description")
    for entry in MODELS.values():
        config = sized_config(size)
        checkpoint = entry.shipped_checkpoint(size)
        if entry.trainable and checkpoint is not None:  # what ships, as its own config says (e.g. its classes)
            config = SeparatorConfig.from_dict(read_checkpoint(checkpoint)["config"])
        elif entry.name == "class-conditioned":
            config.classes = synth_classes()  # the vocabulary it is trained on by default
        if entry.published is not None:
            params, weights = separator_parameters(entry.published), "published"
        else:
            params = count_parameters(build_model(entry.name, config, attach_encoder=False)) if entry.trainable else 0
            weights = "shipped" if checkpoint else ("-" if entry.trainable else "n/a")
        click.echo(f"{entry.name:<19} {entry.query_type:<9} {params:>11,}  {weights:<10} {entry.description}")
