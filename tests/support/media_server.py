"""A loopback HTTP media server for download tests: real HTTP on 127.0.0.1, with the failure modes of the wild.

``/media/<name>`` serves a registered file with its content type and HTTP range support (ffmpeg seeks with range
requests, as it does on YouTube). Per-name behaviour: ``missing`` (404), ``truncate`` (the body stops part-way
under a full Content-Length), ``fail_first`` (503 for the first N requests), ``unannounced`` (no Content-Length: the
body, sent in 64 KiB writes, ends when the connection closes), and a global ``delay`` per request. Request counts
per name are kept so tests can prove a clip was not fetched twice, and bytes sent so they can prove a client stopped.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "mp4": "video/mp4", "csv": "text/csv"}


@dataclass
class MediaServer:
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (payload, content type)
    missing: set[str] = field(default_factory=set)
    truncate: dict[str, float] = field(default_factory=dict)  # name -> fraction of the body actually sent
    fail_first: dict[str, int] = field(default_factory=dict)  # name -> number of 503 answers before serving
    unannounced: set[str] = field(default_factory=set)
    sent: Counter = field(default_factory=Counter)  # name -> body bytes the client accepted
    delay: float = 0.0
    requests: Counter = field(default_factory=Counter)

    def add(self, name: str, payload: bytes, kind: str) -> None:
        self.files[name] = (payload, CONTENT_TYPES[kind])

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/media/{{youtube_id}}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/media/{name}"

    def __enter__(self) -> MediaServer:
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def count(self, name: str) -> int:
        with self._lock:
            self.requests[name] += 1
            return self.requests[name]


def _handler_for(server: MediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, send_body: bool) -> None:
            name = self.path.split("?")[0].removeprefix("/media/")
            seen = server.count(name)
            if server.delay:
                time.sleep(server.delay)
            if name in server.missing or name not in server.files:
                return self._empty(404)
            if seen <= server.fail_first.get(name, 0):
                return self._empty(503)
            payload, content_type = server.files[name]
            start, end, status = _byte_range(self.headers.get("Range", ""), len(payload))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Accept-Ranges", "bytes")
            if name in server.unannounced:
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(end - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(payload)}")
            self.end_headers()
            if send_body and name in server.unannounced:
                self._stream(name, payload[start:end])
            elif send_body:
                self._body(payload[start:end], server.truncate.get(name))

        def _stream(self, name: str, body: bytes) -> None:
            try:
                for at in range(0, len(body), 1 << 16):
                    self.wfile.write(body[at:at + (1 << 16)])
                    server.sent[name] += len(body[at:at + (1 << 16)])
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _body(self, chunk: bytes, fraction: float | None) -> None:
            try:
                if fraction is None:
                    self.wfile.write(chunk)
                    return
                self.wfile.write(chunk[: int(len(chunk) * fraction)])
                self.wfile.flush()
                self.close_connection = True  # the promised bytes never come: a cut transfer
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _empty(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def _byte_range(header: str, size: int) -> tuple[int, int, int]:
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or not (match.group(1) or match.group(2)):
        return 0, size, 200
    if not match.group(1):  # suffix range: the last N bytes
        return max(0, size - int(match.group(2))), size, 206
    start = min(int(match.group(1)), size)
    end = min(int(match.group(2)) + 1, size) if match.group(2) else size
    return start, end, 206


def synth_signal(seconds: float, sample_rate: int, seed: int):
    """A clip that no shifted copy of itself resembles: a chirp plus smoothed noise, float32 in [-0.6, 0.6]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    chirp = 0.3 * np.sin(2 * np.pi * (150 + 25 * seed + 30 * t) * t)
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(8) / 8, mode="same")
    return (chirp + 0.25 * noise).astype(np.float32)


def encode_media(signal, sample_rate: int, kind: str, folder) -> bytes:
    """``signal`` as WAV, or as MP3/MP4 (AAC) encoded by the system ffmpeg."""
    import subprocess
    from pathlib import Path

    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / f"src{abs(hash(signal.tobytes()))}.wav"
    sf.write(wav, signal, sample_rate, subtype="PCM_16")
    if kind == "wav":
        return wav.read_bytes()
    out = wav.with_suffix(f".{kind}")
    codec = ["-c:a", "libmp3lame", "-b:a", "192k"] if kind == "mp3" else ["-c:a", "aac", "-b:a", "192k"]
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), *codec, str(out)], check=True)
    return out.read_bytes()
