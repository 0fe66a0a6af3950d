"""Run the OFFICIAL model code on seeded weights in the released layout; write layout JSON + golden outputs.

usage: python make_goldens.py SYSTEM OUT_DIR
       (SYSTEM: lassnet-release | audiosep | dcase2024-baseline | audiosep-dp | audiosep-dp-32k)

Two goldens per system: ``SYSTEM-golden.npz``, the network on a fixed 0.2 s batch (module against module), and
``SYSTEM-inference.npz``, the release's own inference on WAV files of unequal length
(tests/support/published_fixtures.py ``inference_inputs``): LASS-Net ``inference.py`` (``load_wav`` pads to 10 s, STFT,
mask, ISTFT), AudioSep ``pipeline.separate_audio`` (the separated waveform captured before it is written as int16), the
DCASE baseline's and TQ-SED's evaluators (``librosa.load`` at the model's rate, ``get_query_embed``, ``ss_model`` on the
whole file).

The official code is never part of lassbench: check the repositories out under $LASSBENCH_OFFICIAL (default
/work/official) as liuxubo717+LASS, Audio-AGI+AudioSep, Audio-AGI+dcase2024_task9_baseline and TQ-SED (the
apple-yinhan/TQ-SED repository), and run this in a separate environment with torch, transformers, torchlibrosa and
librosa (docs/models.md). Stand-ins, and why: the hub downloads (bert-mini, roberta-base, their tokenizers) become tiny
configs + the tokenizers of tests/support/published_fixtures.py; CLAP's HTSAT audio branch (torchvision/timm) becomes a
one-layer stub, since a text query never reaches it and lassbench drops its keys; librosa >= 0.10 needs pad_center's
size as a keyword, which the 2022 LASS code passes positionally.
"""

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from support import published_fixtures as fx  # noqa: E402

OFFICIAL = Path(os.environ.get("LASSBENCH_OFFICIAL", "/work/official"))
torch.set_num_threads(1)


def layout_of(state):
    return {k: [list(v.shape), str(v.dtype)] for k, v in state.items()}


def seed_into(module, prefix, keep=lambda k: False):
    state = module.state_dict()
    full = {prefix + k: v for k, v in state.items()}
    seeded = {k: (v if keep(k) else fx.seeded_tensor(k, tuple(v.shape), str(v.dtype))) for k, v in full.items()}
    module.load_state_dict({k[len(prefix):]: v for k, v in seeded.items()})
    return seeded


def lassnet(out: Path):
    import librosa.util
    import transformers

    orig_pad = librosa.util.pad_center
    librosa.util.pad_center = lambda data, size=None, **kw: orig_pad(data, size=size, **kw)  # librosa>=0.10 API
    vocab = fx.write_bert_vocab(out / "bert-vocab")
    cfg = transformers.BertConfig(vocab_size=len(fx.BERT_WORDS) + 5, hidden_size=256, num_hidden_layers=1,
                                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=32)
    transformers.BertModel.from_pretrained = classmethod(
        lambda cls, name, **kw: transformers.BertModel(cfg, add_pooling_layer=kw.get("add_pooling_layer", True)))
    transformers.BertTokenizer.from_pretrained = classmethod(
        lambda cls, name, **kw: transformers.BertTokenizer(str(vocab / "vocab.txt")))
    sys.path.insert(0, str(OFFICIAL / "liuxubo717+LASS"))
    import utils.stft as ustft

    ustft.pad_center = librosa.util.pad_center
    from model.LASSNet import LASSNet
    from utils.wav_io import load_wav

    model = torch.nn.DataParallel(LASSNet("cpu"))
    state = seed_into(model, "")
    model.eval()
    stft = ustft.STFT()
    inference = {}
    with torch.no_grad():
        for k, (path, query) in enumerate(write_inference_inputs("lassnet-release", out)):
            waveform = torch.tensor(load_wav(str(path))).transpose(1, 0)  # inference.py's loop body
            mixed_mag, mixed_phase = stft.transform(waveform)
            est_mask = model(mixed_mag.transpose(2, 1).unsqueeze(0), ["[CLS] " + query])
            est_mag = (est_mask * mixed_mag.transpose(2, 1).unsqueeze(0)).squeeze(1).permute(0, 2, 1)
            inference[k] = stft.inverse(est_mag, mixed_phase).squeeze(0).squeeze(0).numpy()
    x = fx.fixed_input("lassnet-release")
    estimates, conds = [], []
    with torch.no_grad():
        for row, query in zip(x, fx.QUERIES, strict=True):
            waveform = torch.tensor(row)[None]
            mag, phase = stft.transform(waveform)
            mixed = mag.transpose(2, 1).unsqueeze(0)
            caption = ["[CLS] " + query]
            mask = model(mixed, caption)
            est_mag = (mask * mixed).squeeze(1).permute(0, 2, 1)
            estimates.append(stft.inverse(est_mag, phase).squeeze().numpy())
            ids, att = model.module.text_embedder.tokenize(caption)
            conds.append(model.module.text_embedder(ids, att)[0][0].numpy())
    return state, np.stack(estimates), np.stack(conds), {}, inference


