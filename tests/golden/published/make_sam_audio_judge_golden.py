"""Run the SAM Audio JUDGE's OFFICIAL scoring on seeded weights of a tiny configuration; write its layout JSON and
golden outputs.

usage: python make_sam_audio_judge_golden.py OUT_DIR

Needs, outside lassbench: facebookresearch/sam-audio 68b48d4 (its ``sam_audio/`` package and ``eval/metrics/
judge.py``) exported under $LASSBENCH_OFFICIAL (default /work/official) as sam-audio, the DAC-VAE package under
$LASSBENCH_OFFICIAL/dacvae and einops under $LASSBENCH_OFFICIAL/site (as for make_sam_audio_golden.py), and
facebookresearch/perception_models at e72b681 (the ``unpin-deps`` branch sam-audio's pyproject names; its ``core/``
folder) exported as $LASSBENCH_OFFICIAL/perception_models, with transformers (ModernBERT) and huggingface_hub
importable. What runs is the official path of SAM Audio's benchmark: ``eval/metrics/judge.py``'s ``Judge``, which
builds ``SAMAudioJudgeModel`` from config.json + checkpoint.pt (``BaseModel._from_pretrained``, a strict
``load_state_dict``) and ``SAMAudioJudgeProcessor`` from the same folder (``AutoTokenizer`` on the folder's tokenizer
files), then calls the processor (reflect padding to a whole frame, padding mask, tokenisation) and the model under
``torch.inference_mode`` on lists of mixtures, estimates and descriptions at 48 kHz. Stand-ins, and why:
- the release's widths (DAC-VAE encoder 64 channels, PE-AV transformers of width 1,024, ModernBERT-large) become a
  tiny configuration: codec encoder 4 channels, strides 2-4-4-10, latent 16, codebook 8 (its decoder, which the
  judge builds and throws away, keeps the watermarking decoder's fixed 1,536 channels); PE-AV transformers of
  widths 32 and 24, 2 layers, 2 heads (the second with attention biases and another rotary base); ModernBERT of
  width 32, 3 layers, local attention over 4 tokens every other layer, features of its layer 2; a word-level
  tokenizer (:func:`write_modernbert_tokenizer`) with ModernBERT's [CLS] ... [SEP] template;
- perception_models' ``core.audio_visual_encoder`` package file (which imports the PE-AV and vision encoders) is
  not run: its ``transformer``, ``config`` and ``patcher`` modules are loaded from the export as they are, and
  ``PEAudioFrame`` / ``PEAudioFrameTransform`` (the separator's span predictor, imported by ``sam_audio.model``)
  are stand-ins; xformers (imported by ``core.transformer`` and ``core.probe`` for attention kernels the judge
  never calls), torchvision, torchaudio and torchcodec are stubs: scoring tensors calls none of them;
- huggingface_hub 2.x no longer passes ``proxies`` / ``resume_download`` to ``_from_pretrained``, which the release
  declares as required: ``from_pretrained`` is routed to ``_from_pretrained`` with them.
Recorded: each item scored alone (the eval's default batch of one) — the text features (``text_proj1`` of the CLS
features), the codec features of the mixture and the estimate, the four scores — and the two items scored in one
batch, where the official forward hands the padding mask to the PE-AV transformers under a name they do not read
(``padding_mask=`` vs their ``attention_mask``), so the shorter item's scores move with its neighbour.
"""

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from make_goldens import layout_of, seed_into, stub_module  # noqa: E402

OFFICIAL = Path(os.environ.get("LASSBENCH_OFFICIAL", "/work/official"))
RATE = 48000
SAMPLES = (12062, 24000)  # 12,062 is not a whole number of 320-sample frames
QUERIES = ["a dog barks", "the bird sings in the rain"]
WORDS = ["a", "dog", "barks", "the", "bird", "sings", "in", "rain", "car", "engine", "revs"]
SPECIAL = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]  # ModernBERT's special tokens, here ids 0-4
CODEC = {"encoder_dim": 4, "encoder_rates": [2, 4, 4, 10], "latent_dim": 16, "decoder_dim": 1536,
         "decoder_rates": [2, 4, 4, 10], "codebook_dim": 8, "sample_rate": RATE}
