"""Run FlowSep's OFFICIAL language-queried inference on seeded weights of a tiny configuration; write its layout JSON
and golden outputs.

usage: python make_flowsep_golden.py OUT_DIR

Needs, outside lassbench: Audio-AGI/FlowSep d8164db exported under $LASSBENCH_OFFICIAL (default /work/official) as
Audio-AGI+FlowSep (its src/, lass_inference.py, lass_config/, metadata-master/), with pytorch_lightning, einops,
librosa, pandas, scipy, yaml and transformers importable. What runs is the official ``lass_inference.py`` as a
script (its ``__main__`` and ``main``: ``seed_everything(0)``, ``AudioDataset.read_wav_file`` +
``wav_feature_extraction``, ``LatentDiffusion`` built from the YAML and loaded strictly from the checkpoint,
``generate_sample`` with ``--infer_step`` Euler steps under the EMA weights), once per input file, in a copy of the
release's tree under OUT_DIR (the script reads ``src/bigvgan/config.json`` and ``src/bigvgan/g_01000000`` relative to
the working folder). Stand-ins, and why:
- google/flan-t5-large (a hub download) becomes a tiny ``T5EncoderModel`` (gated-GELU, as FLAN-T5) with a tiny
  T5 tokenizer (:func:`write_t5_tokenizer`);
- the UNet, the VAE and BigVGAN are built at a tiny width (UNet 32 channels, multipliers 1-2-3, one residual block
  per level, attention at 2x and 4x down-sampling; VAE 32 channels; BigVGAN 64 channels), keeping the release's mel
  front end, latent size (8 x 256 x 16), head width (32), up-sampling rates and dilations;
- the VAE's training loss (LPIPS with a pretrained VGG, a discriminator) becomes ``torch.nn.Identity`` and its
  ``reload_from_ckpt`` is dropped: neither is used at inference, and every weight comes from the checkpoint;
- the script asserts CUDA and moves tensors to "cuda": on this CPU-only machine "cuda" means the CPU;
- torch's global generator, which the script seeds once (``seed_everything(0)``) and then draws from several times,
  is re-seeded before the two draws that reach the estimate: ``ENCODE_SEED`` before each VAE posterior sample and
  ``SEED`` before ``solve_euler``'s initial noise, which lassbench's own generators reproduce;
- librosa 0.11 takes keyword arguments where the release (librosa < 0.10) passed them positionally: two wrappers
  pass them by name; ``torchaudio.load`` reads the input with soundfile (a 16 kHz float WAV, as torchaudio returns
  it); imports the language path never calls (ipdb, wandb, torchvision, taming, timm, requests) are empty modules;
  ``save_waveform`` is wrapped so that the float estimate is kept instead of written;
- the script declares ``--no_mixed`` with ``type=bool, action='store_false'``, which argparse refuses: the type is
  dropped.
"""

import json
import os
import runpy
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from make_goldens import layout_of, seed_into  # noqa: E402

OFFICIAL = Path(os.environ.get("LASSBENCH_OFFICIAL", "/work/official")) / "Audio-AGI+FlowSep"
SITE = [Path(os.environ.get("LASSBENCH_OFFICIAL", "/work/official")) / name for name in ("site", "site-clapsep")]
RATE = 16000
SECONDS = (3.1, 10.24)  # shorter than the model's 10.24 s, and exactly that
QUERIES = ["a dog barks", "the bird sings"]
STEPS, SEED, ENCODE_SEED = 20, 0, 1
SCALE_FACTOR = 0.75  # the release's is 1 / std of its training latents; any value other than 1 shows it is applied
STRIDE = 8  # every STRIDE-th sample of an estimate, every STRIDE-th mel or latent frame is stored
UNET = {"image_size": 64, "context_dim": [16], "in_channels": 16, "out_channels": 16, "model_channels": 32,
        "attention_resolutions": [4, 2], "num_res_blocks": 1, "channel_mult": [1, 2, 3], "num_head_channels": 32,
        "use_spatial_transformer": True, "transformer_depth": 1}
VAE = {"double_z": True, "z_channels": 8, "resolution": 256, "mel_bins": 64, "downsample_time": False,
       "in_channels": 1, "out_ch": 1, "ch": 32, "ch_mult": [1, 2, 4], "num_res_blocks": 1, "attn_resolutions": [],
       "dropout": 0.0}
