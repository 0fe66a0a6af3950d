"""lassbench: language-queried audio source separation, from data to leaderboards."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lassbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
