"""``audiosep``: AudioSep's six evaluation lists, built from its published rendered files (exact) or re-mixed.

Source: Audio-AGI/AudioSep (944583f) ``evaluation/evaluate_*.py`` and ``evaluation/metadata/*_eval.csv``. Its
evaluators never mix: they read pre-rendered pairs from ``evaluation/data/<set>/`` with librosa at 32 kHz, and so does
lassbench when ``--sources`` is that folder (the *rendered* mode, ``dataset.json`` ``"exact": true``):

==========  ==================================================  ===========================  =====================
set         index (header)                                      files (target, mixture)      query
==========  ==================================================  ===========================  =====================
audiocaps   ``idx,caption,labels,src_wav,noise_wav``            ``segment-{idx}.wav``,       ``caption``
clotho      ``idx,caption,src_wav,noise_wav1,noise_wav1``       ``mixture-{idx}.wav``        ``caption``
esc50       ``idx,caption,src_wav,noise_wav``                   (same)                       ``caption``
music       ``idx,caption,src_wav,noise_wav``                   (same)                       ``caption``
audioset    ``idx,caption,src_wav,noise_wav`` (idx = class id)  ``class_id=K/class_id=K,``   class display name
                                                                ``index=NNN,{source,mixture}``  (the ``caption``)
vggsound    ``file_id,mix_wav,s0_wav,s0_text,s1_wav,s1_text``   ``s0_wav``, ``mix_wav``      ``s0_text``
==========  ==================================================  ===========================  =====================

The mixture is the published file as it is (rule ``rendered``); the written interferer is ``mixture - target``.
Official aggregation, recorded as ``parameters.aggregation``: AudioSet = mean over classes of the per-class nan-median
(``class-median-mean``), MUSIC = mean of per-class means (``class-mean``), the others plain means; an item's class is
its first label (AudioSet: the display name, MUSIC / ESC-50 / VGGSound: the query).

From raw clips (``--sources`` a download or folder of the clips the lists name, no ``mixture-*.wav``), lassbench
re-mixes them with the rule of AudioSep's *training* mixer (``data/waveform_mixers.py``, ``dynamic_loudnorm``) and
its own random gains, so the items are *not* AudioSep's (``"exact": false``): at 32 kHz,

* each noise ``n_k`` energy-matched to the target: ``n_k / r_k``, ``r_k = clamp(sqrt(E(n_k) / max(E(s), 1e-10)),
  0.02, 50)``, then given a random integer gain ``g_k ~ U{-10..10}`` dB;
* their sum energy-matched again and given ``g ~ U{-10..10}`` dB (the item's ``snr_db`` is the realised energy SNR);
* if ``max|mixture| > 1``: target and mixture multiplied by ``0.9 / max|mixture|``.

AudioSet and VGGSound lists name rendered files only, so they build in the rendered mode only.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pandas as pd

from lassbench.corpora import ResolvedSources
from lassbench.errors import LassbenchError
from lassbench.mixing import ItemSpec
from lassbench.protocols import BuildRequest, Prepared, index, item_rng

NAME = "audiosep"
SAMPLE_RATE = 32000
SI_SDR_CONVENTION = "audiosep"  # its evaluator scores SI-SDR with utils.calculate_sisdr
GAIN_DB = (-10, 10)
SETS = ("audiocaps", "clotho", "esc50", "music", "audioset", "vggsound")
AGGREGATION = {"audioset": "class-median-mean", "music": "class-mean"}  # every other set: "mean"
MUSIC_CLASSES = frozenset({"acoustic guitar", "violin", "accordion", "xylophone", "erhu", "trumpet", "tuba", "cello",
                           "flute", "saxophone"})  # evaluate_music.py's source_types
RENDERED_COLUMN = "audiosep_set"  # marks a source frame made by resolve_sources (rendered mode)
_MIXTURE_FILE = re.compile(r"^mixture-.+\.wav$")


# ------------------------------------------------------------------------------------------------ which set


def set_name(location: str, header: list[str], rows: list[list[str]]) -> str:
    """Which of AudioSep's six lists an index is: from its file name (``<set>_eval.csv``), else from its columns."""
    stem = PurePosixPath(location.split("?", 1)[0]).name.lower()
    named = next((s for s in SETS if stem.startswith(s)), None)
    if named:
        return named
    if "mix_wav" in header:
        return "vggsound"
    if "src_wav" in header and rows and "class_id=" in rows[0][header.index("src_wav")]:
        return "audioset"
    if "labels" in header:
        return "audiocaps"
    if sum(name.startswith("noise_wav") for name in header) > 1:
        return "clotho"
    if "caption" in header and rows and all(r[header.index("caption")] in MUSIC_CLASSES for r in rows):
        return "music"
    return "esc50"


