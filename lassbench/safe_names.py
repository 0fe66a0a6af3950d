"""The one rule for a name that comes from data and becomes part of a file path.

Item ids (``mixture/<id>.wav``), splits (item ids are ``<split>-<n>``), AudioCaps ids and folder file names
(``audio/<id>.wav``), package names (``licences/<name>.copyright``) are read from files other people made. Each is
checked where it enters, with :func:`check_names`: a plain file name — one path part, so ``out / name`` stays in
``out`` on every platform. Refused: empty or over 200 characters, a ``/`` or ``\\``, a leading dot (``.``, ``..``,
hidden files), control characters (NUL, newline, tab, DEL).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from lassbench.errors import LassbenchError

MAX_NAME_LENGTH = 200
RULE = "one path part: no / or \\, no leading dot, no control characters, 1-200 characters"


def is_plain_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and not any(unicodedata.category(ch) == "Cc" for ch in name)
    )


def check_names(names: Iterable, what: str, where: object) -> None:
    """Refuse, in one line naming ``where`` and the first few offenders, any of ``names`` that is not plain."""
    bad = [name for name in dict.fromkeys(names) if not is_plain_name(name)]
    if bad:
        shown = ", ".join(repr(name) for name in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise LassbenchError(f"{where}: {what}(s) that are not plain file names ({RULE}): {shown}")


def check_name(name: object, what: str, where: object) -> str:
    check_names([name], what, where)
    return name
