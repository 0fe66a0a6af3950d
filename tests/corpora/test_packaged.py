"""The packaged real-recordings corpus: a tiny .deb made here, served on loopback, unpacked in pure Python."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lassbench.cli import main as cli_main
from lassbench.corpora import deb as deb_module
from lassbench.corpora.deb import (
    DebPin,
    apt_mirrors,
    ar_members,
    dep5_match,
    fetch_deb,
    iter_deb_files,
    licence_stanza,
    parse_copyright,
    stanza_for,
)
from lassbench.corpora.packaged import PackagedConfig, download_packaged, load_table
from lassbench.corpora.packaged_clips import arrange
from lassbench.errors import LassbenchError
from lassbench.manifests import read_source_manifest

from support.media_server import MediaServer
from support.paths import REPO

POOL = "pool/main/t/testsounds/testsounds-data_1.0-1_all.deb"
COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2020 Jane Recorder <jane@example.org>
License: GPL-2+

Files: kits/Pearl?Kit.h2drumkit
Copyright: 2019 Kit Maker
License: CC-BY-SA-3.0

License: GPL-2+
 This is free software.
"""


def _tone(freq: float, seconds: float, rate: int = 16000, seed: int = 0, fmt: str = "WAV") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.02, t.shape)
    audio = (0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-t * 2) + noise).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt, subtype="VORBIS" if fmt == "OGG" else "PCM_16")
    return buf.getvalue()


