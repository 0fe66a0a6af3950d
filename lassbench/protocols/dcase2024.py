"""``dcase2024``: DCASE 2024 Task 9 (LASS) synthetic evaluation lists, mixed as its evaluator mixes them.

Source: ``dcase_evaluator.py`` of Audio-AGI/dcase2024_task9_baseline. Index CSV ``source,noise,snr,caption``
(clip names without extension; one row per mixture). For each row, at 16 kHz:

* ``scale = sqrt(mean(s^2) / 10^(snr/10) / mean(n^2))`` and ``mixture = s + scale * n`` — an *energy* SNR;
* if ``max|mixture| > 1``: ``s`` and ``mixture`` are multiplied by ``0.9 / max|mixture|`` (lassbench also scales the
  written interferer, so ``mixture = target + interferer`` holds);
* the query is the row's ``caption``.

The evaluator casts ``snr`` with ``int()``; lassbench accepts any finite number and rejects anything else. Every row
is built and scored, quiet or short clips included (no loudness gate, as the evaluator).
"""

from __future__ import annotations

import pandas as pd

from lassbench.mixing import ItemSpec
from lassbench.protocols import BuildRequest, Prepared, index

NAME = "dcase2024"
SAMPLE_RATE = 16000
SI_SDR_CONVENTION = "audiosep"  # dcase_evaluator.py scores SI-SDR with AudioSep's calculate_sisdr
COLUMNS = ("source", "noise", "snr", "caption")


def prepare(frame: pd.DataFrame, request: BuildRequest) -> Prepared:
    location = index.require(request, NAME, "the DCASE 2024 Task 9 list: source,noise,snr,caption")
    header, rows = index.read_rows(location, COLUMNS)
    col = {name: header.index(name) for name in COLUMNS}
    snrs = [index.parse_number(location, line, "snr", row[col["snr"]]) for line, row in enumerate(rows, start=2)]
    lookup = index.SourceLookup(frame)
    rows_ids, missing = index.resolve_rows(location, [[r[col["source"]], r[col["noise"]]] for r in rows], lookup,
                                           request.allow_missing)
    split = index.split_for(request, NAME)
    by_id = frame.set_index("source_id")

    def make(position: int, identifier: str, ids: list[str]) -> ItemSpec:
        row = rows[position]
        return ItemSpec(
            item_id=identifier, split=split, target_id=ids[0], interferer_ids=(ids[1],),
            query=row[col["caption"]], captions=tuple(by_id.at[ids[0], "captions"]) or (row[col["caption"]],),
            labels=tuple(by_id.at[ids[0], "labels"]), rule="energy_snr", snr_db=(snrs[position],),
            condition="index", protocol=NAME, seed=request.seed, index=position,
            extra=(("index_row", str(position + 2)),),
        )

    return index.prepare(frame, request, split=split, rows_ids=rows_ids, make_spec=make, skipped=missing,
                         location=location, rows=len(rows), default_rate=SAMPLE_RATE,
                         parameters={"declip_peak": 0.9},
                         # the evaluator's int(snr) refuses "2.5": such a list is lassbench's extension
                         exact=(request.sample_rate or SAMPLE_RATE) == SAMPLE_RATE
                         and all(s.is_integer() for s in snrs))
