"""Run CLAPSep's OFFICIAL test path on seeded weights of a tiny configuration; write its layout JSON + golden outputs.

usage: python make_clapsep_golden.py OUT_DIR

Needs, outside lassbench: Aisaka0v0/CLAPSep 5404111 checked out under $LASSBENCH_OFFICIAL (default /work/official)
as Aisaka0v0+CLAPSep, and laion-clap 1.1.7, loralib 0.1.2, torchlibrosa 0.1.0, pytorch-lightning, torchmetrics and
einops importable, with pytorch/audio's ``torchaudio/functional/functional.py`` (2.11) on $TORCHAUDIO_FUNCTIONAL (its
C extension does not load against other torch builds, so only its two pure-Python resampling functions are executed,
as ``transforms.Resample`` calls them). What runs is the official code: ``model/CLAPSep.py`` ``LightningModule``
(LoRA via ``process_model``, the forward hooks, ``test_step``) and ``model/CLAPSep_decoder.py`` ``HTSAT_Decoder``,
laion-clap's ``HTSAT_Swin_Transformer``, ``CLAP`` (``clap_module/model.py``) and ``CLAP_Module.get_text_embedding``
(``hook.py``). Stand-ins, and why: roberta-base and its tokenizer (hub downloads) become a 1-layer RoBERTa and the
tokenizer of tests/support/published_fixtures.py; HTSAT is built at a tiny width (16 channels, depths 2-2-1-1) instead
of HTSAT-base's 128 / 2-2-12-2 (same code, same 10 s input geometry); imports the test path never calls (torchvision's
FrozenBatchNorm2d, h5py, wget, laion-clap's training data module, timm / PANN models, librosa in CLAPSep.py) are empty
modules. ``test_step``'s estimate is captured at ``wav_reconstruct``'s return.
"""

import ast
import importlib.util
import json
import math
import os
import sys
import types
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from make_goldens import layout_of, seed_into, stub_module  # noqa: E402

from support import published_fixtures as fx  # noqa: E402

OFFICIAL = Path(os.environ.get("LASSBENCH_OFFICIAL", "/work/official")) / "Aisaka0v0+CLAPSep"
FUNCTIONAL = Path(os.environ.get("TORCHAUDIO_FUNCTIONAL",
                                 "/work/official/torchaudio-2.11.1/torchaudio/functional/functional.py"))
# the tiny configuration (tests/models/test_clapsep_model.py builds the same)
HTSAT = {"embed_dim": 16, "depths": [2, 2, 1, 1], "num_heads": [1, 2, 4, 8], "class_num": 4}
DECODER = {"lan_embed_dim": 1024, "depths": [2, 2, 1, 1], "embed_dim": 16, "encoder_embed_dim": 16, "phase": False,
           "spec_factor": 8, "d_attn": 64, "n_masker_layer": 1, "conv": False}
LORA_RANK = 4
POSITIVE = ["a dog barks", "a man speaks"]
NEGATIVE = ["a man speaks", "the bird sings"]
torch.set_num_threads(1)


def clapsep_input(batch: int = 2) -> np.ndarray:
    """Two 10 s mixtures at 32 kHz: tones with an envelope plus seeded noise (deterministic)."""
    t = np.arange(10 * 32000) / 32000
    rows = []
    for k in range(batch):
        noise = np.random.default_rng(fx.SEED + k).standard_normal(t.size)
        rows.append(0.3 * np.sin(2 * np.pi * (220 + 110 * k) * t) * np.sin(np.pi * t / 10) + 0.05 * noise)
    return np.stack(rows).astype(np.float32)


def torchaudio_resampler():
    """pytorch/audio's ``_get_sinc_resample_kernel`` + ``_apply_sinc_resample_kernel``, executed from its file."""
    tree = ast.parse(FUNCTIONAL.read_text())
    wanted = [n for n in tree.body if isinstance(n, ast.FunctionDef)
              and n.name in ("_get_sinc_resample_kernel", "_apply_sinc_resample_kernel")]
    namespace = {"torch": torch, "math": math, "warnings": warnings, "Optional": Optional,
                 "Tensor": torch.Tensor, "_CPU": torch.device("cpu")}
    exec(compile(ast.Module(wanted, []), str(FUNCTIONAL), "exec"), namespace)
    gcd = math.gcd(32000, 48000)
    kernel, width = namespace["_get_sinc_resample_kernel"](32000, 48000, gcd)  # Resample(): dtype None
    return lambda wav: namespace["_apply_sinc_resample_kernel"](wav, 32000, 48000, gcd, kernel, width)


