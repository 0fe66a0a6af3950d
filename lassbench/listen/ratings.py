"""Ratings files, read and reunited with the test's key: the page's own export and webMUSHRA's ``mushra.csv``.

The page exports ``test_id,session,listener,trial_id,rating_stimulus,rating_score,rating_time`` with the opaque
stimulus ids listeners saw. webMUSHRA (``service/write.php``) appends every session to ``results/<testId>/mushra.csv``
as ``session_test_id,<one column per participant field>,[session_uuid,]trial_id,rating_stimulus,rating_score,
rating_time,rating_comment`` (``session_uuid`` since 2019); its pages are the test's trials (page ``id`` = trial id,
``stimuli`` keys = the key's stimulus ids) and it adds the reference itself as the hidden ``reference`` and, when
asked, its own anchors ``anchor35`` / ``anchor70``: those are read as the hidden reference and the 3.5 / 7 kHz
anchors. Each row's stimulus id is replaced by the condition the key names, so everything after this works on
conditions.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lassbench.errors import LassbenchError
from lassbench.listen.page import RATINGS_COLUMNS
from lassbench.listen.stimuli import HIDDEN_REFERENCE, LOW_ANCHOR, MID_ANCHOR
from lassbench.manifests import read_manifest

WEBMUSHRA_COLUMNS = ("session_test_id", "trial_id", "rating_stimulus", "rating_score", "rating_time")
WEBMUSHRA_OWN = {"reference": HIDDEN_REFERENCE, "anchor35": LOW_ANCHOR, "anchor70": MID_ANCHOR}


def read_ratings(paths: list[str | Path], test: dict) -> tuple[pd.DataFrame, int]:
    """All rating rows with ``rating_stimulus`` = the condition (``assessor`` = the listener id, else the session),
    checked against the key; a condition rated again (a later export, a second file) keeps its last rating.
    Returns (rows, duplicates dropped)."""
    if not paths:
        raise LassbenchError("name at least one ratings CSV (exported from the test page, or webMUSHRA's mushra.csv)")
    frames = [_read_one(Path(path), test) for path in paths]
    rows = pd.concat(frames, ignore_index=True)
    rows["rating_score"] = rows["rating_score"].astype(float)
    rows["rating_time"] = pd.to_numeric(rows["rating_time"], errors="coerce")
    rows["assessor"] = [listener or session for listener, session in zip(rows["listener"], rows["session"],
                                                                           strict=True)]
    before = len(rows)
    rows = rows.drop_duplicates(["assessor", "trial_id", "rating_stimulus"], keep="last").reset_index(drop=True)
    return rows, before - len(rows)


def _read_one(path: Path, test: dict) -> pd.DataFrame:
    if not path.is_file():
        raise LassbenchError(f"{path}: ratings file not found")
    try:
        frame = read_manifest(path, [])  # also removes the formula guard's apostrophes
    except LassbenchError as exc:
        raise LassbenchError(f"{path}: cannot read ratings CSV ({exc})") from exc
    if all(c in frame.columns for c in WEBMUSHRA_COLUMNS):
        frame = _from_webmushra(frame, path)
        aliases = WEBMUSHRA_OWN
    else:
        missing = [c for c in RATINGS_COLUMNS if c not in frame.columns]
        if missing:
            raise LassbenchError(f"{path}: not a ratings export (lacks column(s) {', '.join(missing)}; expected "
                                 "the test page's export or webMUSHRA's mushra.csv)")
        other = sorted(set(frame["test_id"]) - {test["test_id"]})
        if other:
            raise LassbenchError(f"{path}: ratings of test {other[0]}, not of this test ({test['test_id']}); pass "
                                 "the key of the test these ratings came from")
        aliases = {}
    frame = frame[list(RATINGS_COLUMNS)].copy()
    frame["rating_stimulus"] = _conditions(frame, path, test, aliases)
    return frame


def _from_webmushra(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """webMUSHRA's columns as the page's: the participant fields (name, email, ...) joined are the listener, the
    session uuid the session. Its testId is the experimenter's choice: the key's stimulus ids identify the test."""
    columns = list(frame.columns)
    end = columns.index("session_uuid") if "session_uuid" in columns else columns.index("trial_id")
    fields = columns[columns.index("session_test_id") + 1:end]
    listener = frame[fields].agg(" / ".join, axis=1) if fields else pd.Series("", index=frame.index)
    session = frame["session_uuid"] if "session_uuid" in frame else pd.Series("", index=frame.index)
    if ((listener.str.strip(" /") == "") & (session == "")).any():
        raise LassbenchError(f"{path}: webMUSHRA rows with neither a participant field nor a session_uuid: their "
                             "listeners cannot be told apart (add a participant field such as a name to the "
                             "webMUSHRA config)")
    return pd.DataFrame({"test_id": frame["session_test_id"], "session": session, "listener": listener.str.strip(" /"),
                         "trial_id": frame["trial_id"], "rating_stimulus": frame["rating_stimulus"],
                         "rating_score": frame["rating_score"], "rating_time": frame["rating_time"]})


def _conditions(frame: pd.DataFrame, path: Path, test: dict, aliases: dict[str, str]) -> list[str]:
    """Each row's condition from the key; unknown trials or stimuli and scores outside 0..100 are refused."""
    key = {t["trial_id"]: {s["id"]: s["condition"] for s in t["stimuli"]} for t in test["trials"]}
    out = []
    for line, (trial, stimulus, score) in enumerate(
            zip(frame["trial_id"], frame["rating_stimulus"], frame["rating_score"], strict=True), start=2):
        conditions = key.get(trial, {})
        condition = conditions.get(stimulus) or (aliases.get(stimulus) if trial in key else None)
        if condition is None:
            raise LassbenchError(f"{path}:{line}: unknown trial/stimulus {trial}/{stimulus} (not in this test's key)")
        try:
            value = float(score)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 100:
            raise LassbenchError(f"{path}:{line}: rating_score {score!r} is not a number in 0..100")
        out.append(condition)
    return out
