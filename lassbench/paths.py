"""Where lassbench keeps generated data when the user does not say (the synth corpus, built benchmarks)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from lassbench.errors import LassbenchError


def cache_dir() -> Path:
    """``$LASSBENCH_CACHE`` if set, else ``~/.cache/lassbench``."""
    env = os.environ.get("LASSBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "lassbench"


def package_data_dir() -> Path:
    """Files shipped inside the package (checkpoints, small tables)."""
    return Path(__file__).resolve().parent / "data"


def check_output_folder(path: str | Path, flag: str) -> None:
    """Refuse an output folder that could not be created or written, before any work: one that is a file, sits
    under a file, or whose nearest existing parent is not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LassbenchError(f"{flag} {path}: exists and is not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise LassbenchError(f"{flag} {path}: {existing} is a file, so the folder cannot be created{cache_hint(path)}")
    if not os.access(existing, os.W_OK | os.X_OK) or _read_only_mount(existing):
        raise LassbenchError(f"{flag} {path}: {existing} is not writable{cache_hint(path)}")


def _read_only_mount(folder: Path) -> bool:
    """os.access says yes to root on a read-only mount; the mount's flags do not."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def cache_hint(path: str | Path) -> str:
    """``"; ... set LASSBENCH_CACHE ..."`` when ``path`` lies in the lassbench cache (where the user named no
    folder, so the message must say how to move it), else ``""``."""
    try:
        inside = Path(path).resolve().is_relative_to(cache_dir().resolve())
    except (OSError, ValueError):
        inside = False
    return (f"; it is in the lassbench cache {cache_dir()}: set LASSBENCH_CACHE to a writable folder with room"
            if inside else "")


def check_output_file(path: str | Path, flag: str) -> None:
    """Refuse an output file path that is a folder or whose folder could not be created or written."""
    path = Path(path)
    if path.is_dir():
        raise LassbenchError(f"{flag} {path}: is a folder; give a file name")
    check_output_folder(path.parent, flag)


WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "read-only file system", errno.EACCES: "permission denied"}


def write_failure_message(exc: OSError) -> str | None:
    """One line for an OSError that means "cannot write here" (full disk, quota, read-only, permissions), naming
    the path and what to do; ``None`` for any other OSError. Writes are atomic and long steps resume, so a rerun
    after freeing space completes; a path in the lassbench cache names ``LASSBENCH_CACHE``, which moves it."""
    reason = WRITE_ERRNOS.get(exc.errno)
    if reason is None:
        return None
    where = exc.filename or "a file"
    advice = ("free some space and rerun the same command (finished work is kept)"
              if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "write somewhere else")
    return f"cannot write {where}: {reason}; {advice}{cache_hint(str(where))}"