def _tar(files: dict[str, bytes], compression: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tar:
        for name, payload in sorted(files.items()):
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def make_deb(files: dict[str, bytes], compression: str = "xz") -> bytes:
    """A real .deb: ar archive of debian-binary, control.tar.xz and data.tar.<compression>."""
    members = [("debian-binary", b"2.0\n"),
               ("control.tar.xz", _tar({"control": b"Package: testsounds-data\nVersion: 1.0-1\n"}, "xz")),
               (f"data.tar.{compression}", _tar(files, compression))]
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, payload in members:
        out.write(f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(payload):<10}".encode() + b"`\n")
        out.write(payload + (b"\n" if len(payload) % 2 else b""))
    return out.getvalue()


def _package_files(copyright_text: str = COPYRIGHT) -> dict[str, bytes]:
    files = {"usr/share/doc/testsounds-data/copyright": copyright_text.encode()}
    for i in range(4):  # four distinct bird recordings, one an Ogg Vorbis file, one longer than a clip
        fmt = "OGG" if i == 0 else "WAV"
        files[f"usr/share/testsounds/birds/bird{i}.{fmt.lower()}"] = _tone(2500 + 300 * i, 12.0 if i == 3 else 1.2,
                                                                           seed=i, fmt=fmt)
    for kit in ("Pearl Kit", "Other"):
        for take in ("Hard", "Soft"):  # two velocity layers of one drum: one recording group
            for drum in ("Kick1", "Kick2"):
                name = f"usr/share/testsounds/kits/{kit}/{drum}-{take}.wav"  # layers differ: distinct bytes
                files[name] = _tone(60, 0.8, seed=zlib.crc32(name.encode()) % 99)
    for i in range(4):
        files[f"usr/share/testsounds/ambience/rain{i}.wav"] = _tone(9000, 3.0 + i, seed=10 + i)
    for i in range(4):
        files[f"usr/share/testsounds/bells/bell{i}.wav"] = _tone(1200 + 100 * i, 1.5, seed=20 + i)
        files[f"usr/share/testsounds/dogs/dog{i}.wav"] = _tone(500 + 50 * i, 2.0, seed=30 + i)
    files["usr/share/testsounds/readme.txt"] = b"not audio"
    return files


def _table(tmp_path: Path, deb: bytes, *, name: str = "testsounds-data", sha256: str | None = None) -> Path:
    table = {
        "packages": [{"name": name, "version": "1.0-1", "filename": POOL, "size": len(deb),
                      "sha256": sha256 or hashlib.sha256(deb).hexdigest(), "licence": "GPL-2+"}],
        "classes": {
            "bird": {"labels": ["Bird"], "captions": ["a bird calls", "a bird sings", "birdsong"]},
            "bass_drum": {"labels": ["Drum", "Bass drum"], "captions": ["a kick drum thumps", "a bass drum is struck",
                                                                         "a deep drum beat"]},
            "rain": {"labels": ["Rain"], "captions": ["rain falls", "rain patters"]},
            "bell": {"labels": ["Bell"], "captions": ["a bell rings", "a small bell chimes"]},
            "dog": {"labels": ["Dog"], "captions": ["a dog barks", "a dog growls"]},
        },
        "rules": [
            {"package": name, "match": r"^usr/share/testsounds/birds/bird\d\.(wav|ogg)$", "class": "bird"},
            {"package": name, "match": r"^usr/share/testsounds/kits/(?P<kit>[^/]+)/Kick\d-\w+\.wav$",
             "class": "bass_drum", "group_strip": "-(Hard|Soft)$", "copyright_path": "kits/{kit}.h2drumkit"},
            {"package": name, "match": r"^usr/share/testsounds/ambience/rain\d\.wav$", "class": "rain"},
            {"package": name, "match": r"^usr/share/testsounds/bells/bell\d\.wav$", "class": "bell"},
            {"package": name, "match": r"^usr/share/testsounds/dogs/dog\d\.wav$", "class": "dog"},
        ],
    }
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    return path


@pytest.fixture()
def served(tmp_path):
    deb = make_deb(_package_files())
    with MediaServer() as server:
        server.files[POOL] = (deb, "application/vnd.debian.binary-package")
        yield server, deb, _table(tmp_path, deb)


def _build(server, table: Path, out: Path):
    config = PackagedConfig(out_dir=out, table=table, mirror=f"http://127.0.0.1:{server.port}/media", use_apt=False,
                            sample_rate=16000)
    return download_packaged(config)


def test_http_fetch_cuts_clips_with_captions_labels_and_provenance(served, tmp_path):
    server, _, table = served
    result = _build(server, table, tmp_path / "corpus")
    frame = read_source_manifest(tmp_path / "corpus" / "manifest.csv")
    assert result.clips == len(frame) == 24 and server.requests[POOL] == 1
    for row in frame.itertuples():
        audio, rate = sf.read(row.path)
        assert rate == 16000 and audio.ndim == 1 and len(audio) == 160000
        assert len(row.captions) >= 2 and not any(re.search(r"bird\d|rain\d|Kick|\.wav", c) for c in row.captions)
        assert row.package == "testsounds-data" and row.version == "1.0-1" and row.file.startswith("usr/share/")
    drums = frame[frame["class"] == "bass_drum"]
    assert set(drums["licence"]) == {"GPL-2+", "CC-BY-SA-3.0"}  # the kit's own DEP-5 stanza wins for its files
    assert set(frame.loc[frame["class"] == "bird", "credit"]) == {"2020 Jane Recorder <jane@example.org>"}
    assert all(labels == ["Bird"] for labels in frame.loc[frame["class"] == "bird", "labels"])
    assert (tmp_path / "corpus" / "licences" / "testsounds-data.copyright").read_text() == COPYRIGHT
    provenance = pd.read_csv(tmp_path / "corpus" / "provenance.csv")
    assert set(provenance["source_id"]) == set(frame["source_id"]) and provenance["licence"].notna().all()


def test_download_shows_progress_while_fetching_and_cutting(served, tmp_path, capsys):
    server, _, table = served
    download_packaged(PackagedConfig(out_dir=tmp_path / "corpus", table=table, use_apt=False, sample_rate=16000,
                                     mirror=f"http://127.0.0.1:{server.port}/media", progress=True))
    err = capsys.readouterr().err
    assert "fetching packages" in err and "0/1 " in err  # counted in packages
    assert "cutting clips" in err and "0/24 " in err  # counted in clips (the fixture has 24)


def test_splits_are_disjoint_by_recording_group(served, tmp_path):
    server, _, table = served
    _build(server, table, tmp_path / "corpus")
    frame = read_source_manifest(tmp_path / "corpus" / "manifest.csv")
    assert frame.groupby("group")["split"].nunique().max() == 1  # velocity layers of one drum share a split
    assert frame.groupby("file")["split"].nunique().max() == 1
    for _, part in frame.groupby("class"):  # every class is seen (in train, val and test) or unseen (only there)
        assert set(part["split"]) in ({"train", "val", "test"}, {"test-unseen"})


def test_rebuild_is_bit_identical(served, tmp_path):
    server, _, table = served
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        _build(server, table, out)
        digests.append({str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(out.rglob("*")) if p.is_file()})
    assert digests[0] == digests[1] and len(digests[0]) > 12


def test_rerun_reuses_the_verified_deb(served, tmp_path):
    server, _, table = served
    _build(server, table, tmp_path / "corpus")
    _build(server, table, tmp_path / "corpus")
    assert server.requests[POOL] == 1


def test_pinned_hash_mismatch_is_refused_and_not_kept(served, tmp_path):
    server, _, _ = served
    table = _table(tmp_path, b"", sha256="0" * 64)
    with pytest.raises(LassbenchError, match="SHA-256 .* differs from the pinned"):
        _build(server, table, tmp_path / "corpus")
    assert not list((tmp_path / "corpus" / "debs").glob("*.deb"))


@pytest.mark.parametrize("name", ["ktuberling-data", "wesnoth-1.16-data", "asterisk-core-sounds-en-wav",
                                  "espeak-ng-data"])
def test_reserved_package_is_refused_before_any_download(served, tmp_path, capsys, name):
    server, deb, _ = served
    table = _table(tmp_path, deb, name=name)
    with pytest.raises(SystemExit) as exited:
        cli_main(["download", "packaged", "--out", str(tmp_path / "c"), "--table", str(table), "--mirror",
                  f"http://127.0.0.1:{server.port}/media"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith("error: ") and "reserved for evaluation" in err
    assert err.count("\n") == 1 and server.requests[POOL] == 0


def test_non_free_licence_is_refused(tmp_path):
    deb = make_deb(_package_files(COPYRIGHT.replace("License: GPL-2+\n\nFiles: kits", "License: CC-BY-NC-4.0\n\n"
                                                                                    "Files: kits")))
    with MediaServer() as server:
        server.files[POOL] = (deb, "application/octet-stream")
        with pytest.raises(LassbenchError, match="CC-BY-NC-4.0"):
            _build(server, _table(tmp_path, deb), tmp_path / "corpus")


def test_missing_package_on_the_mirror_is_one_clear_error(tmp_path):
    deb = make_deb(_package_files())
    with MediaServer() as server:
        with pytest.raises(LassbenchError, match="cannot fetch .*HTTP 404"):
            _build(server, _table(tmp_path, deb), tmp_path / "corpus")


@pytest.mark.parametrize("compression", ["gz", "xz", "bz2"])
def test_data_tarball_is_read_whatever_its_compression(tmp_path, compression):
    path = tmp_path / "x.deb"
    path.write_bytes(make_deb({"usr/share/a.wav": b"RIFF", "usr/share/b.txt": b"x"}, compression))
    assert [name for name, _ in ar_members(path)][0] == "debian-binary"
    assert dict(iter_deb_files(path, lambda n: n.endswith(".wav"))) == {"usr/share/a.wav": b"RIFF"}


def test_a_zstd_data_tarball_is_streamed_not_read_whole(tmp_path, monkeypatch):
    zstandard = pytest.importorskip("zstandard")
    import lassbench.corpora.deb as deb

    files = {"usr/share/a.wav": b"RIFF" * 1000, "usr/share/b.txt": b"x"}
    path = tmp_path / "x.deb"
    compressed = zstandard.ZstdCompressor().compress(_tar(files, ""))
    with open(path, "wb") as fh:  # make_deb's members, the payload as data.tar.zst
        fh.write(b"!<arch>\n")
        for name, payload in [("debian-binary", b"2.0\n"), ("control.tar.xz", _tar({"control": b"x"}, "xz")),
                              ("data.tar.zst", compressed)]:
            fh.write(f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(payload):<10}".encode() + b"`\n")
            fh.write(payload + (b"\n" if len(payload) % 2 else b""))
    reads = []
    real_read = deb._Slice.readinto
    monkeypatch.setattr(deb._Slice, "readinto",
                        lambda self, buffer: reads.append(len(buffer)) or real_read(self, buffer))
    assert dict(iter_deb_files(path, lambda n: n.endswith(".wav"))) == {"usr/share/a.wav": b"RIFF" * 1000}
    assert reads  # read through the member's slice, not one bytes object of the whole payload


def test_a_file_that_is_not_a_deb_is_refused(tmp_path):
    path = tmp_path / "x.deb"
    path.write_bytes(b"PK\x03\x04 not an ar archive")
    pin = DebPin("x", "1", "pool/x.deb", hashlib.sha256(path.read_bytes()).hexdigest())
    assert fetch_deb(pin, tmp_path, use_apt=False) == path  # intact by its hash: reused without fetching
    with pytest.raises(LassbenchError, match="not a Debian package"):
        list(iter_deb_files(path, lambda n: True))


def test_apt_mirrors_reads_one_line_and_deb822_sources(tmp_path):
    (tmp_path / "sources.list").write_text("# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n"
                                           "deb-src http://src.example/debian bookworm main\n")
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    (folder / "x.sources").write_text("Types: deb\nURIs: http://other.example/debian/\nSuites: bookworm\n")
    (folder / "y.sources").write_text("Types: deb-src\nURIs: http://nope.example/debian\n")
    assert apt_mirrors((tmp_path / "sources.list", folder)) == ["http://mirror.example/debian",
                                                                "http://other.example/debian"]


def test_dep5_stanzas_join_continuation_lines_and_the_last_match_wins():
    stanzas = parse_copyright("Files: *\nCopyright: A\nLicense: GPL-2\n\nFiles:\n kits/One.h2\n kits/Two?Kit.h2\n"
                              "Copyright: B\nLicense:\n Public Domain\n")
    assert stanza_for(stanzas, "kits/Two Kit.h2").licence == "Public Domain"
    assert stanza_for(stanzas, "other").copyright == "A"
    public = parse_copyright("Files: sounds/*\nCopyright: not-applicable\nLicense:\n Public Domain\nComment:\n Made by"
                             " Sam.\n")
    assert stanza_for(public, "sounds/a.wav").copyright == "Made by Sam."


def test_a_file_named_by_no_stanza_takes_the_catch_all_stanza_and_else_no_licence():
    stanzas = parse_copyright("Files: *\nCopyright: A\nLicense: GPL-2\n\nFiles: sounds/*\nCopyright: B\n"
                              "License: CC0-1.0\n")
    assert licence_stanza(stanzas, "sounds/a.wav").copyright == "B"
    assert licence_stanza(stanzas, "").copyright == "A"  # a rule with no copyright_path: the package's stanza
    only_sounds = parse_copyright("Files: sounds/*\nCopyright: B\nLicense: CC0-1.0\n")
    assert licence_stanza(only_sounds, "docs/readme").licence == ""  # then refused as not a free licence


def test_dep5_patterns_know_only_star_and_question_mark_and_their_escapes():
    stanzas = parse_copyright("Files: *\nCopyright: A\nLicense: GPL-2+\n\n"
                              "Files: sounds/[ab].wav\nCopyright: B\nLicense: CC0-1.0\n\n"
                              "Files: sounds/star\\*.wav sounds/what\\?.wav sounds/back\\\\slash.wav\n"
                              "Copyright: C\nLicense: CC-BY-4.0\n")
    assert stanza_for(stanzas, "sounds/[ab].wav").copyright == "B"  # the brackets are in the file's name
    assert stanza_for(stanzas, "sounds/a.wav").copyright == "A"  # not a character class
    for name in ("sounds/star*.wav", "sounds/what?.wav", "sounds/back\\slash.wav"):
        assert stanza_for(stanzas, name).copyright == "C", name
    for name in ("sounds/starry.wav", "sounds/whatX.wav", "sounds/star\\X.wav"):
        assert stanza_for(stanzas, name).copyright == "A", name  # \* and \? are literal, not wildcards
    assert dep5_match("kits/*", "kits/a/b/.hidden.h2") and dep5_match("a?c", "a/c") and not dep5_match("a?c", "ac")


def _pin(payload: bytes, size: int | None = None) -> DebPin:
    return DebPin("testsounds-data", "1.0-1", POOL, hashlib.sha256(payload).hexdigest(),
                  len(payload) if size is None else size)


def test_a_mirror_streaming_far_more_than_the_pin_is_cut_off_and_nothing_is_kept(tmp_path):
    with MediaServer() as server:
        server.files[POOL] = (bytes(64 << 20), "application/octet-stream")  # 64 MiB, no Content-Length
        server.unannounced.add(POOL)
        with pytest.raises(LassbenchError, match="more than .* bytes for a pin of 17,000; stopped and refused"):
            fetch_deb(_pin(b"x", size=17_000), tmp_path / "debs", mirror=server.url("").rstrip("/"), use_apt=False)
    assert server.sent[POOL] < 16 << 20 and server.requests[POOL] == 1  # stopped, and not retried
    assert not list((tmp_path / "debs").iterdir())


def test_an_announced_size_or_a_received_size_other_than_the_pin_is_refused(tmp_path):
    large, small = b"!<arch>\n" + bytes(2 << 20), b"!<arch>\n" + bytes(4000)
    with MediaServer() as server:
        server.files[POOL] = (large, "application/octet-stream")
        server.files["pool/small.deb"] = (small, "application/octet-stream")
        mirror = server.url("").rstrip("/")
        with pytest.raises(LassbenchError, match="2,097,160 bytes announced, the pin is 10; refusing it"):
            fetch_deb(_pin(large, size=10), tmp_path / "debs", mirror=mirror, use_apt=False)
        pin = DebPin("small", "1", "pool/small.deb", hashlib.sha256(small).hexdigest(), 5000)
        with pytest.raises(LassbenchError, match="4,008 bytes, the pin is 5,000; refusing it"):
            fetch_deb(pin, tmp_path / "debs", mirror=mirror, use_apt=False)
    assert not list((tmp_path / "debs").iterdir())


def test_transient_failures_are_retried_with_backoff_and_a_404_is_not(tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(deb_module.time, "sleep", waits.append)
    payload = make_deb(_package_files())
    with MediaServer() as server:
        server.files[POOL] = (payload, "application/octet-stream")
        server.fail_first[POOL] = 2
        mirror = server.url("").rstrip("/")
        assert fetch_deb(_pin(payload), tmp_path / "debs", mirror=mirror, use_apt=False).read_bytes() == payload
        assert server.requests[POOL] == 3 and waits == list(deb_module.RETRY_DELAYS_S)
        gone = DebPin("gone", "1", "pool/gone.deb", "0" * 64, 10)
        with pytest.raises(LassbenchError, match="HTTP 404"):
            fetch_deb(gone, tmp_path / "other", mirror=mirror, use_apt=False)
        assert server.requests["pool/gone.deb"] == 1


def test_a_transfer_cut_every_time_fails_after_three_tries(tmp_path, monkeypatch):
    monkeypatch.setattr(deb_module.time, "sleep", lambda s: None)
    payload = make_deb(_package_files())
    with MediaServer() as server:
        server.files[POOL] = (payload, "application/octet-stream")
        server.truncate[POOL] = 0.5
        with pytest.raises(LassbenchError, match=r"\(3 tries\)"):
            fetch_deb(_pin(payload), tmp_path / "debs", mirror=server.url("").rstrip("/"), use_apt=False)
        assert server.requests[POOL] == 3


def test_an_apt_download_is_hashed_as_a_stream_never_read_whole(tmp_path, monkeypatch):
    payload = make_deb(_package_files())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "payload.deb").write_bytes(payload)
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\ncp {tmp_path / 'payload.deb'} testsounds-data_1.0-1_all.deb\n")
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read whole: {self}") if self.suffix == ".deb"
                        else real_read_bytes(self))
    target = fetch_deb(_pin(payload), tmp_path / "debs")
    assert target.name == Path(POOL).name and deb_module.sha256_file(target) == _pin(payload).sha256


