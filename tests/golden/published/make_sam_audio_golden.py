"""Run SAM Audio's OFFICIAL text-prompted separation on seeded weights of a tiny configuration; write its layout JSON
and golden outputs.

usage: python make_sam_audio_golden.py OUT_DIR

Needs, outside lassbench: facebookresearch/sam-audio 68b48d4 (its ``sam_audio/`` package) exported under
$LASSBENCH_OFFICIAL (default /work/official) as sam-audio, the DAC-VAE codec package ``dacvae`` under
$LASSBENCH_OFFICIAL/dacvae (facebookresearch/dacvae's ``dacvae/model`` and ``dacvae/nn``, here as republished with
their Meta headers by kadirnar/fast-dacvae 5956d8c, its first commit, before its own optimisations), and einops +
torchdiffeq 0.2.5 (pip install --target $LASSBENCH_OFFICIAL/site), with transformers and huggingface_hub importable.
What runs is the official code path of the README's text prompting: ``SAMAudioProcessor`` built from the folder's
config.json and called on the mixture tensors, ``SAMAudio`` built by ``BaseModel._from_pretrained`` from config.json +
checkpoint.pt (its strict ``load_state_dict``), ``T5TextEncoder`` loading T5 and its tokenizer from the folder the
config names, then ``model.separate(batch)`` with its defaults (``DFLT_ODE_OPT``: torchdiffeq's midpoint method, step
2/32; ``reranking_candidates=1``; ``predict_spans=False``). Stand-ins, and why:
- t5-base (a hub download) becomes a tiny random ``T5EncoderModel`` (1 layer, width 16) saved with
  ``save_pretrained`` beside the tiny T5 tokenizer of make_flowsep_golden.py, and config.json names that folder;
- the codec and the transformer are built at a tiny width (encoder 4 channels, strides 2-4-4-10, latent 16,
  codebook 8; DiT width 32, 2 heads, 2 layers), keeping the watermarking decoder's fixed widths (1,536 channels,
  4 blocks); the Perception Encoder (perception_models' ``pe.CLIP``) is a Linear(4, 4), so that its keys are in the
  checkpoint as in the release: text prompting never runs it;
- perception_models (``core.*``), torchvision, torchaudio and torchcodec are stubs: the text path never calls them
  (no video, no span prediction, no judge, tensors instead of files); no ranker is configured
  (``reranking_candidates=1`` never calls one);
- huggingface_hub 2.x no longer passes ``proxies`` / ``resume_download`` to ``_from_pretrained``, which the release
  declares as required: ``SAMAudio._from_pretrained`` is called directly with them;
- the official code draws its noise and the decoder's watermark messages from torch's global generator: the golden
  seeds it (``torch.manual_seed(SEED)``) before each ``separate`` call; the second mixture is given a fixed initial
  noise (the ``noise`` argument), so only the messages come from the generator there.
Recorded from inside the official run: the codec features, the text features, the first two vector-field calls,
the noise, the watermark messages, the ODE's final state, and the target / residual waveforms.
"""

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from make_flowsep_golden import write_t5_tokenizer  # noqa: E402
from make_goldens import layout_of, seed_into, stub_module  # noqa: E402

OFFICIAL = Path(os.environ.get("LASSBENCH_OFFICIAL", "/work/official"))
RATE = 48000
SAMPLES = (12062, 24000)  # 12,062 is not a whole number of 320-sample frames
QUERIES = ["a dog barks", "the bird sings"]
SEED = 0
NOISE_SEED = 11  # the second mixture's given initial noise
CODEC = {"encoder_dim": 4, "encoder_rates": [2, 4, 4, 10], "latent_dim": 16, "decoder_dim": 1536,
         "decoder_rates": [2, 4, 4, 10], "n_codebooks": 16, "codebook_size": 1024, "codebook_dim": 8,
         "sample_rate": RATE}
TRANSFORMER = {"dim": 32, "n_heads": 2, "n_layers": 2, "context_dim": 32, "out_channels": 2 * CODEC["codebook_dim"]}
T5 = {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2, "relative_attention_num_buckets": 8,
      "relative_attention_max_distance": 32}
VISION_DIM = 12
torch.set_num_threads(1)


