"""CLAPSep at its released size on this machine's CPU: seconds per 10 s item and peak memory, beside AudioSep.

    python perf/clapsep_speed.py [--threads 1] [--repeat 2]

Random weights in the released shapes (experiments/CLAPSep_base/config.json on HTSAT-base, roberta-base's text
branch): the speed and memory of a model do not depend on its weight values. Each system is timed in its own child
process (so peak RSS is its own): a positive and a negative query embedded, then one 10 s mixture at 32 kHz
separated (``PublishedSeparator.forward``, as ``run`` calls it). The reference row is AudioSep (ResUNet30 + CLAP
RoBERTa, released sizes) on the same input, measured in the same run; the ratio is CLAPSep / AudioSep.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from transformers import RobertaConfig, RobertaModel
from lassbench.models.lassnet import QueryBatch
from lassbench.models.published import clapsep
from lassbench.models.published.systems import PUBLISHED, AudioSepSystem, PublishedSeparator

name, threads, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
roberta = RobertaModel(RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                                     pad_token_id=1, layer_norm_eps=1e-5)).eval()


class Tokens:  # a tokenizer stand-in: ten tokens per query (the cost of a short caption)
    def __call__(self, queries, **kwargs):
        ids = torch.full((len(queries), 10), 100)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


if name == "clapsep":
    net = clapsep.CLAPSepSystem(roberta, clapsep.RELEASED_ENCODER, clapsep.RELEASED_DECODER)
    batch = QueryBatch(["a dog barks"], negatives=["a man speaks"])
else:
    net = AudioSepSystem(PUBLISHED["audiosep"], roberta, None)
    batch = QueryBatch(["a dog barks"])
model = PublishedSeparator(PUBLISHED[name], net.eval(), Tokens(), "").eval()
mixture = 0.1 * torch.randn(1, 320000)
times = []
with torch.no_grad():
    for _ in range(repeat):
        start = time.perf_counter()
        model(mixture, batch)
        times.append(time.perf_counter() - start)
params = sum(p.numel() for p in net.parameters())
print(json.dumps({"seconds": min(times), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": params}))
"""


def measure(name: str, threads: int, repeat: int) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, name, str(threads), str(repeat)], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2, help="best of N separations (the first warms up)")
    args = parser.parse_args()
    rows = {name: measure(name, args.threads, args.repeat) for name in ("clapsep", "audiosep")}
    print(f"one 10 s item at 32 kHz, CPU, {args.threads} thread(s), best of {args.repeat}")
    print(f"{'system':<10} {'s / item':>9} {'peak RSS MB':>12} {'params (incl. text)':>20}")
    for name, row in rows.items():
        print(f"{name:<10} {row['seconds']:>9.2f} {row['peak_rss_mb']:>12.0f} {row['params']:>20,}")
    ratio = rows["clapsep"]["seconds"] / rows["audiosep"]["seconds"]
    print(f"clapsep / audiosep time: {ratio:.2f}x")


if __name__ == "__main__":
    main()