TRANSFORMER = {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2}
FINETUNE = {"hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 2,
            "attention_bias": True, "max_position_embeddings": 2000}
TEXT = {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 2,
        "global_attn_every_n_layers": 2, "local_attention": 4, "max_position_embeddings": 64,
        "pad_token_id": 3, "bos_token_id": 1, "eos_token_id": 2, "cls_token_id": 1, "sep_token_id": 2}
NTH_TEXT_LAYER = 2
BOTTLENECK = 16
torch.set_num_threads(1)


def judge_inputs() -> list[tuple[np.ndarray, np.ndarray]]:
    """(mixture, estimate) pairs, mono float32 at 48 kHz: a tone with an envelope plus another tone and seeded
    noise, and an estimate holding most of the first tone and a little of the rest."""
    rng = np.random.RandomState(13)
    out = []
    for k, n in enumerate(SAMPLES):
        t = np.arange(n) / RATE
        target = np.sin(2 * np.pi * (440 + 660 * k) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 7.0 * t))
        other = np.sin(2 * np.pi * (1200 - 300 * k) * t)
        noise = rng.randn(n)
        mixture = (0.5 / (k + 1)) * target + 0.2 * other + 0.05 * noise
        estimate = (0.45 / (k + 1)) * target + 0.04 * other + 0.01 * noise
        out.append((mixture.astype(np.float32), estimate.astype(np.float32)))
    return out


def write_modernbert_tokenizer(folder: Path):
    """A word-level fast tokenizer with ModernBERT's special tokens and [CLS] ... [SEP] template, saved as
    ``save_pretrained`` saves answerdotai/ModernBERT-large's (tokenizer.json + tokenizer_config.json)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*SPECIAL, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", cls_token="[CLS]",
                                        sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]",
                                        model_max_length=8192)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def judge_config() -> dict:
    """The judge folder's config.json at the tiny width."""
    return {"audio_codec": CODEC, "transformer": TRANSFORMER, "finetune_transformer": FINETUNE,
            "text_model": {**TEXT, "vocab_size": len(SPECIAL) + len(WORDS)}, "nth_text_layer": NTH_TEXT_LAYER,
            "bottleneck_dim": BOTTLENECK}


def stub_modules() -> None:
    import transformers  # noqa: F401  (imported before the stubs: it probes for torchvision and torchaudio)
    from transformers import AutoModel, AutoTokenizer, ModernBertConfig  # noqa: F401

    class Dummy:
        def __init__(self, *args, **kwargs):
            pass

    # the package, not its __init__: its real submodules load from the export
    package = OFFICIAL / "perception_models" / "core"
    core = stub_module("core", package)
    core.audio_visual_encoder = stub_module("core.audio_visual_encoder", package / "audio_visual_encoder",
                                            PEAudioFrame=Dummy, PEAudioFrameTransform=Dummy)
    core.vision_encoder = stub_module("core.vision_encoder", pe=types.SimpleNamespace(CLIP=Dummy))
    stub_module("xformers", __path__=[])
    stub_module("xformers.ops", AttentionBias=Dummy, fmha=types.SimpleNamespace())
    transforms = stub_module("torchvision.transforms", InterpolationMode=types.SimpleNamespace(BICUBIC="bicubic"),
                        Resize=Dummy, Compose=Dummy, Lambda=Dummy, Normalize=Dummy)
    stub_module("torchvision", transforms=transforms)
    stub_module("torchaudio", functional=None)
    codec = stub_module("torchcodec")
    codec.decoders = stub_module("torchcodec.decoders", AudioDecoder=Dummy, VideoDecoder=Dummy)
    codec.encoders = stub_module("torchcodec.encoders", AudioEncoder=Dummy)


