"""``clapsep``: CLAPSep's AudioCaps evaluation list, mixed as its evaluator mixes it, with its negative captions.

Source: Aaronhuang-778/CLAPSep (5404111) — ``metadata/evaluation/audiocaps_eval.csv`` (header
``source_file,positive_caption,noise_file,negative_caption``; 4,785 rows of AudioCaps clips named ``Y<id>.wav``)
and the ``AudioCapsTest`` dataset of ``evaluation/eval_audiocaps.py``. For each row:

* both clips loaded at 32 kHz (librosa) and cropped / zero-padded to 10 s;
* ``mixture = torchaudio.functional.add_noise(target, noise, snr=0)``: the noise scaled by
  ``10^((10 log10(||t||^2 / ||n||^2) - snr) / 20)``, an *energy* ratio of 0 dB — the ``energy_snr`` rule;
* if ``max|mixture| > 1``: target and mixture multiplied by ``0.9 / max|mixture|`` (lassbench scales the written
  noise too, so ``mixture = target + interferer`` holds);
* the query is ``positive_caption``; ``negative_caption`` (the noise clip's caption: what *not* to separate) is kept
  per item in the manifest column ``negative_query``.

CLAPSep scores with torchmetrics' BSS-Eval SDR and SI-SDR (``zero_mean=False``), improvements over the mixture,
plain means. Every row is built (no loudness gate); rows naming a missing clip fail the build unless
``--allow-missing``.
"""

from __future__ import annotations

import pandas as pd

from lassbench.mixing import ItemSpec
from lassbench.protocols import (
    BuildRequest,
    Prepared,
    SourceLookup,
    index_split,
    prepare_from_index,
    read_index_rows,
    require_index,
    resolve_rows,
)

NAME = "clapsep"
SAMPLE_RATE = 32000
SECONDS = 10  # load_wav's max_length = sr * 10
SNR_DB = 0.0
COLUMNS = ("source_file", "positive_caption", "noise_file", "negative_caption")


def prepare(frame: pd.DataFrame, request: BuildRequest) -> Prepared:
    location = require_index(request, NAME, "CLAPSep's audiocaps_eval.csv: " + ",".join(COLUMNS))
    # the evaluator reads it with csv.reader(skipinitialspace=True); read_index_rows strips every cell
    header, rows = read_index_rows(location, COLUMNS)
    col = {name: header.index(name) for name in COLUMNS}
    rows_ids, missing = resolve_rows(location, [[r[col["source_file"]], r[col["noise_file"]]] for r in rows],
                                     SourceLookup(frame), request.allow_missing)
    split = index_split(request, NAME)
    by_id = frame.set_index("source_id")

    def make(position: int, identifier: str, ids: list[str]) -> ItemSpec:
        row = rows[position]
        query = row[col["positive_caption"]]
        return ItemSpec(
            item_id=identifier, split=split, target_id=ids[0], interferer_ids=(ids[1],), query=query,
            captions=tuple(by_id.at[ids[0], "captions"]) or (query,), labels=tuple(by_id.at[ids[0], "labels"]),
            rule="energy_snr", snr_db=(SNR_DB,), condition="index", protocol=NAME, seed=request.seed,
            index=position,
            extra=(("index_row", str(position + 2)), ("negative_query", row[col["negative_caption"]])),
        )

    rate = request.sample_rate or SAMPLE_RATE
    return prepare_from_index(frame, request, split=split, rows_ids=rows_ids, make_spec=make, skipped=missing,
                              location=location, rows=len(rows), default_rate=SAMPLE_RATE,
                              parameters={"snr_db": SNR_DB, "seconds": SECONDS, "declip_peak": 0.9},
                              num_samples=SECONDS * rate, exact=rate == SAMPLE_RATE)
