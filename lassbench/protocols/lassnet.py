"""``lassnet``: LASS-Net's evaluation pairs and the mixing rule of its released code.

Source: liuxubo717/LASS — ``dataset/evaluation_indexes.csv`` (header ``target_wav, noise_wav``: YouTube ids of
AudioCaps clips; 1,000 rows = 200 targets x 5 noises) and its ``add_noise_and_scale`` (inherited from voicefixer's
augmentation code). Every clip is loaded as the release's ``utils/wav_io.load_wav`` loads it: at 32 kHz, zero-padded
to 10 s (its crop line assigns to an unused variable, so a clip longer than 10 s is kept whole; the noise is then
cropped or padded to the target's length, where the release would fail on two lengths). Then, for each pair:

* both clips peak-normalised: ``t / max|t|``, ``n / max|n|``;
* the noise divided by ``10^(snr/20)`` with ``snr = 0`` dB by default (a *peak* ratio, not an energy SNR);
* target, noise and mixture all divided by ``max(max|t + n|, max|n|, max|t|)`` (``unify_energy``: the largest peak
  of the three, so the mixture peaks at exactly 1 unless the clips cancel at their peaks; ``gain`` records the
  factor).

The list names no caption: the query of a target's k-th row is its k-th caption (cycling), so the 5 noises of a
target in the official list use its 5 AudioCaps captions in turn when it has 5. Rows whose target has no caption are
skipped (reason recorded). Most of these targets are AudioCaps *train* clips: use ``--train-manifest`` to see which.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from lassbench.mixing import ItemSpec
from lassbench.protocols import BuildRequest, Prepared, index

NAME = "lassnet"
SAMPLE_RATE = 32000
SI_SDR_CONVENTION = "zero-mean"  # lassbench's own (zero-mean, capped at ±100 dB: lassbench.metrics)
PAD_SECONDS = 10  # load_wav's max_length = 32000 * 10
COLUMNS = ("target_wav", "noise_wav")


def prepare(frame: pd.DataFrame, request: BuildRequest) -> Prepared:
    location = index.require(request, NAME, "LASS-Net's evaluation_indexes.csv: target_wav,noise_wav")
    header, rows = index.read_rows(location, COLUMNS)
    target_col, noise_col = header.index("target_wav"), header.index("noise_wav")
    rows_ids, missing = index.resolve_rows(location, [[r[target_col], r[noise_col]] for r in rows],
                                           index.SourceLookup(frame), request.allow_missing)
    split = index.split_for(request, NAME)
    snr = float(request.options.get("snr_db", 0.0))
    by_id = frame.set_index("source_id")
    occurrence = _occurrences(rows_ids)

    def make(position: int, identifier: str, ids: list[str]) -> ItemSpec | str:
        captions = tuple(by_id.at[ids[0], "captions"])
        if not captions:
            return f"item: target {ids[0]} has no caption to query with"
        return ItemSpec(
            item_id=identifier, split=split, target_id=ids[0], interferer_ids=(ids[1],),
            query=captions[occurrence[position] % len(captions)], captions=captions,
            labels=tuple(by_id.at[ids[0], "labels"]), rule="peak_snr", snr_db=(snr,), condition="index",
            protocol=NAME, seed=request.seed, index=position, extra=(("index_row", str(position + 2)),),
        )

    rate = request.sample_rate or SAMPLE_RATE
    return index.prepare(frame, request, split=split, rows_ids=rows_ids, make_spec=make, skipped=missing,
                         location=location, rows=len(rows), default_rate=SAMPLE_RATE,
                         parameters={"snr_db": snr, "pad_seconds": PAD_SECONDS}, pad_to=PAD_SECONDS * rate,
                         exact=rate == SAMPLE_RATE and snr == 0.0)


def _occurrences(rows_ids: list[list[str] | None]) -> list[int]:
    """For each row, how many earlier rows had the same target (which caption it queries with)."""
    seen: Counter = Counter()
    result = []
    for ids in rows_ids:
        key = ids[0] if ids else None
        result.append(seen[key])
        seen[key] += 1
    return result