def stub_module(name: str, path=None, **attrs) -> types.ModuleType:
    """An empty module (a package when ``path`` is given) under ``name`` in sys.modules, with ``attrs``: stands in
    for an import the official code makes but the path under test never calls."""
    mod = types.ModuleType(name)
    if path is not None:
        mod.__path__ = [str(path)]
    for k, v in attrs.items():
        setattr(mod, k, v)
    sys.modules[name] = mod
    return mod


class StubAudio(torch.nn.Module):
    """Stands in for HTSAT (needs torchvision/timm); its keys are dropped by lassbench as CLAP's audio branch."""

    def __init__(self):
        super().__init__()
        self.patch_embed = torch.nn.Module()
        self.patch_embed.proj = torch.nn.Conv2d(1, 8, 4, 4)


def official_audiosep_modules(name: str, out: Path, text_size: dict | None = None, root: Path | None = None):
    """The release's CLAP_Encoder and ResUNet30 (unseeded), imported from its checkout with the stand-ins named in
    the module docstring; ``text_size`` overrides the tiny RoBERTa (perf/official_evaluator.py: full size)."""
    import transformers

    repo = {"audiosep": "Audio-AGI+AudioSep", "dcase2024-baseline": "Audio-AGI+dcase2024_task9_baseline",
            "audiosep-dp": "TQ-SED/LASS_codes", "audiosep-dp-32k": "TQ-SED/LASS_codes"}[name]
    root = root or OFFICIAL / repo
    sys.path.insert(0, str(root))
    vocab = fx.write_roberta_vocab(out / "roberta-vocab")
    tok = transformers.RobertaTokenizer(str(vocab / "vocab.json"), str(vocab / "merges.txt"))
    size = text_size or {"vocab_size": len(tok), "num_hidden_layers": 1, "intermediate_size": 64,
                         "max_position_embeddings": 40}
    cfg = transformers.RobertaConfig(hidden_size=768, num_attention_heads=12, type_vocab_size=1, pad_token_id=1,
                                     bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **size)
    transformers.RobertaModel.from_pretrained = classmethod(lambda cls, n, **kw: transformers.RobertaModel(cfg))
    oc = root / "models" / "CLAP" / "open_clip"
    stub_module("models", root / "models")
    stub_module("models.CLAP", root / "models" / "CLAP")
    stub_module("models.CLAP.open_clip", oc, create_model=None)
    stub_module("models.CLAP.open_clip.timm_model", TimmModel=None)
    stub_module("models.CLAP.open_clip.utils", freeze_batch_norm_2d=None)
    stub_module("models.CLAP.open_clip.pann_model", create_pann_model=None)
    stub_module("models.CLAP.open_clip.htsat", create_htsat_model=lambda *a, **k: StubAudio())
    stub_module("models.CLAP.training", root / "models" / "CLAP" / "training")
    stub_module("models.CLAP.training.data", get_audio_features=None)
    if importlib.util.find_spec("torchaudio") is None:
        stub_module("torchaudio")
    spec = importlib.util.spec_from_file_location("models.CLAP.open_clip.model", oc / "model.py")
    clap_mod = importlib.util.module_from_spec(spec)
    sys.modules["models.CLAP.open_clip.model"] = clap_mod
    spec.loader.exec_module(clap_mod)
    from models.clap_encoder import CLAP_Encoder

    if name == "audiosep-dp-32k":  # TQ-SED models/audiosep.py get_model_class("ResUNet30_32k")
        from models.resunet_32k import ResUNet30
    else:
        from models.resunet import ResUNet30

    clap = clap_mod.CLAP(embed_dim=1024, audio_cfg={"model_type": "HTSAT", "model_name": "base"},
                         text_cfg={"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12,
                                   "model_type": "roberta"}, joint_embed_shape=512)
    encoder = CLAP_Encoder.__new__(CLAP_Encoder)
    torch.nn.Module.__init__(encoder)
    encoder.model, encoder.tokenize, encoder.encoder_type = clap, tok, "CLAP"
    dp = name.startswith("audiosep-dp")
    kwargs = {"dprnn": True, "dprnn_layers": 6, "dprnn_hidden": 256} if dp else {}
    ss_model = ResUNet30(input_channels=1, output_channels=1, condition_size=512, **kwargs)
    return root, encoder, ss_model


