"""The published systems of the zoo: what each one is, where its weights are published, and the separator that runs
it (text in, waveform out, resampled to and from the system's own rate)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from lassbench.errors import LassbenchError
from lassbench.models.published import clap_text, clapsep, flowsep, lassnet_release, soloaudio
from lassbench.models.published.resunet30 import ResUNet30
from lassbench.models.rate import fit_length as _fit
from lassbench.models.rate import resample_batch as _resample

SAMPLING_FAMILIES = ("soloaudio", "flowsep", "sam-audio")  # generative: an estimate depends on steps and seed
# diffusers' DDIMScheduler refuses more inference steps than training steps (its stride would be 0)
MAX_STEPS = {"soloaudio": soloaudio.TRAIN_STEPS}
SEED_MAX = 2 ** 64 - 1  # torch.Generator.manual_seed takes 0 .. 2**64 - 1 (a negative seed wraps around)


def check_sampler_settings(family: str, steps: int | None, seed: int | None) -> None:
    """``--steps`` / ``--sampler-seed`` a generative system can run: one step at least, no more than its schedule
    has, a seed torch's generator takes."""
    if steps is not None and steps < 1:
        raise LassbenchError(f"--steps {steps}: the sampler needs at least one step")
    if steps is not None and steps > MAX_STEPS.get(family, steps):
        raise LassbenchError(f"--steps {steps}: {family}'s sampler has {MAX_STEPS[family]} steps at most (its "
                             "training schedule's)")
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise LassbenchError(f"--sampler-seed {seed}: a seed is from 0 to {SEED_MAX}")


@dataclass(frozen=True)
class PublishedSpec:
    name: str
    family: str  # "lassnet-release" | "resunet30" | "clapsep" | "soloaudio" | "flowsep" | "sam-audio"
    sample_rate: int
    n_fft: int
    hop: int
    dprnn: bool
    text_encoder: str  # what --text-encoder must hold
    paper: str
    checkpoint: str  # where the weights are published (page + file)
    code: str


PUBLISHED: dict[str, PublishedSpec] = {
    "lassnet-release": PublishedSpec(
        "lassnet-release", "lassnet-release", 32000, 1024, 512, False,
        "bert-mini (prajjwal1/bert-mini) tokenizer folder (vocab.txt, or a saved tokenizer.json)",
        "Liu et al., Separate What You Describe, Interspeech 2022",
        "https://drive.google.com/file/d/1f8eCCYYaBdhsFqoi7PJMrT9Oo7GaWLdR (LASSNet.pt, linked from the README of "
        "github.com/liuxubo717/LASS)",
        "github.com/liuxubo717/LASS model/",
    ),
    "audiosep": PublishedSpec(
        "audiosep", "resunet30", 32000, 2048, 320, False,
        "roberta-base tokenizer folder (vocab.json + merges.txt, or a saved tokenizer.json)",
        "Liu et al., Separate Anything You Describe, arXiv:2308.05037",
        "https://huggingface.co/spaces/Audio-AGI/AudioSep/tree/main/checkpoint (audiosep_base_4M_steps.ckpt)",
        "github.com/Audio-AGI/AudioSep models/resunet.py + models/clap_encoder.py",
    ),
    "dcase2024-baseline": PublishedSpec(
        "dcase2024-baseline", "resunet30", 16000, 1024, 160, False,
        "roberta-base tokenizer folder (vocab.json + merges.txt, or a saved tokenizer.json)",
        "DCASE 2024 Task 9 baseline (AudioSep retrained at 16 kHz)",
        "https://zenodo.org/records/10887460 (audiosep,baseline-16k,step=200000.ckpt)",
        "github.com/Audio-AGI/dcase2024_task9_baseline models/resunet.py",
    ),
    "audiosep-dp": PublishedSpec(
        "audiosep-dp", "resunet30", 16000, 1024, 160, True,
        "roberta-base tokenizer folder (vocab.json + merges.txt, or a saved tokenizer.json)",
        "Yin et al., Exploring Text-Queried Sound Event Detection with Audio Source Separation, arXiv:2409.13292 "
        "(AudioSep-DP, DCASE 2024 Task 9 winner)",
        "https://zenodo.org/records/14208090 (AudioSep-DP at 16 kHz or 32 kHz)",
        "github.com/apple-yinhan/TQ-SED LASS_codes/models/resunet.py + FaSNet.py",
    ),
    "clapsep": PublishedSpec(
        "clapsep", "clapsep", 32000, 1024, 320, False,
        "roberta-base tokenizer folder with vocab.json + merges.txt",
        "Ma et al., CLAPSep: Leveraging Contrastive Pre-trained Model for Multi-Modal Query-Conditioned Target Sound "
        "Extraction, arXiv:2402.17455",
        "https://huggingface.co/spaces/AisakaMikoto/CLAPSep/tree/main/model (linked from the README of "
        "github.com/Aisaka0v0/CLAPSep), with LAION-CLAP's music_audioset_epoch_15_esc_90.14.pt",
        "github.com/Aisaka0v0/CLAPSep model/CLAPSep.py + model/CLAPSep_decoder.py",
    ),
    "soloaudio": PublishedSpec(
        "soloaudio", "soloaudio", 24000, 480, 480, False,  # n_fft, hop: a VAE latent frame (480 samples)
        "laion/larger_clap_general folder (config.json + model.safetensors + tokenizer), as transformers saves it",
        "Wang et al., SoloAudio: Target Sound Extraction with Language-oriented Audio Diffusion Transformer, "
        "ICASSP 2025, arXiv:2409.08425",
        "https://huggingface.co/westbrook/SoloAudio (soloaudio_v2.pt, with audio-vae.pt beside it; linked from the "
        "README of github.com/WangHelin1997/SoloAudio)",
        "github.com/WangHelin1997/SoloAudio tse_languageTSE.py + model/udit.py + vae_modules/stable_vae",
    ),
    "flowsep": PublishedSpec(
        "flowsep", "flowsep", 16000, 1024, 160, False,
        "google/flan-t5-large folder (config.json + tokenizer), as transformers saves it",
        "Yuan et al., FlowSep: Language-Queried Sound Separation with Rectified Flow Matching, ICASSP 2025, "
        "arXiv:2409.07614",
        "https://zenodo.org/records/13869712 (v2_100k.ckpt; linked from the README of github.com/Audio-AGI/FlowSep)",
        "github.com/Audio-AGI/FlowSep lass_inference.py + src/latent_diffusion/models/ddpm_flow.py",
    ),
    "sam-audio": PublishedSpec(
        "sam-audio", "sam-audio", 48000, 1920, 1920, False,  # n_fft, hop: a codec frame of the release (40 ms)
        "T5 folder named by the checkpoint's config.json (t5-base: config.json + weights + tokenizer), as "
        "transformers saves it",
        "Shi et al., SAM Audio: Segment Anything in Audio, arXiv:2512.18099",
        "https://huggingface.co/facebook/sam-audio-large (or -small, -base, and the -tv variants: the folder "
        "with config.json + checkpoint.pt; gated, linked from the README of github.com/facebookresearch/sam-audio)",
        "github.com/facebookresearch/sam-audio sam_audio/model/model.py + transformer.py + codec.py (dacvae)",
    ),
}

