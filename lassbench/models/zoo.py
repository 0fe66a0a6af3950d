"""The model zoo's catalogue: every model's name, query type, description and weights, without importing torch.

Listing the zoo (``lassbench models``, error messages naming the choices) must not pay for torch and transformers;
:mod:`lassbench.models.registry` pairs each entry with the code that builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    query_type: str  # caption | tags | class-id | none | oracle
    description: str
    trainable: bool
    published: bool = False  # runs a released checkpoint (lassbench.models.published)

    def shipped_checkpoint(self, size: str = "tiny") -> Path | None:
        path = CHECKPOINT_DIR / f"{self.name}-{size}.pt"
        return path if path.is_file() else None

    def weights(self, size: str = "tiny") -> str:
        """shipped | published | - (train one) | n/a (no weights)."""
        if self.published:
            return "published"
        if self.shipped_checkpoint(size):
            return "shipped"
        return "-" if self.trainable else "n/a"


ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in [
    ZooEntry("lassnet", "caption", "LASS-Net: ResUNet + FiLM conditioned on the text query", True),
    ZooEntry("tag-queried", "tags", "same backbone, queried by the target's class tags", True),
    ZooEntry("class-conditioned", "class-id", "same backbone, learned one-hot class embedding (no free text)", True),
    ZooEntry("mixture", "none", "returns the mixture (SDRi = 0 by definition)", False),
    ZooEntry("oracle-irm", "oracle", "ideal ratio mask from the reference (upper bound)", False),
    ZooEntry("oracle-ibm", "oracle", "ideal binary mask from the reference (upper bound)", False),
    ZooEntry("lassnet-release", "caption",
             "LASS-Net as released (liuxubo717/LASS): bert-mini + BatchNorm ResUNet, 32 kHz", False, True),
    ZooEntry("audiosep", "caption", "AudioSep (Audio-AGI/AudioSep): CLAP text + ResUNet30, 32 kHz", False, True),
    ZooEntry("dcase2024-baseline", "caption", "DCASE 2024 Task 9 baseline: AudioSep retrained at 16 kHz", False, True),
    ZooEntry("audiosep-dp", "caption", "AudioSep-DP (DCASE 2024 Task 9 winner): ResUNet30 + DPRNN, 16 kHz", False,
             True),
    ZooEntry("clapsep", "caption",
             "CLAPSep (Aisaka0v0/CLAPSep): LoRA-tuned CLAP HTSAT + decoder, positive and negative query, 32 kHz",
             False, True),
    ZooEntry("soloaudio", "caption",
             "SoloAudio (WangHelin1997/SoloAudio): CLAP text + latent diffusion transformer (DDIM) in a VAE, 24 kHz",
             False, True),
    ZooEntry("flowsep", "caption",
             "FlowSep (Audio-AGI/FlowSep): FLAN-T5 + rectified flow in a mel VAE latent + BigVGAN, 16 kHz", False,
             True),
    ZooEntry("sam-audio", "caption",
             "SAM Audio (facebookresearch/sam-audio), text prompts: T5 + flow-matching DiT over DAC-VAE latents, "
             "48 kHz; any size (small, base, large) from its config.json", False, True),
]}