def test_short_events_are_repeated_within_the_clip_and_long_ones_cut():
    short = arrange(0.5, "pkg/a.wav")
    assert 1 <= short.repetitions <= 3
    assert short.offset_s + short.repetitions * 0.5 + (short.repetitions - 1) * short.gap_s <= 10.0
    assert arrange(25.0, "pkg/b.wav").offset_s == 0.0 and arrange(6.0, "pkg/c.wav").repetitions == 1


def test_shipped_table_pins_real_packages_and_no_reserved_one():
    table = load_table()
    assert len(table.classes) >= 100
    assert all(len(pin.sha256) == 64 and pin.filename.startswith("pool/main/") for pin in table.pins.values())
    assert {rule.label for rule in table.rules} == set(table.classes)


def test_run_data_real_builds_the_benchmark_from_the_cached_corpus_once(served, tmp_path, monkeypatch):
    from lassbench.ready import real_benchmark, resolve_benchmark

    server, _, table = served
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # --data real looks in ./data/real first: not the developer's own corpus
    _build(server, table, tmp_path / "cache" / "corpora" / "packaged")  # stands in for the shipped table's corpus
    notes = []
    built = resolve_benchmark("real", notes.append)
    assert built == tmp_path / "cache" / "benchmarks" / "real" and (built / "manifest.csv").is_file()
    assert json.loads((built / "dataset.json").read_text())["counts"]["test"] >= 1 and len(notes) == 1
    assert real_benchmark(notes.append) == built and len(notes) == 1  # reused, not rebuilt


