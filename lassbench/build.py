"""``build-dataset``: sources + protocol -> a built benchmark folder (wavs, manifest, dataset.json).

Layout of ``OUT``::

    mixture/<id>.wav  target/<id>.wav  interferers/<id>_<k>.wav     float32 WAV (``subtype``)
    manifest.csv  manifest.parquet                                  the item manifest (lassbench.manifests)
    sources.csv                                                     measured clips: path, split, frames, loudness
    dataset.json                                                    protocol, parameters, version, counts
    skipped.csv                                                     clips / items left out, and why
    leakage.csv                                                     with --train-manifest
    .lassbench/                                                     resume state: per-item rows, loudness cache

Steps: resolve the sources; the protocol names the clips it needs; each clip is read once to measure its
loudness and find unusable ones (cached in ``.lassbench/``); the protocol plans its items from the usable clips;
this shard's items are rendered (``--workers`` processes) — an item is done when its row file exists, so a rerun
resumes. The manifest is written once every item of the plan exists, by whichever shard finishes last: the union of
``--shard i/N`` builds is byte for byte the unsharded build.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench import __version__
from lassbench.audio import atomic_path, sha1_file, sweep_stale_temps, write_audio, write_text_atomic
from lassbench.corpora import SKIP_REASONS, measure_source, read_source, resolve_sources
from lassbench.errors import LassbenchError
from lassbench.jsonio import jsonable, read_json_object
from lassbench.leakage import find_leaks, leak_summary, listed_sources, read_id_list, source_aliases
from lassbench.manifests import ITEM_COLUMNS, write_manifest_csv
from lassbench.mixing import ItemSpec, RenderedItem, fit_length, integrated_loudness, render
from lassbench.paths import cache_dir, check_output_folder
from lassbench.pools import process_pool
from lassbench.protocols import BuildRequest, Prepared, get_protocol
from lassbench.safe_names import check_names

STATE_DIR = ".lassbench"
SOURCES_TABLE = "sources.csv"  # every measured clip: path, split, length, loudness (what training remixes from)
SUBTYPES = ("FLOAT", "PCM_16", "PCM_24")
HF_WRITER_BATCH = 16  # rows datasets holds before writing them (its default, 1,000, would hold 1,000 items' audio)


@dataclass
class BuildConfig:
    """Everything ``build-dataset`` takes; ``options`` holds protocol parameters (e.g. ``target_lufs``)."""

    out: str | Path | None = None
    sources: str | Path | None = None
    protocol: str = "lassbench"
    index: str | None = None
    splits: tuple[str, ...] | None = None
    num_items: int | dict[str, int] | None = None
    seed: int = 0
    sample_rate: int | None = None
    subtype: str = "FLOAT"
    workers: int = 1
    shard: tuple[int, int] = (0, 1)
    exclude_ids: str | Path | None = None
    train_manifest: str | Path | None = None
    strict: bool = False
    allow_missing: bool = False
    export_hf: str | Path | None = None
    options: dict = field(default_factory=dict)
    progress: bool = True


@dataclass
class BuildResult:
    out: Path
    manifest: Path | None  # None while items of other shards are missing
    total: int  # items in the whole plan
    built: int  # items rendered by this run
    reused: int  # items of this shard found done
    skipped: int  # rows in skipped.csv
    leaks: int = 0


def default_out(sources: str | Path | None, protocol: str) -> Path:
    name = "synth" if sources in (None, "synth") else Path(str(sources)).resolve().name
    return cache_dir() / "benchmarks" / (name if protocol == "lassbench" else f"{name}-{protocol}")


def build_dataset(config: BuildConfig) -> BuildResult:
    """Build (or resume) a benchmark; see the module docstring."""
    _check_config(config)
    protocol = get_protocol(config.protocol)
    # a protocol whose index names the very files to read (AudioSep's rendered data) resolves them itself
    custom = getattr(protocol, "resolve_sources", None)
    resolved = (custom(config.sources, config.index) if custom else None) or resolve_sources(config.sources)
    out = Path(config.out) if config.out is not None else default_out(config.sources, config.protocol)
    if _is_default_synth_build(out, config):  # `lassbench build-dataset` and `run` share this cached folder
        _drop_stale_synth_build(out)
        # recorded before anything else, so a killed build resumes instead of being dropped as stale
        write_text_atomic(out / STATE_DIR / RENDER_STATE, json.dumps({"render_digest": render_digest()}))
    excluded = listed_sources(resolved.frame, read_id_list(config.exclude_ids)) if config.exclude_ids \
        else frozenset()
    request = BuildRequest(
        splits=config.splits, num_items=config.num_items, seed=config.seed, index=config.index,
        sample_rate=config.sample_rate, allow_missing=config.allow_missing, exclude_ids=excluded,
        options=dict(config.options),
    )
    prepared = protocol.prepare(resolved.frame, request)
    fingerprint = _fingerprint(config, resolved.origin, prepared, excluded)
    _claim_folder(out, fingerprint)
    _sweep_build_temps(out)
    training = _training_sources(resolved.frame, prepared, excluded)
    levels, source_skips = _measure_sources(out, prepared, config, training)
    if not prepared.loudness_gate:  # published evaluators score quiet and short clips too: only unreadable ones go
        kept = ("missing", "unreadable")
        source_skips = [(sid, reason) for sid, reason in source_skips if reason in kept]
        levels = {sid: (level, frames, reason if reason in kept else None)
                  for sid, (level, frames, reason) in levels.items()}
    plan = prepared.plan({sid for sid, (_, _, reason) in levels.items() if reason is None})
    specs = plan.specs
    _check_item_ids(specs)
    skipped = _skipped_rows(resolved.skipped, excluded, prepared.skipped,
                            source_skips, plan.skipped)
    leaks = _leakage(out, specs, resolved.frame, config)
    index_of, count = config.shard
    mine = [spec for position, spec in enumerate(specs) if position % count == index_of]
    todo = [spec for spec in mine if not _row_path(out, spec.item_id).is_file()]
    context = _ItemContext(
        out=str(out), sample_rate=prepared.sample_rate, num_samples=prepared.num_samples, subtype=config.subtype,
        pad_to=prepared.pad_to,
        paths=dict(zip(resolved.frame["source_id"], resolved.frame["path"], strict=True)),
        loudness={sid: level for sid, (level, _, reason) in levels.items() if reason is None},
    )
    _render_all(todo, context, config.workers, config.progress)
    write_manifest_csv(pd.DataFrame(skipped, columns=["id", "kind", "reason"]), out / "skipped.csv")
    manifest = _finish(out, specs, prepared, resolved, config, levels)
    if manifest is not None and config.export_hf:
        export_hf(out, config.export_hf)
    return BuildResult(out=out, manifest=manifest, total=len(specs), built=len(todo), reused=len(mine) - len(todo),
                       skipped=len(skipped), leaks=len(leaks))


def default_benchmark(splits: Iterable[str] = ("val", "test"), *, out: str | Path | None = None,
                      workers: int = 1, progress: bool = False) -> Path:
    """The built synth benchmark folder (``cache_dir()/benchmarks/synth`` unless ``out``): built when absent or
    incomplete, reused when its ``dataset.json`` already covers ``splits``. At the default location, a build made
    from another synth corpus (older generator code) or by other rendering code (:func:`render_digest`) is removed
    and rebuilt, so results follow the code."""
    splits = tuple(splits)
    if out is None:
        out = default_out(None, "lassbench")
        _drop_stale_synth_build(out)
    out = Path(out)
    described = out / "dataset.json"
    if described.is_file() and (out / "manifest.csv").is_file():
        try:
            built = json.loads(described.read_text())["parameters"]["splits"]
        except (ValueError, KeyError, TypeError):
            built = []
        if set(splits) <= set(built):
            return out
        splits = tuple(dict.fromkeys([*built, *splits]))  # extend the build: its manifest keeps the splits it had
    build_dataset(BuildConfig(out=out, splits=splits, workers=workers, progress=progress))
    return out


RENDER_STATE = "render.json"  # the default benchmark's render_digest: its cache key besides the corpus
_RENDER_MODULES = ("lassbench.build", "lassbench.mixing", "lassbench.audio", "lassbench.corpora",
                   "lassbench.protocols.lassbench")
_RENDER_PACKAGES = ("numpy", "scipy", "pyloudnorm", "soundfile", "soxr")


def render_digest() -> str:
    """12 hex digits of SHA-1 over the code that turns corpus clips into benchmark items (build, mixing, audio
    I/O, the lassbench protocol) and the versions of the numeric packages it uses."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha1()
    for name in _RENDER_MODULES:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    for package in _RENDER_PACKAGES:
        try:
            digest.update(f"{package} {version(package)}\n".encode())
        except PackageNotFoundError:
            digest.update(f"{package} -\n".encode())
    return digest.hexdigest()[:12]


