"""Debian packages as a data source: fetch a pinned ``.deb``, verify it, and read its files in pure Python.

A ``.deb`` is an ``ar`` archive holding ``debian-binary``, ``control.tar.*`` and ``data.tar.{xz,gz,bz2,zst}``; the
payload is the data tarball. Reading it needs only :mod:`tarfile` (``zst`` needs the optional ``zstandard``
module), so a corpus can be built on machines without ``dpkg``.

Fetching: ``apt-get download NAME=VERSION`` where it works; elsewhere (or with ``--mirror``) an HTTP GET of
``<mirror>/<pool filename>``, the mirror taken from the machine's apt sources when not given. Either way the file's
SHA-256 must equal the pinned one: a package whose pinned version is gone, or whose bytes differ, is refused with a
message that says so, never silently replaced. An HTTP download is hashed as it streams to disk, cut off once it
passes the pinned size by :data:`SIZE_MARGIN`, refused when its size differs from the pin, and tried again after
2 s and 8 s when the failure may pass (connection, timeout, HTTP 5xx, a cut transfer).

The package's DEP-5 copyright file (``usr/share/doc/<name>/copyright``, :func:`copyright_text`) says which licence
covers which file: :func:`parse_copyright`, :func:`licence_stanza`.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from lassbench.audio import atomic_path, sha256_file
from lassbench.errors import LassbenchError

APT_SOURCE_FILES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
SIZE_MARGIN = 1 << 20  # bytes accepted past a pinned size before a download is cut off (then refused by its size)
UNPINNED_LIMIT = 1 << 30  # the cut-off for a pin without a size (the largest pinned package is 161 MB)
RETRY_DELAYS_S = (2.0, 8.0)  # waits before the second and third try of a transient failure
CHUNK_BYTES = 1 << 20
_AR_MAGIC = b"!<arch>\n"


@dataclass(frozen=True)
class DebPin:
    """One package at one exact version: what to fetch and what its bytes must hash to."""

    name: str
    version: str
    filename: str  # path below the mirror root (the Packages index's Filename field)
    sha256: str
    size: int = 0

    @property
    def deb_name(self) -> str:
        return Path(self.filename).name


def ar_index(path: str | Path) -> list[tuple[str, int, int]]:
    """``(name, offset, size)`` of each member of an ``ar`` archive (the common/GNU format ``dpkg`` writes)."""
    index = []
    with open(path, "rb") as fh:
        if fh.read(8) != _AR_MAGIC:
            raise LassbenchError(f"{path}: not a Debian package (no ar header)")
        total = os.fstat(fh.fileno()).st_size
        while header := fh.read(60):
            if len(header) < 60 or header[58:60] != b"`\n":
                raise LassbenchError(f"{path}: truncated or corrupt ar member header")
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip() or 0)
            if fh.tell() + size > total:
                raise LassbenchError(f"{path}: truncated ar member {name!r}")
            index.append((name, fh.tell(), size))
            fh.seek(size + size % 2, os.SEEK_CUR)  # members are 2-byte aligned
    return index


def ar_members(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """``(name, payload)`` of each member (small archives; :func:`data_tarball` streams the large one)."""
    with open(path, "rb") as fh:
        for name, offset, size in ar_index(path):
            fh.seek(offset)
            yield name, fh.read(size)


class _Slice(io.RawIOBase):
    """A read-only window ``[offset, offset + size)`` of an open file, so the data tarball streams from disk."""

    def __init__(self, fh, offset: int, size: int) -> None:
        self._fh, self._left = fh, size
        fh.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._fh.read(min(len(buffer), self._left))
        self._left -= len(data)
        buffer[:len(data)] = data
        return len(data)


@contextmanager
def data_tarball(path: str | Path) -> Iterator[tarfile.TarFile]:
    """The package's ``data.tar.*``, read as a stream (never held in memory whole)."""
    for name, offset, size in ar_index(path):
        if not name.startswith("data.tar"):
            continue
        with open(path, "rb") as fh:
            if name.endswith(".zst"):
                stream = _unzstd(path, _Slice(fh, offset, size))
            else:
                stream = io.BufferedReader(_Slice(fh, offset, size), 1 << 20)
            try:
                with tarfile.open(fileobj=stream, mode="r|*") as tar:
                    yield tar
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise LassbenchError(f"{path}: cannot read {name} ({exc})") from exc
        return
    raise LassbenchError(f"{path}: no data.tar member")


def _unzstd(path: str | Path, payload: io.RawIOBase):
    """A decompressing reader over the ``.zst`` member (streamed: a package's payload can be hundreds of MB)."""
    try:
        import zstandard
    except ImportError as exc:
        raise LassbenchError(f"{path}: data.tar.zst needs the 'zstandard' module (pip install zstandard)") from exc
    return zstandard.ZstdDecompressor().stream_reader(payload)


