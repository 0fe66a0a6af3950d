"""Where lassbench keeps generated data when the user does not say (the synth corpus, built benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$LASSBENCH_CACHE`` if set, else ``~/.cache/lassbench``."""
    env = os.environ.get("LASSBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "lassbench"


def package_data_dir() -> Path:
    """Files shipped inside the package (checkpoints, small tables)."""
    return Path(__file__).resolve().parent / "data"