def _is_default_synth_build(out: Path, config: BuildConfig) -> bool:
    return (config.protocol == "lassbench" and str(config.sources or "synth") == "synth"
            and out.resolve() == default_out(None, "lassbench").resolve())


def _drop_stale_synth_build(out: Path) -> None:
    """Remove the cached default benchmark when it was made from another synth corpus or by other rendering code
    (or before the rendering code was recorded): a stale cache once fed committed results."""
    from lassbench.corpora.synth import corpus_key

    state = _read_json_or_none(out / STATE_DIR / "build.json")
    if not isinstance(state, dict) or "sources" not in state:
        return
    current = str(cache_dir() / "synth" / corpus_key() / "manifest.csv")
    rendered = _read_json_or_none(out / STATE_DIR / RENDER_STATE) or {}
    if state["sources"] != current:
        why = f"another synth corpus ({state['sources']})"
    elif rendered.get("render_digest") != render_digest():
        why = "other rendering code"
    else:
        return
    import click

    click.echo(f"note: {out} was built from {why}; rebuilding", err=True)
    shutil.rmtree(out)


# ------------------------------------------------------------------------------------------------------ checks


def _check_config(config: BuildConfig) -> None:
    if config.subtype not in SUBTYPES:
        raise LassbenchError(f"--subtype {config.subtype!r}: choose one of {', '.join(SUBTYPES)}")
    index, count = config.shard
    if not (count >= 1 and 0 <= index < count):
        raise LassbenchError(f"--shard {index}/{count}: expected i/N with 0 <= i < N")
    if config.workers < 1:
        raise LassbenchError(f"--workers {config.workers}: must be at least 1")
    if config.seed < 0:  # numpy seeds are non-negative: found only when the first item is drawn
        raise LassbenchError(f"--seed {config.seed}: must be 0 or more")
    if config.sample_rate is not None and config.sample_rate <= 0:
        raise LassbenchError(f"--sample-rate {config.sample_rate}: must be a positive number of Hz")
    for name, value in config.options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise LassbenchError(f"{flag} {value}: must be a finite number")
        if name == "duration" and value <= 0:
            raise LassbenchError(f"{flag} {value}: must be positive")
    check_output_folder(config.out if config.out is not None else default_out(config.sources, config.protocol),
                        "--out")
    for id_list in (config.exclude_ids, config.train_manifest):  # unreadable lists fail now, not after measuring
        if id_list:
            read_id_list(id_list)
    if config.export_hf is not None:
        check_output_folder(config.export_hf, "--export hf")



