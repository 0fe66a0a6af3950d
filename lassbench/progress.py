"""A ticking status line for steps that take seconds but have no count to show (loading a model).

Bars count items; a model load is one step of unknown length, so the line says what is happening and the seconds
it has taken, refreshed each second and erased when done. It appears only after the first second (quick steps
print nothing), only on a terminal unless asked, and nested steps show the outer one alone.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

_active = threading.local()


@contextlib.contextmanager
def ticking(label: str, *, enabled: bool | None = None, stream: TextIO | None = None,
            interval: float = 1.0) -> Iterator[None]:
    """Show ``label… N s`` on ``stream`` (stderr) while the block runs; ``enabled`` None: only on a terminal."""
    stream = stream or sys.stderr
    show = _is_terminal(stream) if enabled is None else enabled
    if not show or getattr(_active, "on", False):
        yield
        return
    stop, start, width = threading.Event(), time.monotonic(), [0]

    def tick() -> None:
        while not stop.wait(interval):
            line = f"{label}… {time.monotonic() - start:.0f} s"
            stream.write("\r" + line.ljust(width[0]))
            stream.flush()
            width[0] = len(line)

    thread = threading.Thread(target=tick, daemon=True, name="lassbench-ticking")
    _active.on = True
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        _active.on = False
        if width[0]:
            stream.write("\r" + " " * width[0] + "\r")
            stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or foreign stream
        return False
