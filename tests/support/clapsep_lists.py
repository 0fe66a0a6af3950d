"""CLAPSep's evaluation lists as fixtures, in the layout of Aisaka0v0/CLAPSep 5404111 ``metadata/evaluation``: clips
named as each real list names them, a list in its caption style, and the benchmark ``build-dataset`` makes of them."""

from pathlib import Path

import numpy as np
import soundfile as sf

from lassbench.build import BuildConfig, build_dataset

RATE = 32000
HEADER = "source_file,positive_caption,noise_file,negative_caption"
# (file name of the list, its clip names as the real list writes them, its caption style)
LISTS = {
    "esc50": ("esc_eval.csv", ["4-218199-F-35.wav", "5-223103-A-31.wav", "4-196671-A-8.wav"], "the sound of {}"),
    "fsd50k": ("fsd_eval.csv", ["00326aa9.wav", "91553414.wav", "e61dfe87.wav"], "The sound of {}"),
    "music": ("music_eval.csv", ["-8AgRz5Jdrw_10.wav", "IGouH5bKhj8_11.wav", "VuDxLNdxl6I_15.wav"],
              "the sound of {}"),
    "audioset": ("audioset_eval.csv", ["YlCxQH8lmStU.wav", "YjjobvHzPstY.wav", "YWW4_c2J79QA.wav"],
                 '"The sounds of {}, Bleat and Speech"'),
}


def write_clips(folder: Path, names: list[str]) -> Path:
    """Clips of 5 s (ESC-50's length: padded to 10 s) and 12 s (cropped): seeded broadband noise with a slow envelope
    (a pure-tone reference makes BSS-Eval's 512-tap Toeplitz system near-singular)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        seconds = 5 if k % 2 == 0 else 12
        t = np.arange(seconds * RATE) / RATE
        noise = np.random.default_rng(k).standard_normal(t.size)
        audio = (0.1 + 0.05 * k) * noise * np.sin(np.pi * t / seconds)
        sf.write(str(folder / name), audio.astype(np.float32), RATE, subtype="FLOAT")
    return folder


def write_list(path: Path, names: list[str], caption: str) -> Path:
    """Rows in the real lists' pattern: each clip once as target, the next one as noise."""
    rows = [f"{names[k]},{caption.format(f'class {k}')},{names[(k + 1) % len(names)]},"
            f"{caption.format(f'class {(k + 1) % len(names)}')}" for k in range(len(names))]
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def build(tmp_path: Path, which: str):
    file_name, names, caption = LISTS[which]
    clips = write_clips(tmp_path / "clips", names)
    index = write_list(tmp_path / file_name, names, caption)
    return build_dataset(BuildConfig(out=tmp_path / "bench", sources=clips, protocol="clapsep", index=str(index),
                                     progress=False))