VOCODER_CHANNELS = 64
VOCODER_GAIN = 0.5
T5 = {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2, "feed_forward_proj": "gated-gelu",
      "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128}
T5_PIECES = [*"abcdefghijklmnopqrstuvwxyz"]
torch.set_num_threads(1)


def flowsep_inputs() -> list[np.ndarray]:
    """Mono float32 mixtures at 16 kHz: two tones with an envelope plus seeded noise, at different levels."""
    rng = np.random.RandomState(5)
    out = []
    for k, seconds in enumerate(SECONDS):
        t = np.arange(int(round(seconds * RATE))) / RATE
        tone = np.sin(2 * np.pi * (300 + 500 * k) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t))
        out.append(((0.6 / (k + 1)) * tone + 0.05 * rng.randn(len(t))).astype(np.float32))
    return out


def write_t5_tokenizer(folder: Path):
    """A T5 (Unigram) tokenizer over single letters, saved as transformers saves google/flan-t5-large's."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *[(c, -1.0) for c in T5_PIECES], ("\u2581", -1.0),
             *[("\u2581" + c, -2.0) for c in T5_PIECES]]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def t5_config(vocab_size: int):
    from transformers import T5Config

    return T5Config(vocab_size=vocab_size, **T5)


def stub_modules() -> None:
    import pytorch_lightning  # noqa: F401  (imported before the stubs: both probe for torchvision and torchaudio)
    import soundfile as sf
    import transformers  # noqa: F401

    def load(path, *args, **kwargs):
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return torch.from_numpy(audio.T.copy()), rate

    def refuse(*args, **kwargs):
        raise RuntimeError("not on the language-queried path")

    stubs = {"ipdb": {"set_trace": refuse}, "wandb": {}, "requests": {}, "torchvision": {},
             "torchvision.utils": {"make_grid": refuse}, "taming": {}, "taming.modules": {},
             "taming.modules.vqvae": {}, "taming.modules.vqvae.quantize": {"VectorQuantizer2": None},
             "timm": {}, "timm.models": {}, "timm.models.layers": {"to_2tuple": None},
             "timm.models.vision_transformer": {"Block": None, "PatchEmbed": None,
                                                "VisionTransformer": torch.nn.Module},
             "torchaudio": {"load": load, "save": lambda *a, **k: None, "transforms": None,
                            "functional": types.SimpleNamespace(resample=refuse)}}
    for name, attrs in stubs.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    for parent, child in (("timm", "models"), ("timm.models", "vision_transformer"), ("timm.models", "layers"),
                          ("torchvision", "utils")):
        setattr(sys.modules[parent], child, sys.modules[f"{parent}.{child}"])
    for site in SITE:
        sys.path.insert(0, str(site))
    import librosa.filters
    import librosa.util

    mel, pad_center = librosa.filters.mel, librosa.util.pad_center
    librosa.filters.mel = lambda sr, n_fft, n_mels=128, fmin=0.0, fmax=None, **kw: mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, **kw)
    librosa.util.pad_center = lambda data, size=None, **kw: pad_center(data, size=size, **kw)


def cpu_for_cuda() -> None:
    """The script's "cuda" is this machine's CPU."""
    tensor_to, module_to = torch.Tensor.to, torch.nn.Module.to

    def strip(args, kwargs):
        args = tuple("cpu" if str(a).startswith("cuda") else a for a in args)
        if str(kwargs.get("device", "")).startswith("cuda"):
            kwargs["device"] = "cpu"
        return args, kwargs

    def to_tensor(self, *args, **kwargs):
        args, kwargs = strip(args, kwargs)
        return tensor_to(self, *args, **kwargs)

    def to_module(self, *args, **kwargs):
        args, kwargs = strip(args, kwargs)
        return module_to(self, *args, **kwargs)

    torch.Tensor.to, torch.nn.Module.to = to_tensor, to_module
    from lightning_fabric.utilities.device_dtype_mixin import _DeviceDtypeModuleMixin

    lightning_to = _DeviceDtypeModuleMixin.to

    def to_lightning(self, *args, **kwargs):
        args, kwargs = strip(args, kwargs)
        return lightning_to(self, *args, **kwargs)

    _DeviceDtypeModuleMixin.to = to_lightning
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.cuda.is_available = lambda: True


def argparse_store_false_without_type() -> None:
    """``--no_mixed`` is declared ``type=bool, action='store_false'``, which argparse refuses (a store_false flag
    takes no type): the type is dropped, the flag means what the script meant."""
    import argparse

    add = argparse.ArgumentParser.add_argument

    def add_argument(self, *args, **kwargs):
        if kwargs.get("action") == "store_false":
            kwargs.pop("type", None)
        return add(self, *args, **kwargs)

    argparse.ArgumentParser.add_argument = add_argument


def write_tree(out: Path) -> Path:
    """The release's tree, with the tiny configuration, an empty test split and the tiny vocoder file."""
    work = out / "official-run"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(OFFICIAL / "src", work / "src")
    shutil.copy(OFFICIAL / "lass_inference.py", work / "lass_inference.py")
    processed = work / "metadata-master" / "processed"
    processed.mkdir(parents=True)
    shutil.copy(OFFICIAL / "metadata-master" / "processed" / "class_labels_indices.csv", processed)
    (processed / "audiocaps_test.jsonl").write_text("")
    (processed / "dataset_root.json").write_text(json.dumps({"metadata": {"path": {"audiocaps": {
        "train": str(processed / "audiocaps_test.jsonl"), "test": str(processed / "audiocaps_test.jsonl"),
        "val": str(processed / "audiocaps_test.jsonl"),
        "class_label_indices": str(processed / "class_labels_indices.csv")}}}}))
    import yaml

    config = yaml.safe_load((OFFICIAL / "lass_config" / "2channel_flow.yaml").read_text())
    config["metadata_root"] = str(processed / "dataset_root.json")
    params = config["model"]["params"]
    params["unet_config"]["params"] = UNET
    first = params["first_stage_config"]["params"]
    first["ddconfig"] = VAE
    first.pop("reload_from_ckpt")
    first["lossconfig"] = {"target": "torch.nn.Identity"}
    (work / "lass_config").mkdir()
    (work / "lass_config" / "2channel_flow_tiny.yaml").write_text(yaml.safe_dump(config))
    vocoder = json.loads((OFFICIAL / "src" / "bigvgan" / "config.json").read_text())
    vocoder["upsample_initial_channel"] = VOCODER_CHANNELS
    (work / "src" / "bigvgan" / "config.json").write_text(json.dumps(vocoder))
    return work


