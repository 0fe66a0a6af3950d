"""``--steps`` and ``--sampler-seed``: the sampler options that ``run`` and ``separate`` share for the generative
systems (flowsep, soloaudio, sam-audio), whose estimate depends on them."""

from __future__ import annotations

from collections.abc import Callable

import click

_RECORDED = ("Recorded with the result (run: run.json and its resume fingerprint; separate on a folder: "
             "separated.csv). Other models refuse it.")


def sampler_options(command: Callable) -> Callable:
    """Add ``--steps`` and ``--sampler-seed`` (both default to the system's official setting)."""
    command = click.option(
        "--sampler-seed", type=int, default=None,
        help="Generative systems (flowsep, soloaudio, sam-audio): seed of the sampler's noise, 0 to 2**64-1. "
             f"Default: each system's official one (docs/models.md). {_RECORDED}")(command)
    return click.option(
        "--steps", type=int, default=None,
        help="Generative systems (flowsep, soloaudio, sam-audio): number of sampler "
             f"steps. Default: each official inference's (docs/models.md). {_RECORDED}")(command)
