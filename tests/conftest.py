import os

import pytest

# Tests never reach a hub: the offline paths are what they check.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own lassbench cache so nothing leaks into ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "lassbench-cache"
    monkeypatch.setenv("LASSBENCH_CACHE", str(cache))