def write_release(out: Path) -> tuple[Path, dict]:
    """The judge folder as the release ships it: config.json, checkpoint.pt and the tokenizer files."""
    release = out / "sam-audio-judge-tiny"
    write_modernbert_tokenizer(release)
    config = judge_config()
    (release / "config.json").write_text(json.dumps(config, indent=2))
    from sam_audio.model.config import SAMAudioJudgeConfig
    from sam_audio.model.judge import SAMAudioJudgeModel

    skeleton = SAMAudioJudgeModel(SAMAudioJudgeConfig(**json.loads(json.dumps(config))))
    state = seed_into(skeleton, "")
    torch.save(state, release / "checkpoint.pt")
    return release, state


def official_judge(release: Path, captured: dict):
    """``eval/metrics/judge.py``'s ``Judge`` on the folder, its text features and codec features recorded."""
    from sam_audio.model.judge import SAMAudioJudgeModel

    hub_kwargs = dict(cache_dir=None, force_download=False, proxies=None, resume_download=False,
                      local_files_only=True, token=None)
    SAMAudioJudgeModel.from_pretrained = classmethod(
        lambda cls, name, **kwargs: cls._from_pretrained(model_id=name, **hub_kwargs, **kwargs))
    spec = importlib.util.spec_from_file_location("official_judge_metric",
                                                  OFFICIAL / "sam-audio" / "eval" / "metrics" / "judge.py")
    metric = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metric)
    judge = metric.Judge(checkpoint=str(release), device=torch.device("cpu"))
    model = judge.model
    model.text_proj1.register_forward_hook(lambda m, i, o: captured.setdefault("text", []).append(o.clone()))
    model.audio_codec.register_forward_hook(lambda m, i, o: captured.setdefault("codec", []).append(o.clone()))
    return judge


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for path in (OFFICIAL / "site", OFFICIAL / "dacvae", OFFICIAL / "sam-audio"):
        sys.path.insert(0, str(path))
    stub_modules()
    release, state = write_release(out)
    captured: dict = {}
    judge = official_judge(release, captured)
    inputs = judge_inputs()
    golden = {}
    names = ("JudgeOverall", "JudgeRecall", "JudgePrecision", "JudgeFaithfulness")
    for k, ((mixture, estimate), query) in enumerate(zip(inputs, QUERIES, strict=True)):
        result = judge(input_wavs=[torch.from_numpy(mixture)], target_wavs=[torch.from_numpy(estimate)],
                       descriptions=[query], target_wavs_sample_rate=RATE)
        golden[f"scores{k}"] = np.array([result[name][0] for name in names], dtype=np.float32)
        golden[f"text{k}"] = captured["text"][-1].numpy()[0]
        codec = captured["codec"][-1].numpy()  # [mixture, estimate] stacked
        golden[f"mixture_features{k}"], golden[f"estimate_features{k}"] = codec[0], codec[1]
    batched = judge(input_wavs=[torch.from_numpy(m) for m, _ in inputs],
                    target_wavs=[torch.from_numpy(e) for _, e in inputs], descriptions=QUERIES,
                    target_wavs_sample_rate=RATE)
    golden["scores_batched"] = np.array([[batched[name][k] for name in names] for k in range(len(inputs))],
                                        dtype=np.float32)
    layout = {"checkpoint": layout_of(state), "config": judge_config()}
    (out / "sam-audio-judge-layout.json").write_text(json.dumps(layout))
    np.savez_compressed(out / "sam-audio-judge-golden.npz", **golden)
    for k in range(len(inputs)):
        alone, together = golden[f"scores{k}"], golden["scores_batched"][k]
        print(f"item {k} ({SAMPLES[k]} samples, {QUERIES[k]!r}): overall, recall, precision, faithfulness = "
              f"{np.round(alone, 5).tolist()}; in a batch of two: {np.round(together, 5).tolist()} "
              f"(max difference {float(np.abs(alone - together).max()):.3g})")
    print(f"checkpoint: {len(state)} tensors, {(release / 'checkpoint.pt').stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
