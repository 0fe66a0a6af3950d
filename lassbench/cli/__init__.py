"""The ``lassbench`` command: a click group whose verbs are thin wrappers over the library.

Verbs live one per module in this package and are imported only when used, so ``lassbench --help`` does not pay for
importing torch. Every :class:`~lassbench.errors.LassbenchError` becomes one line on stderr and exit status 2.

SIGTERM (what ``timeout``, ``kill`` and job schedulers send) is turned into the same unwinding as Ctrl-C, so every
``finally`` runs and atomic writers remove their temp files; the exit status is 128 + the signal number and the one
line printed says what that verb keeps and whether a rerun resumes (see docs/guarantees.md).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click

from lassbench import __version__
from lassbench.errors import LassbenchError

# verb -> module in lassbench.cli defining a click command named ``command``
VERBS: dict[str, str] = {
    "download": "download",
    "build-dataset": "build_dataset",
    "shard": "shard",
    "evaluate": "evaluate",
    "models": "models",
    "train": "train",
    "run": "run",
    "separate": "separate",
    "leaderboard": "leaderboard",
    "listen": "listen",
}


# what an interrupted verb leaves and what rerunning it does; each line must stay true (tests/test_signals.py)
ON_INTERRUPT: dict[str, str] = {
    "download": "finished clips are kept; rerun the same command to resume",
    "build-dataset": "finished items are kept; rerun the same command to resume",
    "shard": "finished shards are kept; rerun the same command to resume",
    "train": "checkpoints already written are kept; rerun with --resume to continue from the last one",
    "run": "scored batches are kept; rerun the same command to resume",
    "evaluate": "no results were written; rerun the same command to score again",
    "separate": "the file being separated was not written; rerun the same command to start it again (a file does "
                "not resume; a folder keeps its finished estimates and resumes)",
    "leaderboard": "tables already replaced are complete; rerun the same command to write them all",
    "models": "nothing was written",
    "listen": "files already written are complete; rerun the same command to start again (listen does not resume)",
}
DEFAULT_ON_INTERRUPT = "finished files are kept"


class Interrupted(KeyboardInterrupt):
    """Raised by a verb (``raise Interrupted(detail) from exc`` in an ``except KeyboardInterrupt``) to replace its
    :data:`ON_INTERRUPT` line with a more precise one; :func:`main` still prints the signal and sets the status."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by the SIGTERM handler: unwinds like Ctrl-C, so cleanup code runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []  # the signal being handled (click turns our exception into Abort, losing its type)


def _raise_terminated(signum: int, frame) -> None:
    _received.append(signum)
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM kills at once, as users expect
    raise Terminated(signum)


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
    args = sys.argv[1:] if argv is None else list(argv)
    _handle_sigterm()
    try:
        cli.main(args=args, prog_name="lassbench", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # a bad option value or an unknown option: one line too, exit 2
        hint = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # click turns Ctrl-C into Abort (from the cause)
        signum = _received[-1] if _received else signal.SIGINT
        cause = exc.__cause__ if isinstance(exc, click.exceptions.Abort) else exc
        verb = _verb_of(args)
        what = ON_INTERRUPT.get(verb, DEFAULT_ON_INTERRUPT) if verb else DEFAULT_ON_INTERRUPT
        what = cause.detail if isinstance(cause, Interrupted) else what
        name = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
        click.echo(f"{name}: {what}", err=True)
        sys.exit(128 + int(signum))
    except LassbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        _exit_on_write_failure(exc)
    except Exception as exc:
        _internal_error(exc)


def _exit_on_write_failure(exc: OSError) -> None:
    """A full disk, a read-only folder, ... is the environment, not a bug: one ``error:`` line, exit 2."""
    from lassbench.paths import write_failure_message

    message = write_failure_message(exc)
    if message is None:
        _internal_error(exc)
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _internal_error(exc: Exception) -> None:
    """A bug, not bad input: still one line, with a way to get the traceback."""
    if os.environ.get("LASSBENCH_DEBUG"):
        raise exc
    click.echo(f"internal error: {type(exc).__name__}: {exc} (set LASSBENCH_DEBUG=1 for the traceback)", err=True)
    sys.exit(1)


def _handle_sigterm() -> None:
    try:
        signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, AttributeError):  # not the main thread (an embedding app), or a platform without SIGTERM
        pass


def _verb_of(args: list[str]) -> str | None:
    """The verb of a command line: the group itself takes only flags (--help, --version)."""
    return next((arg for arg in args if not arg.startswith("-")), None)