def _check_item_ids(specs: list[ItemSpec]) -> None:
    """Ids are unique file stems (the sources were checked where they were read; this holds for any protocol)."""
    check_names((spec.item_id for spec in specs), "item id", "build-dataset")
    seen: set[str] = set()
    for spec in specs:
        if spec.item_id in seen:
            raise LassbenchError(f"two items share the id {spec.item_id}")
        seen.add(spec.item_id)


def _fingerprint(config: BuildConfig, origin: str, prepared: Prepared, excluded: frozenset[str]) -> dict:
    """What makes an item what it is; splits and counts are left out (items are prefix-stable per split), so a
    folder can grow (``--splits train,val,test`` after ``val,test``) and be resumed, never silently mixed.
    ``--exclude-ids`` changes the pools items are drawn from, so the clips it removes are part of it (only when
    it removes any, so folders built without one keep their fingerprint)."""
    parameters = {k: v for k, v in prepared.parameters.items() if k not in ("splits", "items")}
    fingerprint = {"protocol": config.protocol, "sources": origin, "subtype": config.subtype,
                   "parameters": jsonable(parameters)}
    if excluded:
        fingerprint["exclude_ids_sha1"] = hashlib.sha1("\n".join(sorted(excluded)).encode()).hexdigest()
    return fingerprint


