"""The ``lassbench`` command: a click group whose verbs are thin wrappers over the library.

Verbs live one per module in this package and are imported only when used, so ``lassbench --help`` does not pay for
importing torch. Every :class:`~lassbench.errors.LassbenchError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from lassbench import __version__
from lassbench.errors import LassbenchError

# verb -> module in lassbench.cli defining a click command named ``command``
VERBS: dict[str, str] = {
    "download": "download",
    "build-dataset": "build_dataset",
    "evaluate": "evaluate",
    "models": "models",
    "train": "train",
    "run": "run",
    "separate": "separate",
    "leaderboard": "leaderboard",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [verb for verb, module in VERBS.items() if _verb_available(module)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = VERBS.get(name)
        if module is None or not _verb_available(module):
            return None
        return importlib.import_module(f"lassbench.cli.{module}").command


def _verb_available(module: str) -> bool:
    return importlib.util.find_spec(f"lassbench.cli.{module}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="lassbench")
def cli() -> None:
    """lassbench: language-queried audio source separation (LASS), from data to leaderboards.

    \b
    Typical loop:
      lassbench download audiocaps --split test --out data/audiocaps   # get data
      lassbench build-dataset                                          # build the synth benchmark
      lassbench run lassnet                                            # separate + score
      lassbench evaluate --manifest M --estimates DIR --out RES        # score any system
      lassbench leaderboard --results leaderboards/results --out leaderboards

    Run `lassbench VERB --help` for each verb.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: click without its standalone error handling, so our errors stay one line."""
    try:
        cli.main(args=argv, prog_name="lassbench", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo("interrupted: finished files are kept; rerun the same command to resume", err=True)
        sys.exit(130)
    except LassbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug, not bad input: still one line, with a way to get the traceback
        if os.environ.get("LASSBENCH_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set LASSBENCH_DEBUG=1 for the traceback)", err=True
        )
        sys.exit(1)