def sam_audio_inputs() -> list[np.ndarray]:
    """Mono float32 mixtures at 48 kHz: two tones with an envelope plus seeded noise, at different levels."""
    rng = np.random.RandomState(9)
    out = []
    for k, n in enumerate(SAMPLES):
        t = np.arange(n) / RATE
        tone = np.sin(2 * np.pi * (440 + 660 * k) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 7.0 * t))
        out.append(((0.5 / (k + 1)) * tone + 0.05 * rng.randn(n)).astype(np.float32))
    return out


def initial_noise(frames: int) -> torch.Tensor:
    """The fixed initial noise of the second mixture: [1, frames, 2 x codebook_dim]."""
    return torch.randn(1, frames, 2 * CODEC["codebook_dim"], generator=torch.Generator().manual_seed(NOISE_SEED))


def sam_config(t5_folder: str) -> dict:
    """The checkpoint folder's config.json at the tiny width."""
    return {"in_channels": 6 * CODEC["codebook_dim"], "audio_codec": CODEC,
            "text_encoder": {"name": t5_folder, "dim": T5["d_model"]},
            "vision_encoder": {"dim": VISION_DIM, "name": "tiny-pe"}, "transformer": TRANSFORMER,
            "num_anchors": 3, "anchor_embedding_dim": 8, "visual_ranker": None, "text_ranker": None,
            "span_predictor": None}


def tie_t5(state: dict) -> dict:
    """T5's input embedding is one tensor under two names (``shared``, ``encoder.embed_tokens``)."""
    state["encoder.embed_tokens.weight"] = state["shared.weight"]
    return state


def stub_modules() -> None:
    import transformers  # noqa: F401  (imported before the stubs: it probes for torchvision and torchaudio)
    from transformers import AutoTokenizer, ModernBertConfig, T5EncoderModel  # noqa: F401

    class TinyCLIP:
        @staticmethod
        def from_config(name, *args, **kwargs):
            return torch.nn.Linear(4, 4)

    class Dummy:
        def __init__(self, *args, **kwargs):
            pass

    core = stub_module("core")
    core.audio_visual_encoder = stub_module("core.audio_visual_encoder", PEAudioFrame=Dummy,
                                            PEAudioFrameTransform=Dummy)
    stub_module("core.audio_visual_encoder.config", TransformerConfig=Dummy)
    stub_module("core.audio_visual_encoder.transformer", BaseModelOutputWithPooling=Dummy, Transformer=Dummy)
    core.vision_encoder = stub_module("core.vision_encoder", pe=types.SimpleNamespace(CLIP=TinyCLIP))
    transforms = stub_module("torchvision.transforms", InterpolationMode=types.SimpleNamespace(BICUBIC="bicubic"),
                        Resize=Dummy, Compose=Dummy, Lambda=Dummy, Normalize=Dummy)
    stub_module("torchvision", transforms=transforms)
    stub_module("torchaudio", functional=None)
    codec = stub_module("torchcodec")
    codec.decoders = stub_module("torchcodec.decoders", AudioDecoder=Dummy, VideoDecoder=Dummy)
    codec.encoders = stub_module("torchcodec.encoders", AudioEncoder=Dummy)


def write_release(out: Path) -> tuple[Path, dict, dict]:
    """The tiny T5 folder (save_pretrained + tokenizer) and the checkpoint folder (config.json + checkpoint.pt)."""
    from transformers import T5Config, T5EncoderModel

    t5_folder = out / "t5-tiny"
    tokenizer = write_t5_tokenizer(t5_folder)
    t5_config = T5Config(vocab_size=len(tokenizer), **T5)
    t5 = T5EncoderModel(t5_config).eval()
    t5_state = seed_into(t5, "")
    t5.load_state_dict(tie_t5(dict(t5_state)))
    t5.save_pretrained(str(t5_folder))
    release = out / "sam-audio-tiny"
    release.mkdir(parents=True, exist_ok=True)
    config = sam_config(str(t5_folder))
    (release / "config.json").write_text(json.dumps(config, indent=2))
    from sam_audio.model.config import SAMAudioConfig
    from sam_audio.model.model import SAMAudio

    skeleton = SAMAudio(SAMAudioConfig(**json.loads(json.dumps(config))))
    state = {k: v for k, v in seed_into(skeleton, "").items() if not k.startswith("text_encoder.")}
    torch.save(state, release / "checkpoint.pt")
    return release, state, {"t5": t5_state, "t5_config": t5_config.to_dict()}


