"""``--steps`` and ``--sampler-seed``: the sampler options that ``run`` and ``separate`` share for the generative
systems (flowsep, soloaudio, sam-audio), whose estimate depends on them."""

from __future__ import annotations

from collections.abc import Callable

import click


def sampler_options(command: Callable) -> Callable:
    """Add ``--steps`` and ``--sampler-seed`` (both default to the system's official setting)."""
    command = click.option(
        "--sampler-seed", type=int, default=None,
        help="Generative systems: seed of the sampler's noise. Default: the official script's (docs/models.md); "
             "recorded in run.json. Other models refuse it.")(command)
    return click.option(
        "--steps", type=int, default=None,
        help="Generative systems: sampler steps. Default: the official inference's (docs/models.md); recorded in "
             "run.json. Other models refuse it.")(command)
