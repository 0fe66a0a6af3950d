"""lassbench: language-queried audio source separation, from data to leaderboards.

The functions a researcher calls from Python are importable from here (docs/python-api.md)::

    import lassbench
    separator = lassbench.load_separator("lassnet")
    estimate = separator.separate(mixture, sample_rate, "a dog barks")
    lassbench.score_arrays(reference, estimate, mixture)

They are loaded on first use (module ``__getattr__``), so ``import lassbench`` stays cheap: it imports no torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from lassbench.errors import LassbenchError

try:
    __version__ = version("lassbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

# public name -> module defining it; one line per step of data -> benchmark -> model -> estimates -> scores -> tables
_EXPORTS: dict[str, str] = {
    "synth_corpus": "lassbench.corpora.synth",
    "BuildConfig": "lassbench.build",
    "build_dataset": "lassbench.build",
    "default_benchmark": "lassbench.ready",
    "load_separator": "lassbench.separator",
    "Separator": "lassbench.separator",
    "SeparateConfig": "lassbench.separate",
    "separate_file": "lassbench.separate",
    "RunConfig": "lassbench.run",
    "run_model": "lassbench.run",
    "score_arrays": "lassbench.evaluate",
    "evaluate_arrays": "lassbench.evaluate",
    "evaluate_folders": "lassbench.evaluate",
    "evaluate_manifest": "lassbench.evaluate",
    "collect_results": "lassbench.leaderboard",
    "build_leaderboards": "lassbench.leaderboard",
    "write_leaderboards": "lassbench.leaderboard",
    "read_audio": "lassbench.audio",
    "write_audio": "lassbench.audio",
}

__all__ = ["__version__", "LassbenchError", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lassbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