def patch_official(captured: dict) -> None:
    import importlib

    dac = importlib.import_module("dacvae.model.dacvae")
    official = importlib.import_module("sam_audio.model.model")  # the package re-exports a name "model"

    odeint = official.odeint

    def recorded_odeint(func, y0, t, **kwargs):
        states = odeint(func, y0, t, **kwargs)
        captured.setdefault("ode_options", []).append(kwargs)
        captured.setdefault("final", []).append(states[-1].clone())
        return states

    official.odeint = recorded_odeint
    forward = official.SAMAudio.forward

    def recorded_forward(self, noisy_audio, **kwargs):
        out = forward(self, noisy_audio=noisy_audio, **kwargs)
        count = captured["count"] = captured.get("count", 0) + 1
        if (count - 1) % 32 < 2:  # the first two of each separation's 32 calls
            captured.setdefault("calls", []).append((kwargs["time"].clone(), noisy_audio.clone(), out.clone()))
        return out

    official.SAMAudio.forward = recorded_forward
    features = official.SAMAudio._get_audio_features

    def recorded_features(self, audios):
        out = features(self, audios)
        captured.setdefault("features", []).append(out.clone())
        return out

    official.SAMAudio._get_audio_features = recorded_features
    random_message = dac.Watermarker.random_message

    def recorded_message(self, bsz):
        message = random_message(self, bsz)
        captured.setdefault("message", []).append(message.clone())
        return message

    dac.Watermarker.random_message = recorded_message


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for path in (OFFICIAL / "site", OFFICIAL / "dacvae", OFFICIAL / "sam-audio"):
        sys.path.insert(0, str(path))
    stub_modules()
    release, state, t5 = write_release(out)
    from sam_audio import SAMAudio, SAMAudioProcessor

    captured: dict = {}
    patch_official(captured)
    model = SAMAudio._from_pretrained(model_id=str(release), cache_dir=None, force_download=False, proxies=None,
                                      resume_download=False, local_files_only=True, token=None).eval()
    text = model.text_encoder.forward
    model.text_encoder.forward = lambda texts: captured.setdefault("text", []).append(text(texts)) or \
        captured["text"][-1]
    processor = SAMAudioProcessor.from_pretrained(str(release))
    results = []
    for k, (mixture, query) in enumerate(zip(sam_audio_inputs(), QUERIES, strict=True)):
        batch = processor(descriptions=[query], audios=[torch.from_numpy(mixture)[None]])
        frames = int(batch.sizes[0])
        torch.manual_seed(SEED)
        with torch.inference_mode():
            results.append(model.separate(batch, noise=initial_noise(frames) if k == 1 else None))
    layout = {"checkpoint": layout_of(state), "t5": layout_of(t5["t5"]), "t5_config": t5["t5_config"],
              "config": sam_config("T5_FOLDER")}
    (out / "sam-audio-layout.json").write_text(json.dumps(layout))
    golden = {}
    for k, result in enumerate(results):
        hidden, mask = captured["text"][k]
        golden[f"text{k}"], golden[f"text_mask{k}"] = hidden.numpy()[0], mask.numpy()[0]
        golden[f"features{k}"] = captured["features"][k].numpy()[0]
        golden[f"noise{k}"] = result.noise.numpy()[0]
        golden[f"message{k}"] = captured["message"][k].numpy()
        golden[f"final{k}"] = captured["final"][k].numpy()[0]
        for j in range(2):
            time, noisy, field = captured["calls"][2 * k + j]
            golden[f"call{k}_{j}_time"], golden[f"call{k}_{j}_input"] = time.numpy(), noisy.numpy()[0]
            golden[f"call{k}_{j}_output"] = field.numpy()[0]
        golden[f"target{k}"], golden[f"residual{k}"] = result.target[0].numpy(), result.residual[0].numpy()
    np.savez_compressed(out / "sam-audio-golden.npz", **golden)
    print("ODE options:", captured["ode_options"][0], "vector-field calls:", captured["count"])
    for k in range(len(results)):
        target = golden[f"target{k}"]
        print(f"input {k}: {SAMPLES[k]} samples -> target {target.shape}, max |target| {np.abs(target).max():.4g}, "
              f"max |residual| {np.abs(golden[f'residual{k}']).max():.4g}, "
              f"final max {np.abs(golden[f'final{k}']).max():.4g}, "
              f"message {golden[f'message{k}'].astype(int).tolist()}")


if __name__ == "__main__":
    main()
