"""Run SoloAudio's OFFICIAL language-queried inference on seeded weights of a tiny configuration; write its layout JSON
and golden outputs.

usage: python make_soloaudio_golden.py OUT_DIR

Needs, outside lassbench: WangHelin1997/SoloAudio d5aa243 checked out under $LASSBENCH_OFFICIAL (default
/work/official) as WangHelin1997+SoloAudio, with diffusers 0.30 (its DDIMScheduler), einops, librosa, scipy, yaml and
transformers importable. What runs is the official ``tse_languageTSE.py`` as a script (its ``__main__``: librosa
load at 24 kHz, ``Autoencoder(..., 'stable_vae', quantization_first=True)`` built by ``load_vae`` from the VAE file and
the ``config.json`` beside it, the CLAP processor and ``get_text_features``, ``UDiT`` from the YAML, diffusers'
``DDIMScheduler``, ``sample_diffusion``), once per input file. Stand-ins, and why:
- laion/larger_clap_general (a hub download) becomes a tiny ``ClapModel`` with the RoBERTa tokenizer of
  tests/support/published_fixtures.py; transformers 5's ``get_text_features`` returns an output object where 4.44 (the
  release's environment) returned the tensor: the stand-in returns its ``pooler_output``, which is that tensor;
- the VAE and the UDiT are built at a tiny width (VAE 4 channels, latent 8; UDiT hidden 32, depth 2, 2 heads, CLAP
  projection 16) with the released strides, so a latent frame is 480 samples as in the release;
- the VAE bottleneck samples its posterior from torch's global generator, which the script never seeds: the golden
  seeds it (``torch.manual_seed(ENCODE_SEED)``) at each encode, which lassbench's own generator reproduces;
- imports the language path never calls (torchaudio, alias_free_torch, vector_quantize_pytorch, audiotools, the DAC
  package) are empty modules; ``utils.save_audio`` (int16 WAV) is wrapped so that the float estimate is kept before
  it is written.
"""

import json
import os
import runpy
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from make_goldens import layout_of, seed_into  # noqa: E402

from support import published_fixtures as fx  # noqa: E402

OFFICIAL = Path(os.environ.get("LASSBENCH_OFFICIAL", "/work/official")) / "WangHelin1997+SoloAudio"
RATE = 24000
SECONDS = (0.61, 2.3)  # 0.61 s is not a whole number of 480-sample frames
QUERIES = ["a dog barks", "the bird sings"]
STEPS, SEED, ENCODE_SEED = 50, 2024, 0
VAE = {"channels": 4, "c_mults": [1, 2, 4, 8], "strides": [2, 4, 6, 10], "latent_dim": 8}
UDIT = {"input_dim": 16, "output_dim": 8, "pos_method": "none", "pos_length": 500, "timbre_dim": 16,
        "hidden_size": 32, "depth": 2, "num_heads": 2}
CLAP_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 40, "projection_dim": 16}
CLAP_AUDIO = {"depths": [1, 1, 1, 1], "num_attention_heads": [1, 1, 1, 1], "patch_embeds_hidden_size": 8,
              "hidden_size": 64, "projection_dim": 16, "num_classes": 4}
torch.set_num_threads(1)


def soloaudio_inputs() -> list[np.ndarray]:
    """Mono float32 mixtures at 24 kHz: two tones with an envelope plus seeded noise."""
    rng = np.random.RandomState(5)
    out = []
    for k, seconds in enumerate(SECONDS):
        t = np.arange(int(round(seconds * RATE))) / RATE
        tone = np.sin(2 * np.pi * (200 + 300 * k) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.7 * t))
        out.append((0.3 * tone + 0.05 * rng.randn(len(t))).astype(np.float32))
    return out


def vae_config() -> dict:
    """pretrained_models/config.json at the tiny width."""
    block = {"channels": VAE["channels"], "c_mults": VAE["c_mults"], "strides": VAE["strides"], "use_snake": True}
    return {"model_type": "autoencoder", "sample_size": 12000, "sample_rate": RATE, "audio_channels": 1,
            "model": {"encoder": {"type": "oobleck", "config": {"in_channels": 1, **block,
                                                                "latent_dim": 2 * VAE["latent_dim"]}},
                      "decoder": {"type": "oobleck", "config": {"out_channels": 1, **block,
                                                                "latent_dim": VAE["latent_dim"], "final_tanh": False}},
                      "bottleneck": {"type": "vae"}, "latent_dim": VAE["latent_dim"], "downsampling_ratio": 480,
                      "io_channels": 1}}


def stub_modules() -> None:
    for name, attrs in {"torchaudio": {"transforms": None}, "alias_free_torch": {"Activation1d": None},
                        "vector_quantize_pytorch": {"ResidualVQ": None, "FSQ": None},
                        "vae_modules.dac": {"DAC": None},
                        "audiotools": {"AudioSignal": None, "STFTParams": None}}.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module


def keep(key: str) -> bool:
    """Tensors computed by the code stay as it computes them: rotary frequencies, text index buffers."""
    return key.endswith(("inv_freq", "position_ids", "token_type_ids"))


