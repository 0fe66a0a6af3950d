"""``clapsep``: CLAPSep's five evaluation lists, mixed as its evaluator mixes AudioCaps, with their negative captions.

Source: Aisaka0v0/CLAPSep (5404111) — ``metadata/evaluation/<list>_eval.csv`` (header
``source_file,positive_caption,noise_file,negative_caption``) and the ``AudioCapsTest`` dataset of
``evaluation/eval_audiocaps.py``:

===========  ======================  ======  ====================================================================
list         file                    rows    clips named
===========  ======================  ======  ====================================================================
audiocaps    ``audiocaps_eval.csv``   4,785  AudioCaps test clips ``Y<id>.wav``
audioset     ``audioset_eval.csv``   18,869  AudioSet evaluation clips ``Y<id>.wav``, query "The sounds of ..."
esc50        ``esc_eval.csv``         7,500  ESC-50 clips ``<fold>-<id>-<take>-<class>.wav``
fsd50k       ``fsd_eval.csv``         8,000  FSD50K clips (CLAPSep's 8-hex-digit names)
music        ``music_eval.csv``      19,805  MUSIC segments ``<youtube id>_<n>.wav``
===========  ======================  ======  ====================================================================

For each row:

* both clips loaded at 32 kHz (librosa) and cropped / zero-padded to 10 s;
* ``mixture = torchaudio.functional.add_noise(target, noise, snr=0)``: the noise scaled by
  ``10^((10 log10(||t||^2 / ||n||^2) - snr) / 20)``, an *energy* ratio of 0 dB — the ``energy_snr`` rule;
* if ``max|mixture| > 1``: target and mixture multiplied by ``0.9 / max|mixture|`` (lassbench scales the written
  noise too, so ``mixture = target + interferer`` holds);
* the query is ``positive_caption``; ``negative_caption`` (the noise clip's caption: what *not* to separate) is kept
  per item in the manifest column ``negative_query``.

The repository publishes an evaluator for AudioCaps only (its README: "Evaluation: TODO"); the other four lists are
mixed by the same ``AudioCapsTest`` rule, which the paper states for all its benchmarks (0 dB, 10 s), so their builds
say ``"exact": false`` (the rule is the authors' AudioCaps code, not a published evaluator of that list). The
``*_samples.csv`` files are audio-query lists (class, example clips) and are refused.

CLAPSep scores with torchmetrics' BSS-Eval SDR and SI-SDR (``zero_mean=False``), improvements over the mixture,
plain means over items (``test_step``): dataset.json says ``headline_sdr: bss_sdr``, so ``run`` and ``evaluate``
score ``bss_sdr`` / ``bss_sdri`` by default and leaderboards show them in the ``sdr`` / ``sdri`` columns. Every row
is built (no loudness gate); rows naming a missing clip fail the build unless ``--allow-missing``.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.mixing import ItemSpec
from lassbench.protocols import BuildRequest, Prepared, index

NAME = "clapsep"
SAMPLE_RATE = 32000
SI_SDR_CONVENTION = "audiosep"  # torchmetrics SI-SDR with zero_mean=False: calculate_sisdr's formula
SECONDS = 10  # load_wav's max_length = sr * 10
SNR_DB = 0.0
COLUMNS = ("source_file", "positive_caption", "noise_file", "negative_caption")
LISTS = {"audiocaps": "audiocaps", "audioset": "audioset", "esc": "esc50", "fsd": "fsd50k", "music": "music"}
EVALUATED = "audiocaps"  # the one list with a published evaluator (evaluation/eval_audiocaps.py)


def list_name(location: str) -> str:
    """Which of CLAPSep's lists an index is, from its file name (``<list>_eval.csv``); unknown names are taken as
    AudioCaps-like lists (the same layout and rule)."""
    stem = PurePosixPath(location.split("?", 1)[0]).name.lower()
    if "_samples" in stem:
        raise LassbenchError(f"{location}: an audio-query list (class, example clips), not an evaluation list: pass "
                             "<list>_eval.csv (" + ", ".join(f"{k}_eval.csv" for k in LISTS) + ")")
    return next((name for prefix, name in LISTS.items() if stem.startswith(prefix)), EVALUATED)


def prepare(frame: pd.DataFrame, request: BuildRequest) -> Prepared:
    location = index.require(request, NAME, "one of CLAPSep's <list>_eval.csv: " + ",".join(COLUMNS))
    which = list_name(location)
    # the evaluator reads it with csv.reader(skipinitialspace=True); index.read_rows strips every cell
    header, rows = index.read_rows(location, COLUMNS)
    col = {name: header.index(name) for name in COLUMNS}
    rows_ids, missing = index.resolve_rows(location, [[r[col["source_file"]], r[col["noise_file"]]] for r in rows],
                                           index.SourceLookup(frame), request.allow_missing)
    split = index.split_for(request, NAME)
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
    return index.prepare(frame, request, split=split, rows_ids=rows_ids, make_spec=make, skipped=missing,
                         location=location, rows=len(rows), default_rate=SAMPLE_RATE,
                         parameters={"list": which, "snr_db": SNR_DB, "seconds": SECONDS, "declip_peak": 0.9,
                                     "aggregation": "mean", "headline_sdr": "bss_sdr"},
                         num_samples=SECONDS * rate, exact=rate == SAMPLE_RATE and which == EVALUATED)
