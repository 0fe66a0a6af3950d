"""Golden VGGish features and embeddings from torchvggish's own code (writes vggish-golden.npz).

    git clone https://github.com/harritaylor/torchvggish /work/official/torchvggish   # f3f9096
    python tests/golden/fad/make_vggish_goldens.py /work/official/torchvggish

Runs torchvggish's ``VGGish(pretrained=False, postprocess=False)`` with the last ReLU removed, as fadtk and
frechet-audio-distance use it, on seeded weights (:func:`seeded_state_dict`, saved as a state dict and loaded strictly,
so tests/evaluation/test_fad.py rebuilds the same file) and seeded 16 kHz signals. The inputs are at VGGish's rate, so
torchvggish's resampy is never called; its import is satisfied by an empty module (resampy needs numba, which this
environment does not install).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np

SECONDS = (2.0, 1.5, 3.1)  # 2, 1 and 3 examples of 0.96 s


def seeded_signals() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    t = [np.arange(int(s * 16000)) / 16000 for s in SECONDS]
    return [(0.1 * rng.standard_normal(x.size) + 0.3 * np.sin(2 * np.pi * (200 + 150 * k) * x)).astype(np.float32)
            for k, x in enumerate(t)]


def seeded_state_dict(seed: int = 0) -> dict:
    """torchvggish's keys, He-scaled normal weights and small biases from one numpy generator."""
    import torch

    rng = np.random.default_rng(seed)
    shapes = {}
    channels = 1
    index = 0
    for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if width == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (width, channels, 3, 3)
        shapes[f"features.{index}.bias"] = (width,)
        channels, index = width, index + 2
    for k, (n_out, n_in) in zip((0, 2, 4), ((4096, 512 * 4 * 6), (4096, 4096), (128, 4096)), strict=True):
        shapes[f"embeddings.{k}.weight"] = (n_out, n_in)
        shapes[f"embeddings.{k}.bias"] = (n_out,)
    state = {}
    for key, shape in shapes.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.01
        state[key] = torch.from_numpy((scale * rng.standard_normal(shape)).astype(np.float32))
    return state


def main(official: Path) -> None:
    import torch
    import torch.nn as nn

    sys.modules.setdefault("resampy", types.ModuleType("resampy"))
    sys.path.insert(0, str(official))
    from torchvggish import vggish, vggish_input

    model = vggish.VGGish(urls={}, pretrained=False, preprocess=True, postprocess=False, device="cpu")
    model.load_state_dict(seeded_state_dict(), strict=True)
    model.embeddings = nn.Sequential(*list(model.embeddings.children())[:-1])  # as fadtk / frechet-audio-distance
    model.eval()
    signals = seeded_signals()
    out = {"features0": vggish_input.waveform_to_examples(signals[0], 16000, return_tensor=False)}
    with torch.no_grad():
        for k, signal in enumerate(signals):
            out[f"embedding{k}"] = model.forward(signal, 16000).numpy()
    path = Path(__file__).with_name("vggish-golden.npz")
    np.savez_compressed(path, **out)
    print({k: v.shape for k, v in out.items()}, "->", path)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
