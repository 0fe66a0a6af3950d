"""VGGish (Hershey et al., 2017), the embedding model of the original FAD, as harritaylor/torchvggish ports it.

Input: mono audio at 16 kHz (lassbench resamples other rates with soxr; torchvggish uses resampy), a log mel
spectrogram (25 ms periodic-Hann windows every 10 ms, 512-point FFT magnitude, 64 HTK mel bands over 125-7500 Hz,
``log(mel + 0.01)``), cut into non-overlapping 0.96 s examples of 96 frames (an incomplete last example is
dropped, as torchvggish does). Each example gives one 128-dim embedding: the VGG network's last linear layer
*before* its ReLU and without the PCA/quantisation post-processor, which is what fadtk (``vggish``) and
frechet-audio-distance (``use_pca=False, use_activation=False``, their defaults) embed.

Weights: a torchvggish state dict file (``vggish-10086976.pth`` of the torchvggish release, or any file with its
keys), read with ``torch.load(weights_only=True)`` and loaded strictly; never downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lassbench.audio import resample
from lassbench.errors import LassbenchError

SAMPLE_RATE = 16000
WINDOW, HOP, FFT = 400, 160, 512  # 25 ms, 10 ms at 16 kHz; FFT = next power of two
MEL_BANDS, MEL_LOW_HZ, MEL_HIGH_HZ, LOG_OFFSET = 64, 125.0, 7500.0, 0.01
EXAMPLE_FRAMES = 96  # 0.96 s examples, hop 0.96 s
MIN_SAMPLES = WINDOW + (EXAMPLE_FRAMES - 1) * HOP  # 0.975 s: the shortest input with one example


def log_mel_examples(signal: np.ndarray) -> np.ndarray:
    """``(n_examples, 96, 64)`` log mel patches of a 16 kHz mono signal (torchvggish's waveform_to_examples)."""
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    frames = _frame(x, WINDOW, HOP)
    window = 0.5 - 0.5 * np.cos(2 * np.pi / WINDOW * np.arange(WINDOW))  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, FFT))
    log_mel = np.log(magnitude @ _mel_matrix() + LOG_OFFSET)
    return _frame(log_mel, EXAMPLE_FRAMES, EXAMPLE_FRAMES)


def _frame(data: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Complete frames only, no padding."""
    count = 1 + (data.shape[0] - length) // hop
    starts = np.arange(count)[:, None] * hop + np.arange(length)[None, :]
    return data[starts]


def _mel_matrix() -> np.ndarray:
    """HTK-mel triangles ``(FFT // 2 + 1, MEL_BANDS)``, the DC bin zeroed (mel_features.spectrogram_to_mel_matrix)."""
    def mel(hz):
        return 1127.0 * np.log(1.0 + np.asarray(hz) / 700.0)

    bins = mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1))
    edges = np.linspace(mel(MEL_LOW_HZ), mel(MEL_HIGH_HZ), MEL_BANDS + 2)
    lower = (bins[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    upper = (edges[None, 2:] - bins[:, None]) / (edges[2:] - edges[1:-1])
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights[0, :] = 0.0
    return weights


def build_network():
    """torchvggish's VGG: its module names, so its state dict loads strictly; the last ReLU left out."""
    import torch.nn as nn

    layers, channels = [], 1
    for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    network = nn.Module()
    network.features = nn.Sequential(*layers)
    network.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                       nn.ReLU(True), nn.Linear(4096, 128))
    return network


class VggishEmbedder:
    """Loads a torchvggish state dict once; embeds signals as ``(n_examples, 128)`` arrays."""

    def __init__(self, path: Path, device: str = "cpu"):
        import torch

        from lassbench.audio import sha256_file

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated file, pickle with objects, not a torch file: one cause for the user
            raise LassbenchError(f"{path}: not a VGGish state dict readable with weights_only=True ({exc})") from exc
        self.network = build_network()
        if not isinstance(state, dict):
            raise LassbenchError(f"{path}: not a VGGish state dict (a {type(state).__name__})")
        mine = self.network.state_dict()
        missing, unexpected = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
        shapes = [k for k in mine if k in state and tuple(state[k].shape) != tuple(mine[k].shape)]
        if missing or unexpected or shapes:
            raise LassbenchError(f"{path}: not torchvggish's VGGish weights (missing {missing[:3]}, unexpected "
                                 f"{unexpected[:3]}, mis-shaped {shapes[:3]})")
        self.network.load_state_dict(state, strict=True)
        self.network.to(device).eval()
        self.device = device
        self.sha256 = sha256_file(path)
        self.name = str(path)

    @property
    def info(self) -> dict:
        return {"embedding_model": "VGGish (torchvggish layout)", "checkpoint": self.name, "sha256": self.sha256,
                "sample_rate": SAMPLE_RATE, "window_s": EXAMPLE_FRAMES * HOP / SAMPLE_RATE,
                "embedding": "128-dim output of the last linear layer, no ReLU, no PCA (fadtk / frechet-audio-"
                             "distance defaults); one per 0.96 s example, all examples of all items pooled",
                "resampling": "lassbench soxr (HQ) to 16 kHz"}

    def embed_one(self, signal: np.ndarray, sample_rate: int) -> np.ndarray:
        import torch

        audio = resample(np.asarray(signal, dtype=np.float32).reshape(-1), sample_rate, SAMPLE_RATE)
        if audio.size < MIN_SAMPLES:
            raise LassbenchError(f"VGGish needs at least {MIN_SAMPLES / SAMPLE_RATE:.3f} s of audio per item "
                                 f"(got {audio.size / SAMPLE_RATE:.3f} s)")
        examples = torch.from_numpy(log_mel_examples(audio)).float()[:, None]
        with torch.no_grad():
            x = self.network.features(examples.to(self.device))
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # torchvggish's transposes: (time, freq, channel)
            return self.network.embeddings(x).cpu().numpy().astype(np.float64)
