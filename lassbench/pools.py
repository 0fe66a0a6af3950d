"""Process pools whose workers die with the process that started them.

A ``ProcessPoolExecutor`` worker whose parent is killed with SIGKILL never learns it: it waits on its task queue
forever, re-parented to PID 1. :func:`process_pool` starts workers with an initializer that asks Linux to send them
SIGKILL when their parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere, or when the worker's parent is a fork
server rather than the caller, a daemon thread polls the caller's PID once a second instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1
POLL_SECONDS = 1.0


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes that exit when the calling process dies."""
    return ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),))


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this process as soon as ``parent_pid`` is gone."""
    if os.getppid() == parent_pid and _set_parent_death_signal():
        if os.getppid() != parent_pid:  # the parent died before the request took effect
            os._exit(1)
        return
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="lassbench-parent-watch").start()


def _set_parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while _alive(parent_pid):
        time.sleep(POLL_SECONDS)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (the PID was reused): treat the caller as gone
        return False
    return True
