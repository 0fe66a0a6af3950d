"""``lassbench run audiosep`` against AudioSep's own evaluator, on the same items and the same full-size weights.

    python perf/official_evaluator.py                                   # lassbench's side alone
    python perf/official_evaluator.py --official /work/official/Audio-AGI+AudioSep --items 3

Writes ``--items`` rendered items in AudioSep's AudioCaps layout (``evaluation/data/audiocaps/segment-{idx}.wav`` +
``mixture-{idx}.wav``, 10 s at 32 kHz, synthetic audio; ``evaluation/metadata/audiocaps_eval.csv``) and one
full-size AudioSep checkpoint in the released layout (ResUNet30 at 2048 / 320 and CLAP's RoBERTa at roberta-base
size, weights from torch's default initialisation under a fixed seed; a tiny tokenizer, since the vocabulary does
not change the cost of a query padded as each side pads it). Each side runs in its own process:

* lassbench: ``run_model`` (``lassbench run audiosep --batch-size 1``) on the benchmark built from those files in
  the ``audiosep`` protocol's rendered mode; the time of loading the checkpoint is subtracted.
* official (with ``--official``, the AudioSep checkout, 944583f): ``evaluation/evaluate_audiocaps.py``'s
  ``AudioCapsEvaluator`` called on the model, built from the release's modules with the stand-ins of
  ``tests/golden/published/make_goldens.py`` (which needs librosa and torchlibrosa on the path).

Printed per side: seconds per item (separation + scoring, model loaded), the process's peak RSS, the mean SDRi and
SI-SDR; then the ratios lassbench / official.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GOLDENS = REPO / "tests" / "golden" / "published"
RATE = 32000
ROBERTA_BASE = {"vocab_size": 50265, "num_hidden_layers": 12, "intermediate_size": 3072,
                "max_position_embeddings": 514}


def prepare(work: Path, items: int) -> None:
    """Rendered items, the full-size checkpoint, a tokenizer folder and the lassbench benchmark built from them."""
    import soundfile as sf
    import torch
    from transformers import RobertaConfig, RobertaModel

    from lassbench.build import BuildConfig, build_dataset
    from lassbench.models.published.systems import PUBLISHED, AudioSepSystem

    sys.path.insert(0, str(REPO / "tests"))
    from support import published_fixtures as fx

    data = work / "evaluation" / "data" / "audiocaps"
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(10 * RATE) / RATE
    rows = ["idx,caption,labels,src_wav,noise_wav"]
    for k in range(items):
        target = 0.3 * np.sin(2 * np.pi * (300 + 50 * k) * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
        mixture = target + 0.1 * rng.standard_normal(len(t))
        sf.write(data / f"segment-{k}.wav", target.astype(np.float32), RATE, subtype="FLOAT")
        sf.write(data / f"mixture-{k}.wav", mixture.astype(np.float32), RATE, subtype="FLOAT")
        rows.append(f"{k},a dog barks while the bird sings,Dog,Y{k:03d}.wav,Yn{k:03d}.wav")
    index = work / "evaluation" / "metadata" / "audiocaps_eval.csv"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text("\n".join(rows) + "\n")
    fx.write_roberta_vocab(work / "roberta")
    torch.manual_seed(0)
    roberta = RobertaModel(RobertaConfig(hidden_size=768, num_attention_heads=12, type_vocab_size=1, pad_token_id=1,
                                         bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **ROBERTA_BASE))
    system = AudioSepSystem(PUBLISHED["audiosep"], roberta, None)
    torch.save({"pytorch-lightning_version": "2.0.0", "state_dict": system.state_dict()}, work / "audiosep.ckpt")
    build_dataset(BuildConfig(out=work / "audiocaps-rendered", sources=str(data), protocol="audiosep",
                              index=str(index), progress=False))


def lassbench_side(work: Path) -> dict:
    import lassbench.run as run

    loading = []
    load = run._load_system

    def timed_load(*args, **kwargs):
        start = time.perf_counter()
        try:
            return load(*args, **kwargs)
        finally:
            loading.append(time.perf_counter() - start)

    run._load_system = timed_load
    start = time.perf_counter()
    outcome = run.run_model(run.RunConfig(model="audiosep", checkpoint=str(work / "audiosep.ckpt"),
                                          text_encoder=str(work / "roberta"), data=str(work / "audiocaps-rendered"),
                                          out=str(work / "results"), batch_size=1, workers=0), log=lambda line: None)
    seconds = time.perf_counter() - start - sum(loading)
    metrics = outcome[0].summary["metrics"]
    return {"seconds": seconds, "sdri": metrics["sdri"]["mean"], "si_sdr": metrics["si_sdr"]["mean"]}


def official_side(work: Path, official: Path) -> dict:
    import importlib.util

    import torch

    threads = torch.get_num_threads()
    sys.path.insert(0, str(GOLDENS))
    import make_goldens as mg

    torch.set_num_threads(threads)  # make_goldens pins one thread; both sides use torch's default

    _, encoder, ss_model = mg.official_audiosep_modules("audiosep", work, text_size=ROBERTA_BASE, root=official)
    state = torch.load(work / "audiosep.ckpt", weights_only=True)["state_dict"]
    for prefix, module, dropped in (("ss_model.", ss_model, (".stft.", ".istft.")),
                                    ("query_encoder.", encoder, ("audio_", "text_transform", "logit_scale"))):
        result = module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                        strict=False)
        stray = [k for k in result.missing_keys if not any(d in k for d in dropped)] + result.unexpected_keys
        assert not stray, f"weights that do not fit the release: {stray[:3]}"
    mg._stub_package("lightning")
    mg._stub_package("lightning.pytorch", LightningModule=object)
    mg._stub_package("models.audiosep", AudioSep=None, get_model_class=None)
    os.chdir(work)  # the evaluator reads evaluation/... relative to the working folder
    evaluator_file = official / "evaluation" / "evaluate_audiocaps.py"
    spec = importlib.util.spec_from_file_location("evaluate_audiocaps", evaluator_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = types.SimpleNamespace(eval=lambda: None, device="cpu", query_encoder=encoder.eval(),
                                  ss_model=ss_model.eval())
    start = time.perf_counter()
    si_sdr, sdri = module.AudioCapsEvaluator(query="caption", sampling_rate=RATE)(model)
    return {"seconds": time.perf_counter() - start, "sdri": float(sdri), "si_sdr": float(si_sdr)}


def run_side(side: str, work: Path, official: Path | None) -> dict:
    command = [sys.executable, __file__, "--side", side, "--work", str(work)]
    if official is not None:
        command += ["--official", str(official)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])})
    if result.returncode != 0:
        raise SystemExit(f"{side} side failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, help="AudioSep checkout (944583f); without it, lassbench's side only")
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lassbench-official-evaluator"))
    parser.add_argument("--side", choices=("lassbench", "official"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side = lassbench_side(args.work) if args.side == "lassbench" else official_side(args.work, args.official)
        side["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: KiB
        print(json.dumps(side))
        return
    prepare(args.work, args.items)
    sides = {"lassbench": run_side("lassbench", args.work, None)}
    if args.official is not None:
        sides["official"] = run_side("official", args.work, args.official.resolve())
    print(f"{args.items} items of 10 s at 32 kHz, full-size AudioSep, batch 1, {os.cpu_count()} CPU(s), "
          f"torch threads {__import__('torch').get_num_threads()}")
    print(f"{'side':<10} {'s/item':>7} {'peak RSS GB':>12} {'SDRi':>9} {'SI-SDR':>9}")
    for name, side in sides.items():
        print(f"{name:<10} {side['seconds'] / args.items:7.2f} {side['peak_rss_gb']:12.2f} {side['sdri']:9.4f} "
              f"{side['si_sdr']:9.4f}")
    if "official" in sides:
        ours, theirs = sides["lassbench"], sides["official"]
        print(f"lassbench / official: time {ours['seconds'] / theirs['seconds']:.2f}x, "
              f"peak memory {ours['peak_rss_gb'] / theirs['peak_rss_gb']:.2f}x, "
              f"SDRi difference {ours['sdri'] - theirs['sdri']:+.2e} dB")


if __name__ == "__main__":
    main()