def _claim_folder(out: Path, fingerprint: dict) -> None:
    state = out / STATE_DIR / "build.json"
    if state.is_file():
        try:
            previous = json.loads(state.read_text())
        except ValueError:
            previous = None
        if previous != fingerprint:
            raise LassbenchError(
                f"{out}: already holds a build with other settings ({state}); use another --out or delete it"
            )
        return
    if out.is_dir() and any(p.name != STATE_DIR for p in out.iterdir()):
        if not (out / "manifest.csv").is_file() and not (out / "mixture").is_dir():
            raise LassbenchError(f"{out}: folder exists and is not a lassbench build; choose another --out")
    write_text_atomic(state, json.dumps(fingerprint, indent=1, sort_keys=True))


def _sweep_build_temps(out: Path) -> None:
    """Remove temp files a killed build left in the folders builds write (live shards' temps are kept)."""
    for folder in (out, out / "mixture", out / "target", out / "interferers", out / STATE_DIR,
                   out / STATE_DIR / "items"):
        sweep_stale_temps(folder)


# ---------------------------------------------------------------------------------------------------- sources


def _training_sources(frame: pd.DataFrame, prepared: Prepared, excluded: frozenset[str]) -> pd.DataFrame:
    """The corpus's ``train`` clips the protocol did not ask for: measured too, so ``lassbench train`` remixes from
    the loudness stored in ``sources.csv`` instead of rereading the corpus at start-up. Clips of ``--exclude-ids``
    are left out here as everywhere: they never reach ``sources.csv``, so training never sees them."""
    if "split" not in frame:
        return frame.iloc[:0]
    unasked = ~frame["source_id"].isin(prepared.sources["source_id"]) & ~frame["source_id"].isin(excluded)
    return frame[(frame["split"] == "train") & unasked]


def _measure_sources(out: Path, prepared: Prepared, config: BuildConfig, extra: pd.DataFrame
                     ) -> tuple[dict[str, tuple[float, int, str | None]], list[tuple[str, str]]]:
    """Loudness, length at the build's rate (or the reason it is unusable) of every clip the protocol needs and of
    ``extra`` clips, cached by file size and mtime. Only the protocol's clips are reported as skipped."""
    cache_path = out / STATE_DIR / f"sources-{prepared.sample_rate}-{prepared.num_samples or 'native'}.json"
    cache = _read_json_or_none(cache_path) or {}
    frame = pd.concat([prepared.sources[["source_id", "path"]], extra[["source_id", "path"]]])
    jobs, levels = [], {}
    for source_id, path in zip(frame["source_id"], frame["path"], strict=True):
        key = _file_key(path)
        hit = cache.get(source_id)
        if hit is not None and hit["key"] == key and "frames" in hit:
            levels[source_id] = (hit["loudness"], hit["frames"], hit["reason"])
        else:
            jobs.append((source_id, path))
    if jobs:
        measure = _MeasureJob(prepared.sample_rate, prepared.num_samples)
        for source_id, level, frames, reason in _map(measure, jobs, config.workers, config.progress,
                                                     "measuring sources"):
            levels[source_id] = (level, frames, reason)
        paths = dict(zip(frame["source_id"], frame["path"], strict=True))
        cache = {sid: {"key": _file_key(paths[sid]), "loudness": lv if lv is None or math.isfinite(lv) else None,
                       "frames": frames, "reason": reason} for sid, (lv, frames, reason) in levels.items()}
        write_text_atomic(cache_path, json.dumps(cache, sort_keys=True))
    mine = set(prepared.sources["source_id"])
    skips = [(sid, reason) for sid, (_, _, reason) in levels.items() if reason is not None and sid in mine]
    return levels, sorted(skips)


def _file_key(path: str) -> list:
    try:
        stat = os.stat(path)
    except OSError:
        return [path, None, None]
    return [path, stat.st_size, stat.st_mtime_ns]


@dataclass(frozen=True)
class _MeasureJob:
    sample_rate: int
    num_samples: int | None

    def __call__(self, job: tuple[str, str]) -> tuple[str, float, int, str | None]:
        source_id, path = job
        audio, loudness, reason = measure_source(path, self.sample_rate, self.num_samples)
        frames = int(audio.shape[0]) if audio is not None else 0
        return source_id, (float(loudness) if reason is None else math.nan), frames, reason