# Systems released at more than one rate: the checkpoint's STFT size (bn0's bins) picks the variant when it loads.
VARIANTS: dict[str, tuple[PublishedSpec, ...]] = {
    "audiosep-dp": (
        PUBLISHED["audiosep-dp"],
        replace(PUBLISHED["audiosep-dp"], sample_rate=32000, n_fft=2048, hop=320,
                code="github.com/apple-yinhan/TQ-SED LASS_codes/models/resunet_32k.py + FaSNet.py"),
    ),
}


class AudioSepSystem(nn.Module):
    """The Lightning module's two halves, under its attribute names (``ss_model``, ``query_encoder``)."""

    def __init__(self, spec: PublishedSpec, roberta: nn.Module, dprnn: tuple[int, int] | None) -> None:
        super().__init__()
        self.ss_model = ResUNet30(spec.n_fft, spec.hop, dprnn=dprnn)
        self.query_encoder = clap_text.ClapQueryEncoder(roberta)
        self.chunked = False  # AudioSep's chunk_inference (pipeline.py use_chunk=True)

    def separate(self, wav: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        condition = self.query_encoder(input_ids, attention_mask)
        if self.chunked:
            return torch.cat([self.ss_model.chunk_inference(w[None], c[None]) for w, c in zip(wav, condition,
                                                                                             strict=True)])
        return self.ss_model(wav, condition)


class PublishedSeparator(nn.Module):
    """A published system as a lassbench separator: ``model(mixture[B, T], QueryBatch) -> estimate[B, T]``.

    ``input_rate`` is the rate of the mixtures it is given (``lassbench run`` sets it from the benchmark); audio is
    resampled to the system's rate and back, so a 32 kHz system runs on a 16 kHz benchmark and vice versa.
    """

    query_type = "caption"

    @property
    def takes_negative_query(self) -> bool:
        """CLAPSep also takes what *not* to separate (``QueryBatch.negatives``)."""
        return self.spec.family == "clapsep"

    def __init__(self, spec: PublishedSpec, net: nn.Module, tokenizer, tokenizer_source: str) -> None:
        super().__init__()
        self.spec = spec
        self.net = net
        self.tokenizer = tokenizer
        self.tokenizer_source = tokenizer_source  # run.json's text_encoder
        self.config_sha256: str | None = None  # a release whose config.json beside the weights sets the model
        self.sample_rate = spec.sample_rate
        self.n_fft = spec.n_fft
        self.input_rate = spec.sample_rate
        # LASS-Net's load_wav zero-pads every clip to 10 s before the STFT; the net pads no further
        self.min_samples = 10 * spec.sample_rate if spec.family == "lassnet-release" else 0

    def forward(self, mixture: torch.Tensor, batch) -> torch.Tensor:
        wav = _resample(mixture, self.input_rate, self.sample_rate)
        length = wav.shape[-1]
        wav = _fit(wav, max(length, self.min_samples))
        if self.spec.family == "clapsep":
            estimate = self.net.separate(wav, self._clapsep_embedding(batch, mixture.device))
        else:
            tokenize = {"lassnet-release": lassnet_release.tokenize, "soloaudio": soloaudio.tokenize,
                        "flowsep": flowsep.tokenize, "sam-audio": getattr(self.net, "tokenize", None),
                        }.get(self.spec.family) or clap_text.tokenize
            input_ids, attention_mask = tokenize(self.tokenizer, list(batch.queries))
            estimate = self.net.separate(wav, input_ids.to(mixture.device), attention_mask.to(mixture.device))
        return _fit(_resample(estimate[..., :length], self.sample_rate, self.input_rate), mixture.shape[-1])

    @property
    def sampler(self) -> dict | None:
        """A sampling system's settings (solver, steps, seed), recorded in run.json; None for the others."""
        return getattr(self.net, "sampler", None)

    def set_sampler(self, steps: int | None = None, seed: int | None = None) -> None:
        """``--steps`` / ``--sampler-seed``: replace the official defaults (None keeps them)."""
        if self.sampler is None:
            raise LassbenchError(f"{self.spec.name} does not sample: --steps / --sampler-seed are for the "
                                 f"generative systems ({', '.join(SAMPLING_FAMILIES)})")
        check_sampler_settings(self.spec.family, steps, seed)
        if steps is not None:
            self.net.steps = steps
        if seed is not None:
            self.net.seed = seed

    def _clapsep_embedding(self, batch, device) -> torch.Tensor:
        negatives = list(getattr(batch, "negatives", None) or [""] * len(batch.queries))
        absent = [not n.strip() for n in negatives]
        positive = [t.to(device) for t in clapsep.tokenize(self.tokenizer, list(batch.queries))]
        negative = None if all(absent) else [t.to(device) for t in clapsep.tokenize(self.tokenizer, negatives)]
        return self.net.embed(positive, negative, absent)


def separator_parameters(spec: PublishedSpec) -> int:
    """Parameters of the separator (text encoder excluded), counted on the meta device: nothing is allocated.
    CLAPSep's: its LoRA-tuned HTSAT copy and its decoder.
    AudioSep-DP's DPRNN is counted at the released size (6 layers, hidden 256: TQ-SED config/edit_config_yaml.py).
    SoloAudio's: its UDiT and its VAE. FlowSep's: its UNet, its mel VAE and its vocoder.
    SAM Audio's: its DAC-VAE codec and its transformer with their projections, at the official code's default
    configuration (``SAMAudioConfig()``); a released size's own config.json sets its real size."""
    with torch.device("meta"):
        if spec.family == "lassnet-release":
            net = lassnet_release.UNetRes_FiLM(cond_dim=256)
        elif spec.family == "clapsep":  # the released configuration (experiments/CLAPSep_base/config.json)
            net = nn.ModuleList([clapsep.HTSATEncoder(**clapsep.RELEASED_ENCODER),
                                 clapsep.MaskDecoder(**clapsep.RELEASED_DECODER)])
        elif spec.family == "soloaudio":
            net = nn.ModuleList([soloaudio.UDiT(**soloaudio.RELEASED_UDIT),
                                 soloaudio.OobleckVAE(**soloaudio.RELEASED_VAE)])
        elif spec.family == "flowsep":
            net = nn.ModuleList([flowsep.UNetModel(**flowsep.RELEASED_UNET), flowsep.MelVAE(**flowsep.RELEASED_VAE),
                                 flowsep.BigVGAN(**flowsep.RELEASED_VOCODER)])
        elif spec.family == "sam-audio":
            from lassbench.models.published.sam_audio import SAMAudioSystem
            from lassbench.models.published.sam_audio_config import shape_of

            net = SAMAudioSystem(shape_of({}), None)
        else:
            net = ResUNet30(spec.n_fft, spec.hop, dprnn=(6, 256) if spec.dprnn else None)
    return sum(p.numel() for p in net.parameters())