def iter_deb_files(path: str | Path, keep: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """``(member path without ./, bytes)`` for each regular file of the data tarball that ``keep`` accepts."""
    with data_tarball(path) as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if member.isfile() and keep(name):
                yield name, tar.extractfile(member).read()


def apt_mirrors(source_files: tuple[Path, ...] = APT_SOURCE_FILES) -> list[str]:
    """Base URLs of the ``deb`` lines/stanzas of the machine's apt sources (one-line and deb822 formats)."""
    files: list[Path] = []
    for entry in source_files:
        if entry.is_dir():
            files += sorted(p for p in entry.iterdir() if p.suffix in {".list", ".sources"})
        elif entry.is_file():
            files.append(entry)
    urls: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.search(r"^URIs:\s*(.+)$", stanza, re.M)
                if uris and re.search(r"^Types:(.*\s)?deb(\s|$)", stanza, re.M):
                    urls += uris.group(1).split()
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^\]]*\]", "", line).split()
                if len(parts) >= 2 and parts[0] == "deb":
                    urls.append(parts[1])
    return [u.rstrip("/") for u in urls if u.startswith(("http://", "https://"))]


def fetch_deb(pin: DebPin, dest: Path, *, mirror: str | None = None, use_apt: bool = True,
              timeout: float = 60.0) -> Path:
    """``dest/<pool file name>``, verified against the pin; reused when already there and intact."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / pin.deb_name
    if target.is_file() and sha256_file(target) == pin.sha256:
        return target
    errors = []
    if use_apt and mirror is None and shutil.which("apt-get"):
        try:
            return _verified(_apt_download(pin, dest, target), pin)
        except LassbenchError as exc:
            errors.append(str(exc))
            if "SHA-256" in str(exc):
                raise
    mirrors = [mirror] if mirror else apt_mirrors(APT_SOURCE_FILES)  # read at call time: tests point it elsewhere
    if not mirrors:
        errors.append("no --mirror given and no http(s) mirror in the apt sources")
    for base in mirrors:
        try:
            return _http_download(f"{base.rstrip('/')}/{pin.filename}", target, pin, timeout)
        except LassbenchError as exc:
            errors.append(str(exc))
            if "SHA-256" in str(exc):
                raise
    raise LassbenchError(f"{pin.name} {pin.version}: cannot fetch ({'; '.join(errors)})")


def _verified(path: Path, pin: DebPin) -> Path:
    _check_digest(sha256_file(path), pin, path)
    return path


def _check_digest(digest: str, pin: DebPin, path: Path) -> None:
    if digest != pin.sha256:
        path.unlink(missing_ok=True)
        raise LassbenchError(
            f"{pin.name} {pin.version}: SHA-256 {digest} differs from the pinned {pin.sha256}: the archive's file "
            "changed; refusing it (update the pin only after checking the new package)")


def _apt_download(pin: DebPin, dest: Path, target: Path) -> Path:
    done = subprocess.run(["apt-get", "download", f"{pin.name}={pin.version}"], cwd=dest, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise LassbenchError(f"apt-get download {pin.name}={pin.version} failed: {_last_line(done.stderr)}"
                             f"{_available_note(pin)}")
    # apt names the file with the epoch's ':' escaped as %3a; give it the pool's name
    for path in sorted(dest.glob(f"{pin.name}_*.deb")):
        if path != target and sha256_file(path) == pin.sha256:
            path.replace(target)
    if not target.is_file():
        raise LassbenchError(f"apt-get download {pin.name}={pin.version}: no file with the pinned SHA-256 appeared")
    return target


def _available_note(pin: DebPin) -> str:
    """Which version the archive offers now, so a changed version is reported rather than guessed."""
    if not shutil.which("apt-cache"):
        return ""
    shown = subprocess.run(["apt-cache", "show", "--no-all-versions", pin.name], capture_output=True, text=True)
    found = re.search(r"^Version:\s*(\S+)", shown.stdout, re.M)
    return f" (the archive now has version {found.group(1)}; the pin is {pin.version})" if found else ""


def _http_download(url: str, target: Path, pin: DebPin, timeout: float) -> Path:
    """GET ``url`` into ``target``, retried with backoff on transient failures (connection, timeout, HTTP 5xx,
    a cut transfer); a file that is too large, of another size or another hash is refused at once."""
    for delay in (*RETRY_DELAYS_S, None):
        try:
            return _stream(url, target, pin, timeout)
        except _Transient as exc:
            if delay is None:
                raise LassbenchError(f"GET {url}: {exc} ({len(RETRY_DELAYS_S) + 1} tries)") from exc
            time.sleep(delay)
    raise AssertionError("unreachable")


class _Transient(Exception):
    """A failure worth another try."""


def _stream(url: str, target: Path, pin: DebPin, timeout: float) -> Path:
    """One GET, hashed as it is written, cut off past the pinned size (+ a margin): a mirror answering with far
    more than the pin never fills the disk."""
    limit = pin.size + SIZE_MARGIN if pin.size else UNPINNED_LIMIT
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(target) as tmp:
            announced = int(response.headers.get("Content-Length") or 0)
            if announced > limit:
                raise LassbenchError(f"GET {url}: {announced:,} bytes announced, the pin is {pin.size:,}; refusing it")
            digest, written = hashlib.sha256(), 0
            with open(tmp, "wb") as out, tqdm(total=pin.size or announced or None, unit="B", unit_scale=True,
                                              desc=pin.deb_name, leave=False, disable=None) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    written += len(chunk)
                    if written > limit:
                        raise LassbenchError(f"GET {url}: more than {limit:,} bytes for a pin of {pin.size:,}; "
                                             "stopped and refused")
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if announced and written < announced:  # urllib returns what came before the connection closed
                raise _Transient(f"transfer cut at {written:,} of {announced:,} bytes")
            if pin.size and written != pin.size:
                raise LassbenchError(f"GET {url}: {written:,} bytes, the pin is {pin.size:,}; refusing it")
            _check_digest(digest.hexdigest(), pin, tmp)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise _Transient(f"HTTP {exc.code}") from exc
        raise LassbenchError(f"GET {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Transient(str(exc)) from exc
    return target


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


# -- copyright (DEP-5) ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stanza:
    files: tuple[str, ...]
    copyright: str
    licence: str


def copyright_text(deb: Path, package: str) -> str:
    """The package's copyright file (``usr/share/doc/*/copyright``), decoded."""
    for _, payload in iter_deb_files(deb, lambda n: n.startswith("usr/share/doc/") and n.endswith("/copyright")):
        return payload.decode("utf-8", "replace")
    raise LassbenchError(f"{deb}: no usr/share/doc/*/copyright file; {package}'s licence cannot be verified")