def _rendered_pairs(location: str, header: list[str], rows: list[list[str]], folder: Path
                    ) -> list[tuple[str, str]] | None:
    """(target, mixture) file of every row, relative to ``folder``, when ``folder`` holds AudioSep's rendered data
    for this list; ``None`` when it holds raw clips instead (only the AudioSet and VGGSound lists name rendered files
    themselves; the others are rendered when ``folder`` has ``mixture-*.wav`` files)."""
    kind = set_name(location, header, rows)
    if kind not in ("audioset", "vggsound") and not any(_MIXTURE_FILE.match(p.name) for p in folder.iterdir()):
        return None
    return _pairs(location, kind, header, rows)


def _pairs(location: str, kind: str, header: list[str], rows: list[list[str]]) -> list[tuple[str, str]]:
    if kind == "vggsound":
        _require(location, header, ("mix_wav", "s0_wav", "s0_text"))
        mix, s0 = header.index("mix_wav"), header.index("s0_wav")
        return [(r[s0], r[mix]) for r in rows]
    if kind == "audioset":
        _require(location, header, ("idx", "caption", "src_wav"))
        src = header.index("src_wav")
        # the list's paths start with evaluation/data/audioset/; the evaluator pairs ``<name>,source.wav`` with
        # ``<name>,mixture.wav`` inside class_id=K/
        pairs = []
        for r in rows:
            target = "/".join(PurePosixPath(r[src]).parts[-2:])
            pairs.append((target, re.sub(r",source\.wav$", ",mixture.wav", target)))
        return pairs
    _require(location, header, ("idx", "caption"))
    idx = header.index("idx")
    return [(f"segment-{r[idx]}.wav", f"mixture-{r[idx]}.wav") for r in rows]


def _require(location: str, header: list[str], columns) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise LassbenchError(f"{location}: index lacks column(s) {', '.join(missing)} (header: {','.join(header)})")


def resolve_sources(sources, location: str | None) -> ResolvedSources | None:
    """The rendered files an AudioSep list names inside ``sources`` (its ``evaluation/data/<set>`` folder), or
    ``None`` when ``sources`` holds raw clips (the re-mix reads them as any corpus)."""
    if not location or sources is None or not Path(sources).is_dir():
        return None
    folder = Path(sources)
    header, rows = index.read_rows(location, ())
    pairs = _rendered_pairs(location, header, rows, folder)
    if pairs is None:
        return None
    kind = set_name(location, header, rows)
    records = []
    for name in sorted({n for pair in pairs for n in pair}):
        path = _inside(folder, name, location)
        if path.is_file():
            records.append({"source_id": name, "path": str(path), "captions": [], "labels": [], "split": "",
                            "sha1": "", RENDERED_COLUMN: kind})
    if not records:
        raise LassbenchError(f"{folder}: none of the {len(pairs)} rendered pairs named by {location} is there "
                             f"(expected e.g. {pairs[0][0]} and {pairs[0][1]})" if pairs else f"{location}: no rows")
    return ResolvedSources(pd.DataFrame(records), folder.name, str(folder))


def _inside(folder: Path, name: str, location: str) -> Path:
    """``folder / name``, refusing names that leave the folder."""
    path = (folder / name).resolve()
    if PurePosixPath(name).is_absolute() or not path.is_relative_to(folder.resolve()):
        raise LassbenchError(f"{location}: file {name!r} is outside the sources folder {folder}")
    return path


