"""``lassbench models``."""

from __future__ import annotations

import click


@click.command("models")
@click.option("--params", "with_params", is_flag=True,
              help="Add the parameter counts (builds every model: loads torch, a few seconds).")
@click.option("--size", default=None, type=click.Choice(["tiny", "base"]),
              help="Configuration whose parameter count is shown; implies --params.  [default: tiny]")
def command(with_params: bool, size: str | None) -> None:
    """List every model: name, query type, which weights it runs, and (with --params) its parameter count.

    weights: `shipped` (a checkpoint ships with lassbench), `published` (loads the released checkpoint of a paper,
    given with --checkpoint; see docs/models.md), `-` (train one), `n/a` (no weights). Parameter counts are the shipped
    checkpoint's where one ships (its stored configuration, e.g. its class vocabulary) and exclude the
    text encoder (MiniLM: 22.7 M; bert-mini: 11.2 M; CLAP's RoBERTa: 125 M). `lassnet --size base` is lassbench's
    own architecture at the released size: it does not load the released LASS-Net weights (lassnet-release does).
    """
    from lassbench.models.zoo import ZOO  # the catalogue imports no torch: the plain list prints at once

    size = size or "tiny"
    counts = _parameter_counts(size) if with_params or size != "tiny" else None
    params = f" {'params':>13}" if counts else ""
    click.echo(f"{'model':<19} {'query':<9}{params}  {'weights':<10} description")
    for entry in ZOO.values():
        params = f" {counts[entry.name]:>13,}" if counts else ""
        click.echo(f"{entry.name:<19} {entry.query_type:<9}{params}  {entry.weights(size):<10} {entry.description}")


def _parameter_counts(size: str) -> dict[str, int]:
    """model -> parameters without the text encoder, at ``size`` (or as the shipped checkpoint stores it)."""
    from lassbench.corpora.synth import synth_classes
    from lassbench.models.lassnet import SeparatorConfig, sized_config
    from lassbench.models.published.systems import separator_parameters
    from lassbench.models.registry import MODELS, build_model, count_parameters, read_checkpoint

    counts = {}
    for entry in MODELS.values():
        config = sized_config(size)
        checkpoint = entry.shipped_checkpoint(size)
        if entry.trainable and checkpoint is not None:  # what ships, as its own config says (e.g. its classes)
            config = SeparatorConfig.from_dict(read_checkpoint(checkpoint)["config"])
        elif entry.name == "class-conditioned":
            config.classes = synth_classes()  # the vocabulary it is trained on by default
        if entry.published is not None:
            counts[entry.name] = separator_parameters(entry.published)
        elif entry.trainable:
            counts[entry.name] = count_parameters(build_model(entry.name, config, attach_encoder=False))
        else:
            counts[entry.name] = 0
    return counts