def test_the_first_real_benchmark_build_shows_its_progress(served, tmp_path, monkeypatch, capsys):
    from lassbench.ready import real_benchmark

    server, _, table = served
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # not the developer's own ./data/real
    _build(server, table, tmp_path / "cache" / "corpora" / "packaged")
    real_benchmark(lambda line: None)
    err = capsys.readouterr().err
    assert "measuring sources" in err and "building items" in err


def test_dataset_card_class_table_matches_the_committed_build_listing():
    committed = pd.read_csv(REPO / "recipes" / "real" / "classes.csv")
    lines = (REPO / "docs" / "real-corpus.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| class | AudioSet labels"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = [int(c.strip("*")) for c in cells[2:6]]
    for row in committed.itertuples(index=False):
        assert rows[row[0]] == [row.clips, row.train, row.val, row.test]
    assert rows["**all**"] == committed[["clips", "train", "val", "test"]].sum().tolist()
    assert set(committed["class"]) == set(load_table().classes)
    listed = (REPO / "recipes" / "real" / "corpus.sha256").read_text().splitlines()
    assert sum(" audio/" in line for line in listed) == committed["clips"].sum()


@pytest.mark.parametrize("args, phrase", [(["--sample-rate", "0"], "--sample-rate must be between"),
                                          (["--sample-rate", "7"], "--sample-rate must be between"),
                                          (["--table", "missing.json"], "cannot read the package table")])
def test_bad_options_are_one_error_line_before_any_download(tmp_path, capsys, args, phrase):
    with pytest.raises(SystemExit) as exited:
        cli_main(["download", "packaged", "--out", str(tmp_path / "c"), *args])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith("error: ") and phrase in err and err.count("\n") == 1
    assert not (tmp_path / "c" / "debs").exists()


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "c").write_text("x")
    with pytest.raises(SystemExit) as exited:
        cli_main(["download", "packaged", "--out", str(tmp_path / "c")])
    assert exited.value.code == 2 and "exists and is not a folder" in capsys.readouterr().err