def parse_copyright(text: str) -> list[Stanza]:
    """The ``Files`` stanzas of a machine-readable copyright file (continuation lines joined)."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in {" ", "\t"} and key:
                fields[key].append(line.strip())
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = [value.strip()]
        if "files" not in fields:
            continue
        files = tuple(" ".join(fields["files"]).split())
        copyright_ = "; ".join(v for v in fields.get("copyright", []) if v and v != ".")
        if copyright_.lower() in {"", "not-applicable", "none"}:  # public-domain stanzas credit in their Comment
            copyright_ = " ".join(v for v in fields.get("comment", []) if v and v != ".")
        licence_lines = [v for v in fields.get("license", []) if v and v != "."]
        stanzas.append(Stanza(files, copyright_, licence_lines[0] if licence_lines else ""))
    return stanzas


def stanza_for(stanzas: list[Stanza], source_path: str) -> Stanza | None:
    """The last stanza whose ``Files`` pattern matches ``source_path`` (DEP-5: later stanzas override earlier)."""
    found = None
    for stanza in stanzas:
        if any(dep5_match(pattern, source_path) for pattern in stanza.files):
            found = stanza
    return found


def licence_stanza(stanzas: list[Stanza], source_path: str) -> Stanza:
    """The stanza that covers ``source_path`` (the file's path in the upstream source, as the ``Files`` patterns
    name it); with no path, or none matching, the stanza of every file (``Files: *``); an empty stanza (no
    copyright, no licence) when the file has none."""
    stanza = stanza_for(stanzas, source_path) if source_path else None
    return stanza or stanza_for(stanzas, "*") or Stanza(("*",), "", "")


def dep5_match(pattern: str, path: str) -> bool:
    """Whether a DEP-5 ``Files`` pattern matches ``path``: ``*`` is any run of characters and ``?`` one character
    (both match ``/`` and a leading dot); ``\\*``, ``\\?`` and ``\\\\`` are the literal characters. Nothing else is
    special: ``[ab]`` is those four characters, as in a file's name (shell globs and :mod:`fnmatch` read a
    character class there)."""
    return _dep5_regex(pattern).fullmatch(path) is not None


@functools.lru_cache(maxsize=1024)
def _dep5_regex(pattern: str) -> re.Pattern:
    parts, escaped = [], False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char) if char in "*?\\" else re.escape("\\" + char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            parts.append({"*": ".*", "?": "."}.get(char) or re.escape(char))
    if escaped:  # a trailing backslash stands for itself
        parts.append(re.escape("\\"))
    return re.compile("".join(parts), re.DOTALL)