def keep(key: str) -> bool:
    """Tensors the code computes stay as it computes them: anti-aliasing filters, the DDPM schedule, EMA counters."""
    computed = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "logvar",
                "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                "posterior_mean_coef1", "posterior_mean_coef2")
    return key.endswith(".filter") or key in computed or key in ("model_ema.decay", "model_ema.num_updates")


def tie_t5(state: dict, prefix: str = "cond_stage_models.0.model.") -> dict:
    """T5's input embedding is one tensor saved under two names (``shared``, ``encoder.embed_tokens``)."""
    state[prefix + "encoder.embed_tokens.weight"] = state[prefix + "shared.weight"]
    return state


def tame_vocoder(state: dict, prefix: str = "first_stage_model.vocoder.") -> dict:
    """Seeded BigVGAN convolutions at full scale make a chaotic vocoder (a 1e-6 change of its input moves its output
    by 3e-4, saturating the tanh); at half scale it is as well-conditioned as a trained one, so the golden compares
    arithmetic rather than float noise amplified."""
    for key, value in state.items():
        if key.startswith(prefix) and value.dim() == 3 and not key.endswith(".filter"):
            state[key] = VOCODER_GAIN * value
    return state


def write_seeded_files(work: Path, tokenizer) -> tuple[Path, dict]:
    """g_01000000 (BigVGAN with weight norm, as the release ships it) and the tiny v2_100k.ckpt, seeded."""
    import bigvgan
    import yaml
    from latent_diffusion.util import instantiate_from_config

    vocoder_config = bigvgan.AttrDict(json.loads((work / "src" / "bigvgan" / "config.json").read_text()))
    torch.save({"generator": seed_into(bigvgan.BigVGAN(vocoder_config), "", keep=keep)},
               work / "src" / "bigvgan" / "g_01000000")
    config = yaml.safe_load((work / "lass_config" / "2channel_flow_tiny.yaml").read_text())
    model = instantiate_from_config(config["model"])
    state = tame_vocoder(tie_t5(seed_into(model, "", keep=keep)))
    state["scale_factor"] = torch.tensor(SCALE_FACTOR)
    model.load_state_dict(state, strict=True)
    checkpoint = work / "model_logs" / "pretrained" / "v2_100k.ckpt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"state_dict": state}, checkpoint)
    return checkpoint, state


