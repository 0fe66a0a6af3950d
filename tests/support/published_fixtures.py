"""Seeded stand-ins for the published checkpoints: weights derived from a seed in the released key layout, tiny
tokenizers, a fixed input. The golden outputs in tests/golden/published/ were produced by running the *official*
model code on exactly these (the script that did it is in docs/models.md); the tests rebuild the same files here and
check that lassbench reproduces those outputs."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch

from .paths import GOLDEN as GOLDENS

GOLDEN = GOLDENS / "published"
SEED = 20221118
QUERIES = ["a dog barks", "a man speaks"]
# system -> (input seconds, sample rate); each input is the shortest that exercises the whole network
INPUTS = {"lassnet-release": (0.25, 32000), "audiosep": (0.2, 32000), "dcase2024-baseline": (0.2, 16000),
          "audiosep-dp": (0.2, 16000), "audiosep-dp-32k": (0.2, 32000)}
MODEL = {"audiosep-dp-32k": "audiosep-dp"}  # golden system -> lassbench model name (the variant is in the file)
# The end-to-end goldens: the release's own inference on files of unequal length, one shorter than anything is cut
# into (lassbench's chunks: 10 s; AudioSep's chunk_inference windows: 5 s), one longer than a chunk_inference window.
INFERENCE_SECONDS = (0.6, 2.3, 5.6)
INFERENCE_QUERIES = ["a dog barks", "a man speaks", "the bird sings"]
STRIDE = 8  # every STRIDE-th sample of an estimate is stored
BERT_WORDS = ["a", "dog", "barks", "man", "speaks", "##s", "the", "bird", "sings"]
ROBERTA_CHARS = list("abcdefghijklmnopqrstuvwxyz")


def seeded_tensor(key: str, shape: tuple[int, ...], dtype: str, seed: int = SEED) -> torch.Tensor:
    """A tensor that depends only on (seed, key, shape): weights scaled by fan-in, norms near identity."""
    if not dtype.startswith("torch.float"):
        return torch.zeros(shape, dtype=getattr(torch, dtype.removeprefix("torch.")))
    gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    noise = torch.randn(shape, generator=gen)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 0.5 + torch.rand(shape, generator=gen)
    if leaf == "running_mean" or leaf == "bias" or len(shape) == 0:
        return 0.1 * noise
    if len(shape) == 1:  # norm weights, PReLU
        return 1.0 + 0.1 * noise
    fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[1]
    return noise / np.sqrt(fan_in)


def layout(name: str) -> dict[str, tuple[list[int], str]]:
    """The released key layout (key -> shape, dtype) recorded from the official code."""
    return json.loads((GOLDEN / f"{name}-layout.json").read_text())


def seeded_state(entries: dict[str, tuple[list[int], str]], seed: int = SEED) -> dict[str, torch.Tensor]:
    return {k: seeded_tensor(k, tuple(shape), dtype, seed) for k, (shape, dtype) in entries.items()}


def write_checkpoint(name: str, path: Path, state: dict[str, torch.Tensor]) -> Path:
    """The file as each release saves it: LASS-Net {'model': DataParallel state dict}; AudioSep-family Lightning."""
    if name == "lassnet-release":
        payload = {"model": state, "epoch": 1}
    else:
        payload = {"epoch": 0, "global_step": 200000, "pytorch-lightning_version": "2.0.0", "state_dict": state,
                   "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": []}
    torch.save(payload, path)
    return path


def write_bert_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BERT_WORDS]
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return folder


def write_roberta_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<s>", "<pad>", "</s>", "<unk>", *ROBERTA_CHARS, "\u0120", *["\u0120" + c for c in ROBERTA_CHARS],
              "<mask>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"\u0120 {c}" for c in ROBERTA_CHARS) + "\n",
                                       encoding="utf-8")
    return folder


def model_name(system: str) -> str:
    return MODEL.get(system, system)


def inference_inputs(name: str) -> list[np.ndarray]:
    """Mono float32 inputs at the system's rate, of the lengths :data:`INFERENCE_SECONDS`, at different levels."""
    rate = INPUTS[name][1]
    rng = np.random.RandomState(11)
    out = []
    for k, seconds in enumerate(INFERENCE_SECONDS):
        t = np.arange(int(seconds * rate)) / rate
        tone = np.sin(2 * np.pi * (180 + 240 * k) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t))
        out.append(((0.4 / (k + 1)) * tone + 0.03 * rng.randn(len(t))).astype(np.float32))
    return out


def fixed_input(name: str, batch: int = 2) -> np.ndarray:
    seconds, rate = INPUTS[name]
    n = int(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.RandomState(7)
    rows = [0.3 * np.sin(2 * np.pi * (220 + 330 * i) * t) + 0.05 * rng.randn(n) for i in range(batch)]
    return np.stack(rows).astype(np.float32)


def write_benchmark(folder: Path, mixtures: list[np.ndarray], rate: int, queries: list[str]) -> Path:
    """A built benchmark (the layout ``lassbench run`` reads) whose mixtures are exactly ``mixtures``: items of
    unequal length, each scored against a scaled copy of its mixture (the scores are not what is tested)."""
    import pandas as pd
    import soundfile as sf

    from lassbench.manifests import encode_list, write_manifest_csv

    rows = []
    for k, (mixture, query) in enumerate(zip(mixtures, queries, strict=True)):
        item = f"test-{k:06d}"
        for kind, audio in (("mixture", mixture), ("target", 0.5 * mixture)):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            sf.write(str(folder / kind / f"{item}.wav"), audio, rate, subtype="FLOAT")
        rows.append({"id": item, "split": "test", "query": query, "captions": encode_list([query]),
                     "labels": encode_list([]), "sample_rate": rate, "num_samples": len(mixture),
                     "mixture_path": f"mixture/{item}.wav", "target_path": f"target/{item}.wav"})
    write_manifest_csv(pd.DataFrame(rows), folder / "manifest.csv")
    (folder / "dataset.json").write_text(json.dumps({"name": folder.name, "sample_rate": rate, "protocol": "lassbench",
                                                     "counts": {"test": len(rows)}}))
    return folder