def _skipped_rows(indexing, excluded, prepared, measured, planned) -> list[tuple[str, str, str]]:
    rows = [(name, "source", reason) for name, reason in indexing]
    rows += [(sid, "source", "excluded") for sid in sorted(excluded)]
    rows += [(name, "source", reason) for name, reason in prepared]
    rows += [(sid, "source", reason) for sid, reason in measured]
    rows += [(name, "item" if reason.startswith("item") else "source", reason) for name, reason in planned]
    return [(i, kind, _describe(reason)) for i, kind, reason in rows]


def _describe(reason: str) -> str:
    return f"{reason}: {SKIP_REASONS[reason]}" if reason in SKIP_REASONS else reason


# ---------------------------------------------------------------------------------------------------- leakage


def _leakage(out: Path, specs: list[ItemSpec], frame: pd.DataFrame, config: BuildConfig) -> list:
    if not config.train_manifest:
        return []
    train_ids = read_id_list(config.train_manifest)
    leaks = find_leaks(specs, train_ids, source_aliases(frame))
    report = pd.DataFrame([asdict(leak) for leak in leaks], columns=["item_id", "role", "source_id", "matched"])
    write_manifest_csv(report, out / "leakage.csv")
    message = leak_summary(leaks, len(specs)) + f"; listed in {out / 'leakage.csv'}"
    if leaks and config.strict:
        raise LassbenchError(message + " (--strict: nothing built)")
    if config.progress or leaks:
        import click

        click.echo(message, err=True)
    return leaks


# -------------------------------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _ItemContext:
    out: str
    sample_rate: int
    num_samples: int | None
    subtype: str
    paths: dict[str, str]
    loudness: dict[str, float]
    pad_to: int | None = None

    def __call__(self, spec: ItemSpec) -> str:
        return build_item(spec, self)


def build_item(spec: ItemSpec, context: _ItemContext) -> str:
    """Render and write one item; its row file, written last, marks it done."""
    out = Path(context.out)
    audio = {sid: read_source(context.paths[sid], context.sample_rate, context.num_samples)
             for sid in dict.fromkeys(spec.source_ids)}
    if context.pad_to:  # zero-pad short clips, keep longer ones whole (LASS-Net's load_wav)
        audio = {sid: fit_length(x, max(context.pad_to, x.shape[-1])) for sid, x in audio.items()}
    item = render(spec, audio, context.loudness)
    rate, subtype = context.sample_rate, context.subtype
    snr_db = _realised_snr(item, rate)
    mixture = write_audio(out / "mixture" / f"{spec.item_id}.wav", item.mixture, rate, subtype=subtype)
    target = write_audio(out / "target" / f"{spec.item_id}.wav", item.target, rate, subtype=subtype)
    interferers = [
        write_audio(out / "interferers" / f"{spec.item_id}_{k}.wav", x, rate, subtype=subtype)
        for k, x in enumerate(item.interferers)
    ]
    row = {
        "id": spec.item_id, "split": spec.split, "target_id": spec.target_id,
        "interferer_ids": list(spec.interferer_ids), "query": spec.query, "captions": list(spec.captions),
        "labels": list(spec.labels), "target_lufs": item.target_lufs, "interferer_lufs": item.interferer_lufs,
        "snr_db": snr_db, "planned_snr_db": item.snr_db, "gain": item.gain, "sample_rate": context.sample_rate,
        "num_samples": int(item.mixture.shape[0]), "protocol": spec.protocol, "seed": spec.seed,
        "condition": spec.condition, "mixture_sha1": sha1_file(mixture), "target_sha1": sha1_file(target),
        "interferer_snr_db": list(spec.snr_db), "interferer_sha1": [sha1_file(p) for p in interferers],
        "mixture_path": f"mixture/{spec.item_id}.wav", "target_path": f"target/{spec.item_id}.wav",
        "interferer_paths": [f"interferers/{p.name}" for p in interferers],
        **dict(spec.extra),
    }
    write_text_atomic(_row_path(out, spec.item_id), json.dumps(row, sort_keys=True))
    return spec.item_id