class _Files:
    """Resolve a rendered file name to its source id (the name itself) when the file exists."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._names = set(frame["source_id"])

    def find(self, name: str) -> str | None:
        return name if name in self._names else None


# -------------------------------------------------------------------------------------------------- prepare


def prepare(frame: pd.DataFrame, request: BuildRequest) -> Prepared:
    location = index.require(request, NAME, "an AudioSep evaluation list, evaluation/metadata/<set>_eval.csv")
    if RENDERED_COLUMN in frame:
        return _prepare_rendered(frame, request, location)
    return _prepare_remix(frame, request, location)


def _prepare_rendered(frame: pd.DataFrame, request: BuildRequest, location: str) -> Prepared:
    header, rows = index.read_rows(location, ())
    kind = set_name(location, header, rows)
    pairs = _pairs(location, kind, header, rows)
    rows_ids, missing = index.resolve_rows(location, [list(p) for p in pairs], _Files(frame), request.allow_missing)
    split = index.split_for(request, NAME)
    query_col = header.index("s0_text" if kind == "vggsound" else "caption")
    labels_col = header.index("labels") if "labels" in header else None

    def make(position: int, identifier: str, ids: list[str]) -> ItemSpec:
        row = rows[position]
        query = row[query_col]
        if kind == "audiocaps":
            labels = (row[labels_col],) if labels_col is not None and row[labels_col] else ()
        else:  # the class the official aggregation groups by (AudioSet, MUSIC) or the label queried (ESC-50, VGGSound)
            labels = (query,) if kind != "clotho" else ()
        return ItemSpec(
            item_id=identifier, split=split, target_id=ids[0], interferer_ids=(), query=query, captions=(query,),
            labels=labels, rule="rendered", snr_db=(), condition="index", protocol=NAME, seed=request.seed,
            index=position, mixture_id=ids[1], extra=(("index_row", str(position + 2)), ("mixture_source", ids[1])),
        )

    prepared = index.prepare(frame, request, split=split, rows_ids=rows_ids, make_spec=make, skipped=missing,
                             location=location, rows=len(rows), default_rate=SAMPLE_RATE,
                             parameters={"set": kind, "rendered": True,
                                         "aggregation": AGGREGATION.get(kind, "mean")})
    # the evaluators load every file at 32 kHz: another rate gives other numbers
    prepared.exact = prepared.sample_rate == SAMPLE_RATE
    return prepared


def _prepare_remix(frame: pd.DataFrame, request: BuildRequest, location: str) -> Prepared:
    header, rows = index.read_rows(location, ())
    kind = set_name(location, header, rows)
    if kind in ("audioset", "vggsound"):
        raise LassbenchError(f"{location}: the {kind} list names AudioSep's rendered files: pass --sources "
                             f"the folder holding them (AudioSep's evaluation/data/{kind})")
    _require(location, header, ("caption", "src_wav"))
    noise_cols = [k for k, name in enumerate(header) if name.startswith("noise_wav")]
    if not noise_cols:
        raise LassbenchError(f"{location}: index has no noise_wav column (header: {','.join(header)})")
    caption_col, src_col = header.index("caption"), header.index("src_wav")
    labels_col = header.index("labels") if "labels" in header else None
    names = [[r[src_col]] + [r[k] for k in noise_cols] for r in rows]
    rows_ids, missing = index.resolve_rows(location, names, index.SourceLookup(frame), request.allow_missing)
    split = index.split_for(request, NAME)
    by_id = frame.set_index("source_id")
    low, high = GAIN_DB

    def make(position: int, identifier: str, ids: list[str]) -> ItemSpec:
        row = rows[position]
        rng = item_rng(request.seed, split, position)
        gains = tuple(float(g) for g in rng.integers(low, high + 1, len(ids) - 1))
        labels = tuple(by_id.at[ids[0], "labels"])
        if not labels and labels_col is not None and row[labels_col]:
            labels = (row[labels_col],)  # AudioSep joins AudioSet names with spaces: kept as one string
        if not labels and kind in ("music", "esc50"):
            labels = (row[caption_col],)  # the class the official aggregation groups by
        return ItemSpec(
            item_id=identifier, split=split, target_id=ids[0], interferer_ids=tuple(ids[1:]),
            query=row[caption_col], captions=tuple(by_id.at[ids[0], "captions"]) or (row[caption_col],),
            labels=labels, rule="energy_gain", snr_db=gains, mix_db=float(rng.integers(low, high + 1)),
            condition="index", protocol=NAME, seed=request.seed, index=position,
            extra=(("index_row", str(position + 2)),),
        )

    return index.prepare(frame, request, split=split, rows_ids=rows_ids, make_spec=make, skipped=missing,
                         location=location, rows=len(rows), default_rate=SAMPLE_RATE,
                         parameters={"set": kind, "rendered": False, "aggregation": AGGREGATION.get(kind, "mean"),
                                     "gain_db": list(GAIN_DB), "declip_peak": 0.9},
                         exact=False)