def patch_official(tokenizer, captured: dict) -> None:
    import transformers
    from latent_diffusion.models import ddpm_flow
    from latent_diffusion.modules.distributions import distributions
    from latent_diffusion.modules.encoders import modules
    from utilities.data import dataset

    transformers.AutoTokenizer.from_pretrained = classmethod(lambda cls, *a, **k: tokenizer)
    modules.AutoTokenizer.from_pretrained = transformers.AutoTokenizer.from_pretrained
    modules.T5EncoderModel.from_pretrained = classmethod(
        lambda cls, *a, **k: transformers.T5EncoderModel(t5_config(len(tokenizer))))

    def record(owner, name: str, key: str, pick=lambda result, *a: result):
        original = getattr(owner, name)

        def recorded(*args, **kwargs):
            result = original(*args, **kwargs)
            captured.setdefault(key, []).append(pick(result, *args))
            return result

        setattr(owner, name, recorded)

    record(modules.FlanT5HiddenState, "encode_text", "context", lambda result, *a: result[0].clone())
    record(dataset.AudioDataset, "wav_feature_extraction", "mixture_mel", lambda result, *a: result[0].clone())
    record(ddpm_flow.LatentDiffusion, "decode_first_stage", "mel", lambda result, *a: result.clone())
    sample = distributions.DiagonalGaussianDistribution.sample

    def seeded_sample(self):
        torch.manual_seed(ENCODE_SEED)
        return sample(self)

    distributions.DiagonalGaussianDistribution.sample = seeded_sample
    solve = ddpm_flow.LatentDiffusion.solve_euler

    def seeded_solve(self, *args, **kwargs):
        torch.manual_seed(SEED)
        captured.setdefault("mixture_latent", []).append(kwargs["x_T"].clone())
        result = solve(self, *args, **kwargs)
        captured.setdefault("final_latent", []).append(result.clone())
        return result

    ddpm_flow.LatentDiffusion.solve_euler = seeded_solve
    ddpm_flow.LatentDiffusion.save_waveform = lambda self, waveform, *a, **k: captured.setdefault(
        "estimate", []).append(np.array(waveform))


def main():
    import soundfile as sf

    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = write_tree(out)
    os.chdir(work)
    sys.path.insert(0, str(work / "src"))
    stub_modules()
    cpu_for_cuda()
    argparse_store_false_without_type()
    tokenizer = write_t5_tokenizer(out / "flan-t5")
    t5_config(len(tokenizer)).save_pretrained(str(out / "flan-t5"))
    captured: dict = {}
    patch_official(tokenizer, captured)
    checkpoint, state = write_seeded_files(work, tokenizer)
    mixtures = flowsep_inputs()
    for k, (mixture, query) in enumerate(zip(mixtures, QUERIES, strict=True)):
        wav = out / f"mixture{k}.wav"
        sf.write(str(wav), mixture, RATE, subtype="FLOAT")
        sys.argv = ["lass_inference.py", "-c", "lass_config/2channel_flow_tiny.yaml", "-t", query, "-a", str(wav),
                    "-l", str(checkpoint), "-s", str(STEPS)]
        runpy.run_path(str(work / "lass_inference.py"), run_name="__main__")
    layout = {"state": layout_of(state), "t5_config": t5_config(len(tokenizer)).to_dict()}
    (out / "flowsep-layout.json").write_text(json.dumps(layout))
    filters = [v for k, v in state.items() if k.endswith(".filter")]
    assert all(torch.equal(f, filters[0]) for f in filters)  # every anti-aliasing filter: cutoff 1/4, 12 taps
    golden = {"vocoder_filter": filters[0].numpy()}
    for k in range(len(mixtures)):
        golden[f"context{k}"] = captured["context"][k].numpy()[0]
        golden[f"mixture_mel{k}_every{STRIDE}"] = captured["mixture_mel"][k].numpy()[::STRIDE]
        golden[f"mixture_latent{k}_every{STRIDE}"] = captured["mixture_latent"][k].numpy()[0, :, ::STRIDE]
        golden[f"final_latent{k}_every{STRIDE}"] = captured["final_latent"][k].numpy()[0, :, ::STRIDE]
        golden[f"mel{k}_every{STRIDE}"] = captured["mel"][k].numpy()[0, 0, ::STRIDE]
        golden[f"estimate{k}_every{STRIDE}"] = captured["estimate"][k][0, 0, ::STRIDE]
    np.savez_compressed(out / "flowsep-golden.npz", **golden)
    for k in range(len(mixtures)):
        est = captured["estimate"][k][0, 0]
        print(f"input {k}: {len(mixtures[k])} samples -> estimate {est.shape}, mean |x| {np.abs(est).mean():.4g}, "
              f"max |x| {np.abs(est).max():.4g}; final latent max {captured['final_latent'][k].abs().max():.4g}; "
              f"mixture latent max {captured['mixture_latent'][k].abs().max():.4g}")


if __name__ == "__main__":
    main()
