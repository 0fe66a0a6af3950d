"""The key of a blind listening test: which opaque stimulus id is which condition, kept outside the listeners' folder.

Listeners get a folder whose page, DOM, file names and exported CSVs carry only opaque stimulus ids (``s`` + 12 hex
digits) in a per-trial order; the key file (default ``<folder>.key.json``, beside the folder) maps each id back to
its condition and holds everything else an experimenter needs and a listener must not see: the systems, item ids,
loudness gains and each system's per-item SDRi / SI-SDRi / CLAPScore.

The ids and the order come from an HMAC of a random secret stored in the key: without the key nothing links an id to
a condition (the public ``--seed`` draws the items only). Rebuilding the same test beside an existing key reuses its
secret, so the ids, files and ``test_id`` stay the same and ratings already collected remain valid.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

from lassbench.audio import write_text_atomic
from lassbench.errors import LassbenchError

KEY_SUFFIX = ".key.json"
LEGACY_KEY = "test.json"  # older builds kept the key inside the folder (not blind)


def default_key_path(folder: str | Path) -> Path:
    """``listening/synth`` -> ``listening/synth.key.json`` (beside the folder, never in it)."""
    folder = Path(folder)
    return folder.with_name(folder.name + KEY_SUFFIX)


def check_outside_folder(path: Path, folder: Path, flag: str = "--key") -> None:
    """Refuse to write the key, or scores, where listeners would get them: in their folder."""
    path_abs, folder_abs = path.resolve(), folder.resolve()
    if path_abs == folder_abs or folder_abs in path_abs.parents:
        raise LassbenchError(f"{flag} {path}: inside the folder sent to listeners ({folder}); the key and the scores "
                             "must stay outside it (the key's default: beside it, as <folder>.key.json)")


def blinding_secret(key: Path, identity_sha256: str) -> str:
    """The secret of an existing key for the same test, else a fresh one."""
    if key.is_file():
        try:
            old = json.loads(key.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        blinding = old.get("blinding") if isinstance(old, dict) else None
        if isinstance(blinding, dict) and old.get("identity_sha256") == identity_sha256 and blinding.get("secret"):
            return str(blinding["secret"])
    return secrets.token_hex(16)


def stimulus_id(secret: str, trial_id: str, condition: str) -> str:
    digest = hmac.new(secret.encode(), f"{trial_id}\0{condition}".encode(), hashlib.sha256).hexdigest()
    return "s" + digest[:12]


def blind_order(secret: str, trial_id: str, conditions: list[str]) -> list[tuple[str, str]]:
    """``[(stimulus id, condition)]`` in display order: sorted by the (pseudo-random) ids, a secret permutation."""
    pairs = sorted((stimulus_id(secret, trial_id, c), c) for c in conditions)
    if len({i for i, _ in pairs}) != len(pairs):  # 48-bit ids: a collision means a broken secret, never chance
        raise LassbenchError(f"trial {trial_id}: two conditions drew the same stimulus id; rebuild")
    return pairs


def write_key(key: Path, test: dict) -> Path:
    return write_text_atomic(key, json.dumps(test, indent=2) + "\n")


def resolve_key(path: str | Path) -> Path:
    """The key file given it, or the listeners' folder it sits beside (or, for older builds, the folder's
    test.json)."""
    path = Path(path)
    if path.is_dir():
        beside, inside = default_key_path(path), path / LEGACY_KEY
        if beside.is_file():
            return beside
        if inside.is_file():
            return inside
        raise LassbenchError(f"{path}: no key beside this folder ({beside.name}); pass --key with the key file "
                             "`listen build` wrote")
    return path


def read_key(path: str | Path) -> dict:
    """The key of a built test; every stimulus carries ``id`` (what listeners saw) and ``condition``."""
    path = resolve_key(path)
    try:
        test = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LassbenchError(f"{path}: cannot read the test's key ({exc}); pass the key file `listen build` "
                             "wrote") from exc
    missing = [k for k in ("test_id", "trials") if not isinstance(test, dict) or k not in test]
    if missing:
        raise LassbenchError(f"{path}: not a test key written by `listen build` (no {', '.join(missing)})")
    for trial in test["trials"]:
        for stimulus in trial.get("stimuli", []):
            stimulus.setdefault("condition", stimulus["id"])  # older, unblinded builds: the id was the condition
    return test
