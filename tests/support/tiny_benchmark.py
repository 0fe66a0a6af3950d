"""A tiny synth benchmark built with the real build code (a few seconds), shared by the `run` tests."""

from __future__ import annotations

from pathlib import Path


def build_tiny_benchmark(root: Path, name: str = "synth-mini", items: int = 8) -> Path:
    from lassbench.build import BuildConfig, build_dataset
    from lassbench.corpora.synth import synth_corpus

    sources = synth_corpus(root / "synth", duration=2.0, clips={"train": 28, "val": 14, "test": 14})
    out = root / name  # a benchmark is named after its folder
    build_dataset(BuildConfig(sources=str(sources), out=out, splits=("val", "test"),
                              num_items={"val": items, "test": items}, options={"contrast_fraction": 0.3},
                              progress=False))
    return out
