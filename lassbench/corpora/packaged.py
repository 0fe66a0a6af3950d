"""A corpus of real recordings from pinned, freely licensed Debian packages (``lassbench download packaged``).

The package table (``lassbench/data/packaged.json``) pins each package's version and SHA-256, and maps files inside
it to classes with regular expressions. The build:

1. fetches each ``.deb`` (:mod:`lassbench.corpora.deb`), refusing a changed one, and copies its ``copyright`` file;
2. takes the files the rules select (at most ``max_clips`` per class, a fixed hash order chooses which);
3. holds a fixed fifth of the classes out whole as ``test-unseen`` (:func:`unseen_classes`), and splits the others
   train / val / test *by recording*: files that are layers of one recording (a drum hit at five
   velocities, a key's press and release) form one group, and a group never spans two splits;
4. cuts each file to a 10 s mono clip at the corpus rate: a long file gives its first 10 s; a short one is placed
   at a fixed offset and, under 3 s, repeated one to three times with pauses (the count is in the captions);
5. measures what is audible (active seconds, loudness, spectral centroid) and writes captions from the class
   phrase plus those measurements (each in one of several phrasings) and two captions people wrote for the class's
   sound (:mod:`lassbench.corpora.human_captions`, when it has some) — steps 4 and 5 are
   :mod:`lassbench.corpora.packaged_clips` — the class's AudioSet labels, and a provenance row (package, version,
   file, licence and credit from the DEP-5 stanza covering the file).

Everything is a pure function of the pinned bytes, so two builds are bit-identical.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench.audio import read_audio, sha1_file, sweep_stale_temps, write_audio, write_text_atomic
from lassbench.corpora.deb import (
    DebPin,
    Stanza,
    copyright_text,
    fetch_deb,
    iter_deb_files,
    licence_stanza,
    parse_copyright,
)
from lassbench.corpora.human_captions import human_captions_for, load_human_captions
from lassbench.corpora.packaged_clips import LANGUAGES, arrange, captions_for, fixed_hash, make_clip, measure
from lassbench.errors import LassbenchError
from lassbench.manifests import SOURCE_COLUMNS, encode_list, write_manifest_csv
from lassbench.paths import check_output_folder
from lassbench.safe_names import check_names

# Set aside for evaluating models trained on this corpus: never part of it (nor of any training data).
RESERVED_PACKAGES = (
    "asterisk-core-sounds-*", "ktuberling-data", "minetest-data", "gcompris-qt-data", "megaglest-data",
    "wesnoth-*-data", "fluid-soundfont-gm", "espeak-ng", "espeak-ng-data",
)
# DFSG-free licences that allow redistributing derived clips; anything else (NC, ND, unknown) is refused
FREE_LICENCE = re.compile(r"^(?!.*-(NC|ND)\b)(L?GPL|CC-BY|CC0|Public[ -]?Domain|Expat|MIT|BSD|Apache|Zlib|Artistic)",
                          re.I)
SPLIT_SHARES = (("test", 0.15), ("val", 0.15))  # the rest is train; every class gets at least one group of each
# Classes held out whole, for testing on sounds never heard in training (docs/real-corpus.md, "unseen classes"):
UNSEEN_SPLIT = "test-unseen"
UNSEEN_SHARE = 0.2  # of the classes
UNSEEN_MAX_CLIPS = 100  # a class this big stays seen: holding it out would take too much from training


@dataclass(frozen=True)
class Rule:
    package: str
    match: re.Pattern
    label: str  # the class
    group_strip: re.Pattern | None = None
    copyright_path: str = ""


@dataclass(frozen=True)
class PackageTable:
    pins: dict[str, DebPin]
    classes: dict[str, dict]
    rules: list[Rule]


@dataclass
class PackagedConfig:
    out_dir: Path
    table: Path | None = None  # default: the shipped table
    mirror: str | None = None
    use_apt: bool = True
    sample_rate: int = 32000
    keep_debs: bool = True
    progress: bool | None = None  # bars on stderr; None: only when it is a terminal


@dataclass
class PackagedResult:
    clips: int
    classes: int
    splits: dict[str, int]
    out_dir: Path
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary_line(self) -> str:
        splits = ", ".join(f"{k} {v}" for k, v in sorted(self.splits.items()))
        return (f"{self.clips} clips in {self.classes} classes ({splits}); {len(self.skipped)} files skipped; "
                f"manifest {self.out_dir / 'manifest.csv'}")


def is_reserved(package: str) -> bool:
    return any(fnmatch.fnmatchcase(package, pattern) for pattern in RESERVED_PACKAGES)


def load_table(path: str | Path | None = None) -> PackageTable:
    """The package table, checked: no reserved package, every rule names a pinned package and a known class."""
    if path is None:
        text = resources.files("lassbench").joinpath("data/packaged.json").read_text(encoding="utf-8")
        origin = "lassbench/data/packaged.json"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise LassbenchError(f"{path}: cannot read the package table ({exc.strerror})") from exc
        origin = str(path)
    try:
        raw = json.loads(text)
        pins = {p["name"]: DebPin(p["name"], p["version"], p["filename"], p["sha256"].lower(), int(p.get("size", 0)))
                for p in raw["packages"]}
        classes = raw["classes"]
        rules = [Rule(r["package"], re.compile(r["match"]), r["class"],
                      re.compile(r["group_strip"]) if r.get("group_strip") else None, r.get("copyright_path", ""))
                 for r in raw["rules"]]
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise LassbenchError(f"{origin}: malformed package table ({exc})") from exc
    check_names(pins, "package name", origin)  # licences/<name>.copyright, audio/<name>-<file>.wav
    check_names((pin.deb_name for pin in pins.values()), "package file name", origin)  # debs/<file name>
    reserved = sorted(name for name in pins if is_reserved(name))
    if reserved:
        raise LassbenchError(f"{origin}: {', '.join(reserved)} reserved for evaluation; never part of this corpus")
    for rule in rules:
        if rule.package not in pins:
            raise LassbenchError(f"{origin}: a rule names {rule.package!r}, which is not pinned")
        if rule.label not in classes:
            raise LassbenchError(f"{origin}: a rule names the unknown class {rule.label!r}")
    return PackageTable(pins, classes, rules)


# -- selection and splits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selected:
    package: str
    member: str
    label: str
    group: str
    lang: str
    copyright_path: str


def select_members(names: list[str], package: str, rules: list[Rule]) -> list[Selected]:
    """The members of one package the rules select (the first matching rule wins)."""
    chosen = []
    for name in sorted(names):
        for rule in rules:
            if rule.package != package or not (m := rule.match.search(name)):
                continue
            stem = Path(name).stem
            group_stem = rule.group_strip.sub("", stem) if rule.group_strip else stem
            groups = m.groupdict()
            source_path = rule.copyright_path.format(name=Path(name).name, **groups) if rule.copyright_path else ""
            chosen.append(Selected(package, name, rule.label, f"{Path(name).parent}/{group_stem or stem}",
                                   groups.get("lang") or "", source_path))
            break
    return chosen


def drop_identical(selected: list[Selected], digests: dict[str, str]) -> tuple[list[Selected], list[tuple[str, str]]]:
    """Keep one file of each set of byte-identical files (the first by package/member): one recording under two
    names would otherwise be split by name into train and test. Returns (kept, [(dropped key, reason)])."""
    first: dict[str, str] = {}
    kept, dropped = [], []
    for item in sorted(selected, key=key):
        digest = digests.get(key(item))
        if digest is not None and digest in first:
            dropped.append((key(item), f"byte-identical to {first[digest]}"))
            continue
        if digest is not None:
            first[digest] = key(item)
        kept.append(item)
    return kept, dropped


def unseen_classes(clips: dict[str, int], classes: dict[str, dict]) -> tuple[str, ...]:
    """The classes held out whole as ``test-unseen``: in SHA-256 order of the class name, the first
    ``ceil(UNSEEN_SHARE * classes)`` (at least two: an unseen target's interferers are unseen sounds too) of those
    with fewer than ``UNSEEN_MAX_CLIPS`` kept clips whose AudioSet labels no other class shares (so no label of a
    held-out class is ever heard in training, under any class name)."""
    def shares_a_label(name: str) -> bool:
        mine = set(classes[name].get("labels", ()))
        return any(mine & set(classes[other].get("labels", ())) for other in clips if other != name)

    wanted = max(2, math.ceil(UNSEEN_SHARE * len(clips)))
    eligible = [name for name in sorted(clips, key=lambda c: (fixed_hash(c), c))
                if 0 < clips[name] < UNSEEN_MAX_CLIPS and not shares_a_label(name)]
    return tuple(sorted(eligible[:wanted]))


def cap_and_split(selected: list[Selected], classes: dict[str, dict]) -> dict[str, str]:
    """``member key -> split`` for the kept files: the :func:`unseen_classes` go whole to ``test-unseen``; in every
    other class, groups in hash order fill the test and val shares first (at least one group each when the class has
    three), the rest is train; files past ``max_clips`` in the same hash order are left out."""
    by_class: dict[str, dict[str, list[Selected]]] = defaultdict(lambda: defaultdict(list))
    for item in selected:
        by_class[item.label][f"{item.package}/{item.group}"].append(item)
    kept = {label: _kept(groups, classes[label]) for label, groups in by_class.items()}
    unseen = set(unseen_classes({label: len(keep) for label, keep in kept.items()}, classes))
    splits: dict[str, str] = {}
    for label, groups in by_class.items():
        keep = kept[label]
        if label in unseen:
            splits.update(dict.fromkeys(keep, UNSEEN_SPLIT))
            continue
        order = [g for g in sorted(groups, key=lambda g: (fixed_hash(g), g)) if any(key(i) in keep for i in groups[g])]
        total = sum(sum(key(i) in keep for i in groups[g]) for g in order)
        targets = [(name, max(1, round(share * total)) if len(order) >= 3 else 0) for name, share in SPLIT_SHARES]
        size = {g: sum(key(i) in keep for i in groups[g]) for g in order}
        for name, want in targets:
            taken = []
            for group in order:  # first fit in hash order, so a split is not swamped by one many-layered group
                if len(order) - len(taken) > 1 and sum(size[g] for g in taken) + size[group] <= want:
                    taken.append(group)
            if not taken and want and len(order) > 1:
                taken = [min(order, key=lambda g: size[g])]
            for group in taken:
                order.remove(group)
                for item in groups[group]:
                    if key(item) in keep:
                        splits[key(item)] = name
        for group in order:
            for item in groups[group]:
                if key(item) in keep:
                    splits[key(item)] = "train"
    return splits


def _kept(groups: dict[str, list[Selected]], spec: dict) -> set[str]:
    """The class's files within its ``max_clips``, chosen in a fixed hash order."""
    files = [item for members in groups.values() for item in members]
    cap = int(spec.get("max_clips", len(files)))
    return {key(item) for item in sorted(files, key=lambda s: (fixed_hash(key(s)), key(s)))[:cap]}


def key(item: Selected) -> str:
    return f"{item.package}/{item.member}"


# -- the build --------------------------------------------------------------------------------------------------


OWNER_MARK = ".lassbench-packaged"


def _check_not_another_corpus(out: Path) -> None:
    """A rerun replaces the manifest and removes clips its table no longer selects: only in a folder this command
    made (it has packages.json), never in another corpus's folder (``download audiocaps`` also writes audio/)."""
    ours = (out / "packages.json").is_file() or (out / OWNER_MARK).is_file()
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise LassbenchError(f"{out}: --out holds files but is not a packaged corpus made by "
                             "`lassbench download packaged`; choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / OWNER_MARK).touch()  # before any download: a killed first run still resumes here


def download_packaged(config: PackagedConfig) -> PackagedResult:
    table = load_table(config.table)
    out = Path(config.out_dir)
    if not 8000 <= config.sample_rate <= 192000:
        raise LassbenchError(f"--sample-rate must be between 8000 and 192000 Hz, got {config.sample_rate}")
    check_output_folder(out, "--out")
    _check_not_another_corpus(out)
    for sub in ("audio", "licences", "debs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(out / sub)
    used = sorted({rule.package for rule in table.rules})
    debs, selected, digests = {}, [], {}
    with _bar(len(used), "fetching packages", "package", config.progress) as bar:
        for name in used:  # all fetched, verified and listed before any cutting starts
            bar.set_postfix_str(name, refresh=False)
            debs[name] = fetch_deb(table.pins[name], out / "debs", mirror=config.mirror, use_apt=config.use_apt)
            # a listing pass: names and content digests, so the split can see every class across packages
            members = {member: hashlib.sha256(payload).hexdigest()
                       for member, payload in iter_deb_files(debs[name], lambda n, p=name: _ruled(table, p, n))}
            digests.update({f"{name}/{member}": digest for member, digest in members.items()})
            selected += select_members(list(members), name, table.rules)
            bar.update()
    selected, skipped = drop_identical(selected, digests)
    splits = cap_and_split(selected, table.classes)
    rows = []
    with _bar(len(splits), "cutting clips", "clip", config.progress) as bar:
        for name in used:
            wanted = {s.member: s for s in selected if s.package == name and key(s) in splits}
            package_rows, package_skipped = _build_package(table, name, debs[name], wanted, splits, out,
                                                           config.sample_rate, bar.update)
            rows += package_rows
            skipped += package_skipped
    if not rows:
        raise LassbenchError("no clips: the rules selected no readable file")
    frame = pd.DataFrame(rows).sort_values("source_id", kind="stable").reset_index(drop=True)
    _write_outputs(frame, skipped, table, out)
    kept = {Path(p).name for p in frame["path"]}
    for orphan in (out / "audio").glob("*.wav"):  # clips of an earlier table that this one no longer selects
        if orphan.name not in kept:
            orphan.unlink()
    if not config.keep_debs:
        shutil.rmtree(out / "debs", ignore_errors=True)
    splits = frame["split"].value_counts().to_dict()
    return PackagedResult(len(frame), frame["class"].nunique(), splits, out, skipped)


def _bar(total: int, label: str, unit: str, progress: bool | None):
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False,
                disable=None if progress is None else not progress)


def _ruled(table: PackageTable, package: str, name: str) -> bool:
    return any(r.package == package and r.match.search(name) for r in table.rules)


def _build_package(table: PackageTable, name: str, deb: Path, wanted: dict[str, Selected], splits: dict[str, str],
                   out: Path, sample_rate: int, done: Callable[[], object] = lambda: None
                   ) -> tuple[list[dict], list[tuple[str, str]]]:
    pin = table.pins[name]
    copyright_file = copyright_text(deb, name)
    write_text_atomic(out / "licences" / f"{name}.copyright", copyright_file)
    stanzas = parse_copyright(copyright_file)
    rows, skipped = [], []
    for member, payload in iter_deb_files(deb, lambda n: n in wanted):
        done()  # one clip of the progress bar, kept or skipped
        item = wanted[member]
        scratch = out / "debs" / f".{name}.member{Path(member).suffix}"  # the decoder wants the real suffix
        scratch.write_bytes(payload)
        try:
            audio, _ = read_audio(scratch, sample_rate=sample_rate)
        except LassbenchError as exc:
            skipped.append((key(item), f"unreadable ({exc})"))
            continue
        finally:
            scratch.unlink(missing_ok=True)
        if audio.size == 0 or not np.any(audio):
            skipped.append((key(item), "silent"))
            continue
        stanza = licence_stanza(stanzas, item.copyright_path)
        if not FREE_LICENCE.match(stanza.licence):
            raise LassbenchError(f"{name}: {member} is under {stanza.licence or 'no stated licence'!r}, not a "
                                 "licence that permits redistributing derived clips; remove its rule")
        rows.append(_clip_row(item, audio, sample_rate, splits[key(item)], table, pin, stanza, payload, out))
    return rows, skipped


def source_id_for(item: Selected) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(item.member).stem).strip("_.") or "clip"
    return f"{item.package}-{stem}-{hashlib.sha1(key(item).encode()).hexdigest()[:6]}"


def _clip_row(item: Selected, audio: np.ndarray, sample_rate: int, split: str, table: PackageTable, pin: DebPin,
              stanza: Stanza, payload: bytes, out: Path) -> dict:
    seed = key(item)
    arrangement = arrange(audio.shape[0] / sample_rate, seed)
    clip = make_clip(audio, sample_rate, arrangement)
    measured = measure(clip, sample_rate)
    source_id = source_id_for(item)
    path = out / "audio" / f"{source_id}.wav"
    write_audio(path, clip, sample_rate, subtype="PCM_16")
    spec = table.classes[item.label]
    return {
        "source_id": source_id, "path": f"audio/{source_id}.wav",
        "captions": encode_list(captions_for(item.label, spec["captions"], measured, arrangement, item.lang, seed,
                                             human_captions_for(item.label, split, load_human_captions(), seed))),
        "labels": encode_list(spec["labels"]), "split": split, "sample_rate": sample_rate,
        "num_samples": clip.shape[0], "duration": clip.shape[0] / sample_rate, "sha1": sha1_file(path),
        "class": item.label, "group": f"{item.package}/{item.group}", "package": pin.name, "version": pin.version,
        "file": item.member, "file_sha256": hashlib.sha256(payload).hexdigest(), "licence": stanza.licence,
        "credit": stanza.copyright, "source_seconds": round(audio.shape[0] / sample_rate, 3),
        "offset_s": arrangement.offset_s, "repetitions": arrangement.repetitions,
        "active_s": measured.active_s, "loudness_lufs": round(measured.loudness_lufs, 2),
        "centroid_hz": round(measured.centroid_hz, 1), "language": LANGUAGES.get(item.lang, ""),
    }


PROVENANCE_COLUMNS = ["source_id", "package", "version", "file", "file_sha256", "licence", "credit"]
EXTRA_COLUMNS = ["class", "group", "source_seconds", "offset_s", "repetitions", "active_s", "loudness_lufs",
                 "centroid_hz", "language"]


def _write_outputs(frame: pd.DataFrame, skipped: list[tuple[str, str]], table: PackageTable, out: Path) -> None:
    write_manifest_csv(frame[SOURCE_COLUMNS + EXTRA_COLUMNS + PROVENANCE_COLUMNS[1:]], out / "manifest.csv")
    write_manifest_csv(frame[PROVENANCE_COLUMNS], out / "provenance.csv")
    write_manifest_csv(class_table(frame), out / "classes.csv")
    write_manifest_csv(pd.DataFrame(skipped, columns=["file", "reason"]), out / "skipped.csv")
    pins = {name: pin.__dict__ for name, pin in sorted(table.pins.items())}
    write_text_atomic(out / "packages.json", json.dumps(pins, indent=2, sort_keys=True) + "\n")


def class_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per class: clips per split, recordings (groups), and medians of the listen-free measurements."""
    rows = []
    for label, part in frame.groupby("class", sort=True):
        counts = part["split"].value_counts()
        rows.append({
            "class": label, "labels": part["labels"].iloc[0], "clips": len(part),
            "train": int(counts.get("train", 0)), "val": int(counts.get("val", 0)), "test": int(counts.get("test", 0)),
            UNSEEN_SPLIT: int(counts.get(UNSEEN_SPLIT, 0)),
            "groups": part["group"].nunique(), "packages": ";".join(sorted(part["package"].unique())),
            "median_active_s": round(float(part["active_s"].median()), 2),
            "median_loudness_lufs": round(float(part["loudness_lufs"].median()), 1),
            "median_centroid_hz": round(float(part["centroid_hz"].median())),
        })
    return pd.DataFrame(rows)