def write_seeded_files(out: Path, tokenizer):
    """The tiny UDiT (soloaudio_v2.pt), VAE (audio-vae.pt + config.json) and CLAP, each seeded in its layout."""
    import yaml
    from model.udit import UDiT
    from transformers import ClapConfig, ClapModel
    from vae_modules.stable_vae.models.autoencoders import create_autoencoder_from_config

    weights = out / "pretrained_models"
    weights.mkdir(parents=True, exist_ok=True)
    udit = UDiT(**UDIT)
    udit_state = seed_into(udit, "", keep=keep)
    torch.save({"model": udit_state}, weights / "soloaudio_v2.pt")
    (weights / "config.json").write_text(json.dumps(vae_config()))
    vae_state = seed_into(create_autoencoder_from_config(vae_config()), "autoencoder.", keep=keep)
    torch.save({"state_dict": vae_state}, weights / "audio-vae.pt")
    config = yaml.safe_load((OFFICIAL / "config" / "SoloAudio.yaml").read_text())
    config["diffwrap"]["UDiT"] = UDIT
    (weights / "SoloAudio-tiny.yaml").write_text(yaml.safe_dump(config))
    clap_config = ClapConfig(text_config={**CLAP_TEXT, "vocab_size": len(tokenizer)}, audio_config=CLAP_AUDIO,
                             projection_dim=CLAP_TEXT["projection_dim"])
    clap = ClapModel(clap_config).eval()
    clap_state = seed_into(clap, "", keep=keep)
    return weights, {"udit": udit_state, "vae": vae_state, "clap": clap_state}, clap, clap_config


def patch_official(clap, tokenizer, captured: dict) -> None:
    import transformers
    import utils
    from vae_modules.autoencoder_wrapper import Autoencoder
    from vae_modules.stable_vae.models import bottleneck

    transformers.ClapModel.from_pretrained = classmethod(lambda cls, *a, **k: clap)
    transformers.AutoProcessor.from_pretrained = classmethod(
        lambda cls, *a, **k: lambda text=None, **kw: tokenizer(text, **kw))
    clap.get_text_features = lambda **inputs: captured.setdefault("timbre", []).append(
        type(clap).get_text_features(clap, **inputs).pooler_output) or captured["timbre"][-1]
    encode = bottleneck.VAEBottleneck.encode

    def seeded_encode(self, x, return_info=False, **kwargs):
        torch.manual_seed(ENCODE_SEED)
        return encode(self, x, return_info, **kwargs)

    bottleneck.VAEBottleneck.encode = seeded_encode
    forward = Autoencoder.forward

    def recorded(self, audio=None, embedding=None):
        result = forward(self, audio=audio, embedding=embedding)
        captured.setdefault("mixture_latent" if audio is not None else "final_latent", []).append(
            result if audio is not None else embedding)
        return result

    Autoencoder.forward = recorded
    utils.save_audio = lambda path, rate, audio: captured.setdefault("estimate", []).append(audio.clone())


def main():
    import soundfile as sf
    from transformers import RobertaTokenizer

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(OFFICIAL))
    stub_modules()
    vocab = fx.write_roberta_vocab(out / "roberta-vocab")
    tokenizer = RobertaTokenizer(str(vocab / "vocab.json"), str(vocab / "merges.txt"))
    weights, states, clap, clap_config = write_seeded_files(out, tokenizer)
    captured: dict = {}
    patch_official(clap, tokenizer, captured)
    mixtures = soloaudio_inputs()
    for k, (mixture, query) in enumerate(zip(mixtures, QUERIES, strict=True)):
        wav = out / f"mixture{k}.wav"
        sf.write(str(wav), mixture, RATE, subtype="FLOAT")
        sys.argv = ["tse_languageTSE.py", "--device", "cpu", "--output_dir", str(out / "official-output"),
                    "--mixture", str(wav), "--enrollment", query, "--autoencoder-path",
                    str(weights / "audio-vae.pt"), "--diffusion-config", str(weights / "SoloAudio-tiny.yaml"),
                    "--diffusion-ckpt", str(weights / "soloaudio_v2.pt"), "--num_infer_steps", str(STEPS),
                    "--random-seed", str(SEED)]
        runpy.run_path(str(OFFICIAL / "tse_languageTSE.py"), run_name="__main__")
    layout = {name: layout_of(state) for name, state in states.items()}
    layout["clap_config"] = clap_config.to_dict()
    (out / "soloaudio-layout.json").write_text(json.dumps(layout))
    golden = {}
    for k in range(len(mixtures)):
        golden[f"estimate{k}"] = captured["estimate"][k].numpy()[0]
        golden[f"mixture_latent{k}"] = captured["mixture_latent"][k].numpy()[0]
        golden[f"final_latent{k}"] = captured["final_latent"][k].numpy()[0]
        golden[f"timbre{k}"] = captured["timbre"][k].numpy()[0]
    np.savez_compressed(out / "soloaudio-golden.npz", **golden)
    for k in range(len(mixtures)):
        est = golden[f"estimate{k}"]
        print(f"input {k}: {len(mixtures[k])} samples -> estimate {est.shape}, mean |x| {np.abs(est).mean():.4g}, "
              f"max |x| {np.abs(est).max():.4g}; final latent max {np.abs(golden[f'final_latent{k}']).max():.4g}")


if __name__ == "__main__":
    main()
