"""JSON files lassbench writes and reads back: NaN-free values, and one clear error for a file that is not an object."""

from __future__ import annotations

import json
import math
from pathlib import Path

from lassbench.errors import LassbenchError


def jsonable(value):
    """``value`` with NaN and infinities as ``None`` (JSON has neither), tuples as lists and dict keys as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_json_object(path: str | Path) -> dict:
    """The JSON object in ``path``; a :class:`LassbenchError` naming the file when it is unreadable or not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LassbenchError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise LassbenchError(f"{path}: expected a JSON object")
    return data
