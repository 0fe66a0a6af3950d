"""SAM Audio at the test suite's tiny configuration on this machine's CPU: seconds per 10 s item and peak memory.

    python perf/sam_audio_speed.py [--threads 1] [--repeat 1]

The configuration is the golden's (tests/golden/published/sam-audio-layout.json): a 4-channel codec encoder, a DiT
32 wide with 2 layers, a 1-layer T5 of width 16 — but the codec's decoder at the release's width (1,536 channels,
with its watermark network), which the release fixes, so the decoder's cost is of the release's order while the
transformer's is not (a released DiT is thousands of times larger). Random weights (speed and memory do not depend
on their values), one 10 s mixture at 48 kHz separated by ``PublishedSeparator.forward`` (as ``run`` calls it: 16
midpoint steps, 32 transformer calls, two decodes), in a child process so that peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from transformers import T5Config, T5EncoderModel
from lassbench.models.lassnet import QueryBatch
from lassbench.models.published import sam_audio
from lassbench.models.published.sam_audio_config import shape_of
from lassbench.models.published.systems import PUBLISHED, PublishedSeparator

threads, repeat = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
layout = json.load(open("tests/golden/published/sam-audio-layout.json"))
shape = shape_of(layout["config"])
net = sam_audio.SAMAudioSystem(shape, T5EncoderModel(T5Config.from_dict(layout["t5_config"])).eval())
for p in net.parameters():  # the default initialisation of weight-normalised convolutions is all zeros
    torch.nn.init.normal_(p, std=0.02)


class Tokens:  # a tokenizer stand-in: ten tokens per query (the cost of a short caption)
    def __call__(self, queries, **kwargs):
        ids = torch.full((len(queries), 10), 5)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


model = PublishedSeparator(PUBLISHED["sam-audio"], net, Tokens(), "t5").eval()
mixture = 0.1 * torch.randn(1, 10 * 48000)
times = []
with torch.no_grad():
    for _ in range(repeat):
        start = time.perf_counter()
        model(mixture, QueryBatch(["a dog barks"]))
        times.append(time.perf_counter() - start)
params = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("text."))
print(json.dumps({"seconds": min(times), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": params}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    result = subprocess.run([sys.executable, "-c", CHILD, str(args.threads), str(args.repeat)], capture_output=True,
                            text=True, check=True)
    row = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"sam-audio (tiny configuration, {row['params']:,} parameters without T5), {args.threads} thread(s): "
          f"{row['seconds']:.2f} s per 10 s item, peak RSS {row['peak_rss_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
