"""``audiosep``: AudioSep's evaluation lists, mixed with the rule of AudioSep's training mixer.

Sources: Audio-AGI/AudioSep — the lists under ``evaluation/metadata`` (AudioCaps: ``idx,caption,labels,src_wav,
noise_wav``; Clotho: ``idx,caption,src_wav,noise_wav1,noise_wav1`` — two noises, one repeated column name;
ESC-50 / VGGSound: ``idx,caption,src_wav,noise_wav``). Clip names are files: ``Y<YouTube id>.wav`` for AudioSet-
derived lists (matched to a download's YouTube ids), Clotho file names otherwise. AudioSep distributes its
evaluation mixtures pre-rendered; the rule that makes them is not in its evaluation code, so lassbench applies the
rule of its training mixer (``data/waveform_mixers.py``, ``dynamic_loudnorm``), at 32 kHz:

* each noise ``n_k`` energy-matched to the target: ``n_k / r_k``, ``r_k = clamp(sqrt(E(n_k) / max(E(s), 1e-10)),
  0.02, 50)``, then given a random integer gain ``g_k ~ U{-10..10}`` dB;
* their sum energy-matched again and given ``g ~ U{-10..10}`` dB (the item's ``snr_db`` is the realised energy SNR,
  ``-g`` unless the clamp acts);
* if ``max|mixture| > 1``: target and mixture multiplied by ``0.9 / max|mixture|``.

The gains come from the item's RNG (seed, row), so a build is reproducible. The query is the row's ``caption``.
"""

from __future__ import annotations

import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.mixing import ItemSpec
from lassbench.protocols import (
    BuildRequest,
    Prepared,
    SourceLookup,
    index_split,
    item_rng,
    prepare_from_index,
    read_index_rows,
    require_index,
    resolve_rows,
)

NAME = "audiosep"
SAMPLE_RATE = 32000
GAIN_DB = (-10, 10)


def prepare(frame: pd.DataFrame, request: BuildRequest) -> Prepared:
    location = require_index(request, NAME, "an AudioSep evaluation list: idx,caption,[labels,]src_wav,noise_wav")
    header, rows = read_index_rows(location, ("caption", "src_wav"))
    noise_cols = [k for k, name in enumerate(header) if name.startswith("noise_wav")]
    if not noise_cols:
        raise LassbenchError(f"{location}: index has no noise_wav column (header: {','.join(header)})")
    caption_col, src_col = header.index("caption"), header.index("src_wav")
    labels_col = header.index("labels") if "labels" in header else None
    names = [[r[src_col]] + [r[k] for k in noise_cols] for r in rows]
    rows_ids, missing = resolve_rows(location, names, SourceLookup(frame), request.allow_missing)
    split = index_split(request, NAME)
    by_id = frame.set_index("source_id")
    low, high = GAIN_DB

    def make(position: int, identifier: str, ids: list[str]) -> ItemSpec:
        row = rows[position]
        rng = item_rng(request.seed, split, position)
        gains = tuple(float(g) for g in rng.integers(low, high + 1, len(ids) - 1))
        labels = tuple(by_id.at[ids[0], "labels"])
        if not labels and labels_col is not None and row[labels_col]:
            labels = (row[labels_col],)  # AudioSep joins AudioSet names with spaces: kept as one string
        return ItemSpec(
            item_id=identifier, split=split, target_id=ids[0], interferer_ids=tuple(ids[1:]),
            query=row[caption_col], captions=tuple(by_id.at[ids[0], "captions"]) or (row[caption_col],),
            labels=labels, rule="energy_gain", snr_db=gains, mix_db=float(rng.integers(low, high + 1)),
            condition="index", protocol=NAME, seed=request.seed, index=position,
            extra=(("index_row", str(position + 2)),),
        )

    return prepare_from_index(frame, request, split=split, rows_ids=rows_ids, make_spec=make, skipped=missing,
                              location=location, rows=len(rows), default_rate=SAMPLE_RATE,
                              parameters={"gain_db": list(GAIN_DB), "declip_peak": 0.9})