def test_another_corpus_folder_is_refused_and_its_clips_survive(tmp_path, capsys):
    (tmp_path / "c" / "audio").mkdir(parents=True)
    clip = tmp_path / "c" / "audio" / "abc45678901.wav"  # what `download audiocaps` writes
    clip.write_bytes(b"RIFF")
    with pytest.raises(SystemExit) as exited:
        cli_main(["download", "packaged", "--out", str(tmp_path / "c")])
    assert exited.value.code == 2 and "not a packaged corpus" in capsys.readouterr().err
    assert clip.read_bytes() == b"RIFF" and not (tmp_path / "c" / "debs").exists()


def test_apt_failure_reports_the_archive_version_then_falls_back_to_http_from_the_apt_sources(
        tmp_path, monkeypatch):
    from lassbench.corpora import deb as deb_module

    payload = make_deb(_package_files())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho \"E: Version '1.0-1' was not found\" >&2\nexit 100\n")
    (bin_dir / "apt-cache").write_text("#!/bin/sh\necho 'Package: testsounds-data'\necho 'Version: 1.0-2'\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    pin = DebPin("testsounds-data", "1.0-1", POOL, hashlib.sha256(payload).hexdigest())
    with MediaServer() as server:
        server.files[POOL] = (payload, "application/octet-stream")
        sources = tmp_path / "sources.list"
        sources.write_text(f"deb http://127.0.0.1:{server.port}/media bookworm main\n")
        monkeypatch.setattr(deb_module, "APT_SOURCE_FILES", (sources,))
        assert fetch_deb(pin, tmp_path / "debs").read_bytes() == payload  # apt-get failed; HTTP from the sources
        with pytest.raises(LassbenchError, match="archive now has version 1.0-2; the pin is 1.0-1.*HTTP 404"):
            fetch_deb(DebPin("testsounds-data", "1.0-1", "pool/gone.deb", "0" * 64), tmp_path / "other")


@pytest.mark.slow
def test_run_data_real_builds_from_the_corpus_downloaded_to_data_real_without_fetching_it_again(served, tmp_path,
                                                                                             monkeypatch):
    from lassbench.ready import resolve_benchmark

    server, _, table = served
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LASSBENCH_CACHE", str(tmp_path / "cache"))
    _build(server, table, tmp_path / "data" / "real")  # `lassbench download packaged --out data/real`
    fetched = sum(server.requests.values())
    notes = []
    built = resolve_benchmark("real", notes.append)
    assert built == Path("data") / "real" / "benchmarks" / "real" and (built / "dataset.json").is_file()
    assert sum(server.requests.values()) == fetched and not (tmp_path / "cache" / "corpora").exists()
    assert resolve_benchmark("data/real", notes.append) == built and len(notes) == 1  # built once, where it lies


def test_byte_identical_files_under_two_names_are_kept_once_so_no_recording_is_in_two_splits():
    from lassbench.corpora.packaged import Selected, drop_identical

    def chosen(member):
        return Selected("pkg", member, "speech", member.rsplit(".", 1)[0], "", "")

    selected = [chosen("b.ogg"), chosen("a.ogg"), chosen("c.ogg")]
    digests = {"pkg/a.ogg": "same", "pkg/b.ogg": "same", "pkg/c.ogg": "other"}
    kept, dropped = drop_identical(selected, digests)
    assert [s.member for s in kept] == ["a.ogg", "c.ogg"]
    assert dropped == [("pkg/b.ogg", "byte-identical to pkg/a.ogg")]
