"""How long `lassbench download audiocaps` takes per 1000 clips at N workers — against a LOOPBACK server.

The server (tests/support/media_server.py) serves one 30 s source under every id, so this measures lassbench's own cost
per clip (yt-dlp extraction, ffmpeg range read + decode + resample, validation, atomic write, manifest) with a network
that costs nothing. Real YouTube adds latency and bandwidth per clip and rate limits; treat these numbers as a floor.

    python perf/download_speed.py --clips 120 --workers 1,2,4,8 --format mp4
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # reuse the tests' loopback server

from lassbench.corpora.audiocaps import AudiocapsDownloadConfig, download_audiocaps  # noqa: E402

from support.media_server import MediaServer, encode_media, synth_signal  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--workers", default="1,2,4,8", help="comma-separated worker counts")
    parser.add_argument("--format", default="mp4", choices=["wav", "mp3", "mp4"],
                        help="served container (YouTube serves m4a/webm; mp4 with AAC is the closest here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MediaServer() as server:
        root = Path(tmp)
        payload = encode_media(synth_signal(30, 44100, 0), 44100, args.format, root / "media")
        ids = [f"bench{i:06d}" for i in range(args.clips)]
        for youtube_id in ids:
            server.add(youtube_id, payload, args.format)
        metadata = root / "meta.csv"
        with open(metadata, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
            writer.writerows([i, youtube_id, i % 20, "a benchmark clip"] for i, youtube_id in enumerate(ids))
        print(f"# {args.clips} clips of 10 s ({args.format}, 44.1 kHz stereo served -> 32 kHz mono WAV), loopback "
              f"HTTP server, {platform.processor() or platform.machine()}")
        print("| workers | clips | wall s | s per 1000 clips (extrapolated) | clips/s | speed-up vs first row |")
        print("|---|---|---|---|---|---|")
        first = None
        for workers in (int(w) for w in args.workers.split(",")):
            config = AudiocapsDownloadConfig(split="test", out_dir=root / f"out{workers}", metadata=metadata,
                                             url_template=server.url_template, workers=workers, progress=False)
            start = time.perf_counter()
            report = download_audiocaps(config)
            seconds = time.perf_counter() - start
            assert report.downloaded == args.clips, report.summary_line()
            first = first or seconds
            print(f"| {workers} | {args.clips} | {seconds:.1f} | {seconds / args.clips * 1000:.0f} | "
                  f"{args.clips / seconds:.2f} | {first / seconds:.2f}x |")


if __name__ == "__main__":
    main()