def audiosep_family(name: str, out: Path):
    root, encoder, ss_model = official_audiosep_modules(name, out)
    state = seed_into(ss_model, "ss_model.", keep=lambda k: ".stft." in k or ".istft." in k)
    state.update(seed_into(encoder, "query_encoder."))
    ss_model.eval()
    encoder.eval()
    x = fx.fixed_input(name)
    estimates, conds = [], []
    with torch.no_grad():
        for row, query in zip(x, fx.QUERIES, strict=True):
            condition = encoder.get_query_embed(modality="text", text=[query])
            out_wav = ss_model({"mixture": torch.tensor(row)[None, None], "condition": condition})["waveform"]
            estimates.append(out_wav.squeeze().numpy())
            conds.append(condition[0].numpy())
        extra = {}
        base = ss_model.base
        if name == "audiosep":  # the long-audio stitching, with a cheap position-dependent stand-in separator
            ss_model.base = StubBase()
            long = np.sin(np.arange(400_000) / 50.0).astype(np.float32)
            chunked = ss_model.chunk_inference({"mixture": torch.tensor(long)[None, None],
                                                "condition": conds_tensor(conds)})
            extra["chunk"] = np.asarray(chunked, dtype=np.float32)[0]
    ss_model.base = base
    inference = official_inference(name, root, encoder, ss_model, out)
    return state, np.stack(estimates), np.stack(conds), extra, inference


def official_inference(name, root, encoder, ss_model, out):
    """Each input file through the release's own inference code; {k: separated waveform}."""
    import librosa

    rate = fx.INPUTS[name][1]
    inputs = write_inference_inputs(name, out)
    inference = {}
    if name == "audiosep":  # pipeline.separate_audio, the float waveform taken before its int16 write
        stub_module("utils", ignore_warnings=lambda: None, parse_yaml=None, load_ss_model=None)
        spec = importlib.util.spec_from_file_location("audiosep_pipeline", root / "pipeline.py")
        pipeline = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pipeline)
        captured = []
        handle = ss_model.register_forward_hook(lambda module, args, output: captured.append(output["waveform"]))
        system = types.SimpleNamespace(query_encoder=encoder, ss_model=ss_model)
        for k, (path, query) in enumerate(inputs):
            pipeline.separate_audio(system, str(path), query, str(out / "separated.wav"), device="cpu")
            inference[k] = captured.pop().squeeze(0).squeeze(0).numpy()
        handle.remove()
        return inference
    with torch.no_grad():  # dcase_evaluator.py / dcase_evaluator_func.py, at the model's own rate
        for k, (path, query) in enumerate(inputs):
            mixture, _ = librosa.load(str(path), sr=rate, mono=True)
            conditions = encoder.get_query_embed(modality="text", text=[query], device="cpu")
            input_dict = {"mixture": torch.Tensor(mixture)[None, None, :], "condition": conditions}
            inference[k] = ss_model(input_dict)["waveform"].squeeze().numpy()
    return inference


def write_inference_inputs(name, out):
    import soundfile

    rate = fx.INPUTS[name][1]
    folder = out / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (audio, query) in enumerate(zip(fx.inference_inputs(name), fx.INFERENCE_QUERIES, strict=True)):
        path = folder / f"{name}-{k}.wav"
        soundfile.write(str(path), audio, rate, subtype="FLOAT")
        paths.append((path, query))
    return paths


class StubBase(torch.nn.Module):
    def forward(self, mixtures, film_dict):
        ramp = torch.linspace(1.0, 2.0, mixtures.shape[-1])
        return {"waveform": mixtures * ramp}


def conds_tensor(conds):
    return torch.tensor(conds[0])[None]


def main():
    name, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    make = lassnet if name == "lassnet-release" else lambda folder: audiosep_family(name, folder)
    state, estimates, conds, extra, inference = make(out)
    (out / f"{name}-layout.json").write_text(json.dumps(layout_of(state)))
    torch.save(state, out / f"{name}-official-state.pt")  # for local CLI checks only; never committed
    np.savez_compressed(out / f"{name}-golden.npz", estimate_every4=estimates[:, ::4], estimate_len=estimates.shape[1],
                        condition=conds, **{k + "_every37": v[::37] for k, v in extra.items()})
    lengths = [len(a) for a in fx.inference_inputs(name)]
    np.savez_compressed(out / f"{name}-inference.npz",  # cut to the input's length (LASS-Net pads to 10 s)
                        **{f"estimate{k}_every{fx.STRIDE}": v[: lengths[k]][:: fx.STRIDE]
                           for k, v in inference.items()},
                        lengths=np.array(lengths))
    print(name, "inference", [float(np.abs(v).max()) for v in inference.values()])
    print(name, "estimate", estimates.shape, float(np.abs(estimates).mean()), "cond", conds.shape,
          float(np.abs(conds).mean()))


if __name__ == "__main__":
    main()