def _realised_snr(item: RenderedItem, sample_rate: int) -> float:
    """The loudness rule's SNR as the written item has it: ``L(target) - L(sum of interferers)``. With two or more
    interferers the planned value assumes their K-weighted energies add, which gating breaks (up to ~3 LU), so the
    sum is measured; other rules already report the realised value."""
    if item.spec.rule != "loudness" or not item.interferers:
        return item.snr_db
    interference = np.sum(item.interferers, axis=0, dtype=np.float32)
    target, rest = integrated_loudness(item.target, sample_rate), integrated_loudness(interference, sample_rate)
    return float(target - rest) if math.isfinite(target) else item.snr_db


def _row_path(out: Path, item_id: str) -> Path:
    return out / STATE_DIR / "items" / f"{item_id}.json"


def _render_all(specs: list[ItemSpec], context: _ItemContext, workers: int, progress: bool) -> None:
    for _ in _map(context, specs, workers, progress, "building items"):
        pass


def _map(function, jobs: list, workers: int, progress: bool, label: str):
    """``map`` over processes when ``workers > 1``, with a tqdm bar when ``progress``."""
    if not jobs:
        return
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=label, unit="it", disable=not progress, leave=False)
    try:
        if workers > 1 and len(jobs) > 1:
            with process_pool(min(workers, len(jobs))) as pool:  # workers die with this process
                for result in pool.map(function, jobs, chunksize=max(1, min(32, len(jobs) // (4 * workers)))):
                    bar.update()
                    yield result
        else:
            for job in jobs:
                result = function(job)
                bar.update()
                yield result
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------------- outputs


def _finish(out: Path, specs: list[ItemSpec], prepared: Prepared, resolved, config: BuildConfig,
            levels: dict[str, tuple[float, int, str | None]]) -> Path | None:
    """Write manifest.csv / .parquet, sources.csv and dataset.json when every planned item exists."""
    rows = []
    for spec in specs:
        row = _read_json_or_none(_row_path(out, spec.item_id))
        if row is None:
            return None
        rows.append(row)
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in ITEM_COLUMNS]
    frame = frame.reindex(columns=ITEM_COLUMNS + sorted(extra)) if rows else pd.DataFrame(columns=ITEM_COLUMNS)
    write_manifest_csv(frame, out / "manifest.csv")
    _write_parquet(frame, out / "manifest.parquet")
    _write_sources_table(out / SOURCES_TABLE, resolved.frame, levels, prepared.sample_rate)
    counts = {split: int(n) for split, n in frame["split"].value_counts(sort=False).items()} if rows else {}
    description = {
        # the benchmark's name is its folder's (default: <sources>[-<protocol>]), so results and leaderboard rows
        # are filed under the name the user chose with --out (docs/reproduce.md: audiocaps-lassnet, dcase2024-val)
        "name": out.resolve().name,
        "protocol": config.protocol,
        "exact": prepared.exact,
        "parameters": jsonable({**prepared.parameters,  # the protocol's SI-SDR convention beside its aggregation
                                "si_sdr_convention": get_protocol(config.protocol).SI_SDR_CONVENTION}),
        "sources": {"origin": _absolute_origin(resolved.origin), "clips": int(len(resolved.frame)),
                    "digest": _frame_digest(resolved.frame), "table": SOURCES_TABLE},
        "lassbench_version": __version__,
        "subtype": config.subtype,
        "sample_rate": prepared.sample_rate,
        "counts": counts,
        "items": len(rows),
        "conditions": {k: int(v) for k, v in frame["condition"].value_counts().sort_index().items()} if rows else {},
    }
    write_text_atomic(out / "dataset.json", json.dumps(description, indent=2, sort_keys=True) + "\n")
    return out / "manifest.csv"


def _write_sources_table(path: Path, frame: pd.DataFrame, levels: dict, sample_rate: int) -> None:
    """``sources.csv``: every clip the build measured — what it is (id, absolute path, split, labels, captions,
    attributes, sha1), its length at the benchmark's rate (``frames``, ``duration`` in s), its integrated loudness
    (LUFS, empty when unusable) and the reason it is unusable (empty when usable). Training remixes from it."""
    measured = frame[frame["source_id"].isin(levels)]
    columns = [c for c in ("source_id", "path", "split", "captions", "labels", "attributes", "sha1") if c in measured]
    table = measured[columns].copy()
    table["path"] = [str(Path(p).resolve()) for p in table["path"]]
    table["sample_rate"] = sample_rate
    table["frames"] = [int(levels[sid][1]) for sid in table["source_id"]]
    table["duration"] = table["frames"] / sample_rate
    table["loudness"] = [levels[sid][0] if levels[sid][2] is None else math.nan for sid in table["source_id"]]
    table["reason"] = [levels[sid][2] or "" for sid in table["source_id"]]
    write_manifest_csv(table.reset_index(drop=True), path)


def _absolute_origin(origin: str) -> str:
    """Where the sources are, independent of the folder build-dataset ran in (``synth`` stays ``synth``)."""
    return origin if origin == "synth" else str(Path(origin).resolve())


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _frame_digest(frame: pd.DataFrame) -> str:
    """A digest of the source list (ids and checksums), so two builds can tell they used the same clips."""
    digest = hashlib.sha1()
    sha = frame["sha1"] if "sha1" in frame else [""] * len(frame)
    for source_id, checksum in zip(frame["source_id"], sha, strict=True):
        digest.update(f"{source_id}\t{checksum}\n".encode())
    return digest.hexdigest()




def _read_json_or_none(path: Path) -> dict | None:
    """Build state that is missing or damaged is rebuilt, not an error."""
    try:
        return read_json_object(path)
    except LassbenchError:
        return None


# ----------------------------------------------------------------------------------------------------- export


def export_hf(built: str | Path, out: str | Path) -> Path:
    """Save a built benchmark as a ``datasets.DatasetDict`` (one dataset per split) at ``out``, streaming: each
    item's WAV bytes are read when ``datasets`` writes that row, so memory stays flat whatever the size
    (``benchmarks/export_hf.py``).

    Audio columns are ``Audio(decode=False)`` holding the WAV bytes: ``datasets`` 5.x encodes and decodes audio only
    through ``torchcodec``, which does not load beside the CPU torch build, so rows are written as the plain
    ``{bytes, path}`` struct that is ``Audio``'s storage and the column is then declared ``Audio`` (no rewrite);
    read ``row["mixture"]["bytes"]`` with soundfile.
    """
    import datasets

    from lassbench.manifests import read_item_manifest

    built, out = Path(built), Path(out)
    frame = read_item_manifest(built / "manifest.csv")
    text, texts = datasets.Value("string"), datasets.List(datasets.Value("string"))
    wav = {"bytes": datasets.Value("binary"), "path": text}
    features = datasets.Features({
        "id": text, "query": text, "captions": texts, "labels": texts, "target_id": text, "interferer_ids": texts,
        "snr_db": datasets.Value("float64"), "condition": text, "sample_rate": datasets.Value("int32"),
        "mixture": wav, "target": wav,
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-hf-", dir=out.parent) as cache:  # never reused: a fresh cache
        splits = {}
        for split, part in frame.groupby("split", sort=False):
            rows = datasets.Dataset.from_generator(
                _hf_rows, features=features, cache_dir=cache, writer_batch_size=HF_WRITER_BATCH,
                gen_kwargs={"built": str(built), "items": _hf_fields(part)},
            )
            for kind in ("mixture", "target"):
                rows = rows.cast_column(kind, datasets.Audio(decode=False))
            splits[str(split)] = rows
        datasets.DatasetDict(splits).save_to_disk(str(out))
    return out


def _hf_fields(part: pd.DataFrame) -> list[dict]:
    """The text columns of a split's items (small: no audio)."""
    return [{
        "id": str(row["id"]), "query": str(row["query"]), "captions": [str(c) for c in row["captions"]],
        "labels": [str(c) for c in row["labels"]], "target_id": str(row["target_id"]),
        "interferer_ids": [str(c) for c in row["interferer_ids"]], "snr_db": float(row["snr_db"]),
        "condition": str(row["condition"]), "sample_rate": int(row["sample_rate"]),
    } for row in part.to_dict("records")]


def _hf_rows(built: str, items: list[dict]):
    for item in items:
        yield {**item, **{kind: {"bytes": (Path(built) / kind / f"{item['id']}.wav").read_bytes(),
                                 "path": f"{item['id']}.wav"} for kind in ("mixture", "target")}}