def import_laion(root: Path, tokenizer):
    """laion_clap's htsat.py, model.py and hook.py without the package imports that reach the hub."""
    import pytorch_lightning  # noqa: F401  (before the stubs: both probe for torchvision with find_spec)
    import torchmetrics  # noqa: F401
    import transformers

    cfg = transformers.RobertaConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=1,
                                     num_attention_heads=12, intermediate_size=64, max_position_embeddings=100,
                                     type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                     layer_norm_eps=1e-5)
    transformers.RobertaModel.from_pretrained = classmethod(lambda cls, n, **kw: transformers.RobertaModel(cfg))
    transformers.RobertaTokenizer.from_pretrained = classmethod(lambda cls, n, **kw: tokenizer)
    stub_module("torchvision")
    stub_module("torchvision.ops")
    stub_module("torchvision.ops.misc", FrozenBatchNorm2d=None)
    stub_module("h5py")
    stub_module("wget")
    if importlib.util.find_spec("librosa") is None:
        stub_module("librosa")
    stub_module("laion_clap", root)
    stub_module("laion_clap.clap_module", root / "clap_module")
    stub_module("laion_clap.clap_module.timm_model", TimmModel=None)
    stub_module("laion_clap.clap_module.pann_model", create_pann_model=None)
    stub_module("laion_clap.training", root / "training")
    stub_module("laion_clap.training.data", get_audio_features=None, int16_to_float32=None,
                  float32_to_int16=None)
    modules = {}
    for name in ("utils", "feature_fusion", "htsat", "model"):
        modules[name] = _load(f"laion_clap.clap_module.{name}", root / "clap_module" / f"{name}.py")
    stub_module("clap_module", create_model=None)
    stub_module("clap_module.factory", load_state_dict=None)
    modules["hook"] = _load("laion_clap.hook", root / "hook.py")
    return modules


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_official(out: Path):
    from transformers import RobertaTokenizer

    vocab = fx.write_roberta_vocab(out / "roberta-vocab")
    tokenizer = RobertaTokenizer(str(vocab / "vocab.json"), str(vocab / "merges.txt"))
    root = Path(importlib.util.find_spec("laion_clap").submodule_search_locations[0])
    laion = import_laion(root, tokenizer)
    audio_cfg = types.SimpleNamespace(model_type="HTSAT", model_name="base", mel_bins=64, sample_rate=48000,
                                      window_size=1024, hop_size=480, fmin=50, fmax=14000,
                                      class_num=HTSAT["class_num"])
    laion["model"].create_htsat_model = lambda cfg, *a: laion["htsat"].HTSAT_Swin_Transformer(
        spec_size=256, patch_size=4, patch_stride=(4, 4), num_classes=cfg.class_num, embed_dim=HTSAT["embed_dim"],
        depths=HTSAT["depths"], num_heads=HTSAT["num_heads"], window_size=8, config=cfg)
    clap = laion["model"].CLAP(embed_dim=8 * HTSAT["embed_dim"], audio_cfg=audio_cfg,
                               text_cfg=laion["model"].CLAPTextCfg(context_length=77, vocab_size=49408, width=512,
                                                                  heads=8, layers=12, model_type="roberta"))
    module = laion["hook"].CLAP_Module.__new__(laion["hook"].CLAP_Module)
    torch.nn.Module.__init__(module)
    module.model, module.tokenize, module.enable_fusion = clap, tokenizer, False
    sys.modules["laion_clap"].clap_module = sys.modules["laion_clap.clap_module"]
    sys.modules["laion_clap.clap_module"].htsat = laion["htsat"]
    sys.path.insert(0, str(OFFICIAL))
    from model.CLAPSep import LightningModule
    from model.CLAPSep_decoder import HTSAT_Decoder

    decoder = HTSAT_Decoder(**DECODER)
    return LightningModule(module, decoder, lr=1e-4, use_lora=True, rank=LORA_RANK, nfft=1024)


def keep(key: str) -> bool:
    """Computed tensors stay as the official code made them: DFT / mel kernels, window, Swin index and mask buffers."""
    return any(part in key for part in ("stft.", "spectrogram_extractor.", "logmel_extractor.", "ola_window",
                                        "relative_position_index", "attn_mask"))


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    module = build_official(out)
    state = seed_into(module, "", keep=keep)
    module.eval()
    resample = torchaudio_resampler()
    mixed = torch.tensor(clapsep_input())
    captured = []
    official_reconstruct = module.wav_reconstruct
    module.wav_reconstruct = lambda *a, **k: captured.append(official_reconstruct(*a, **k)) or captured[-1]
    module.on_test_start()
    module.test_step((mixed, resample(mixed), list(POSITIVE), list(NEGATIVE), 0.5 * mixed), 0)
    with torch.no_grad():  # the demo's empty negative query: a zero embedding, same official modules
        pos = module.clap_model.get_text_embedding(list(POSITIVE), use_tensor=True)
        neg = module.clap_model.get_text_embedding(list(NEGATIVE), use_tensor=True)
        real, imag = module.stft(mixed)
        mag, cos, sin = __import__("torchlibrosa.stft", fromlist=["magphase"]).magphase(real, imag)
        del module.features[:]
        module.features.append(mag)
        module.audio_branch({"waveform": resample(mixed)})
        mask = module.decoder_model(hidden_state=module.features[-1], skip_features=module.features[:-1],
                                    embed=torch.concat([pos, torch.zeros_like(neg)], dim=1))
        no_negative = official_reconstruct(mask, mag, cos, sin, length=mixed.size(-1))
        del module.features[:]
    estimate = captured[0].numpy()
    (out / "clapsep-layout.json").write_text(json.dumps(layout_of(state)))
    torch.save({"state_dict": state}, out / "clapsep-official-state.pt")  # for local CLI checks only
    np.savez_compressed(out / "clapsep-golden.npz", estimate_every64=estimate[:, ::64],
                        no_negative_every64=no_negative.numpy()[:, ::64], estimate_len=estimate.shape[1],
                        positive=pos.numpy(), negative=neg.numpy(),
                        resampled_every256=resample(mixed).numpy()[:, ::256],
                        melW=state["audio_branch.logmel_extractor.melW"].numpy())  # librosa's slaney mel filters
    print("clapsep estimate", estimate.shape, float(np.abs(estimate).mean()), float(np.abs(estimate).max()),
          "no-negative differs by", float(np.abs(estimate - no_negative.numpy()).max()))


if __name__ == "__main__":
    main()
