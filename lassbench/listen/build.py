"""``lassbench listen build``: a blind, self-contained MUSHRA-style test page from runs saved with ``--save-audio``.

Inputs: result folders ``OUT/<benchmark>/<system>`` of ``lassbench run ... --save-audio`` (estimates under
``estimates/<id>.wav``, ``run.json``, ``per_item.csv``) and the built benchmark they separated (mixtures and targets).
Output, the folder sent to listeners (nothing in it names a condition)::

    index.html          the test: HTML + JS, trials with opaque stimulus ids embedded (opens from file://, no server)
    audio/<trial>/      ref.wav (the open reference) and <stimulus id>.wav per condition

and, outside it, the key (default ``<folder>.key.json``, see :mod:`lassbench.listen.key`): items, queries, which
stimulus id is which condition, loudness gains, per-item metrics. Trials (items) are drawn with ``seed``; the ids and
the per-trial order come from the key's secret, so the same inputs rebuilt beside the same key give the same
``test_id`` and ratings collected on an earlier build stay valid.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lassbench import __version__
from lassbench.audio import read_audio, sha256_file, write_audio, write_text_atomic
from lassbench.errors import LassbenchError
from lassbench.listen.key import (
    LEGACY_KEY,
    blind_order,
    blinding_secret,
    check_outside_folder,
    default_key_path,
    write_key,
)
from lassbench.listen.page import render_page
from lassbench.listen.stimuli import FIXED_CONDITIONS, REFERENCE, trial_stimuli
from lassbench.manifests import built_benchmark_dir, read_dataset_json, read_item_manifest, read_manifest
from lassbench.paths import check_output_file, check_output_folder

CORRELATED_METRICS = ("sdri", "si_sdri")  # + every clap_score*@digest column a run has


@dataclass
class ListenConfig:
    runs: list[str]
    out: str
    data: str | None = None  # the built benchmark the runs separated; default: run.json's, or synth's
    trials: int = 10
    seed: int = 0
    items: list[str] | None = None  # explicit item ids instead of a seeded draw
    loudness_lufs: float = -23.0
    max_seconds: float | None = 10.0
    title: str = "Listening test: language-queried source separation"
    key: str | None = None  # the key file; default <out>.key.json, beside the folder sent to listeners

    @property
    def key_path(self) -> Path:
        return Path(self.key) if self.key else default_key_path(self.out)


@dataclass
class RunFolder:
    system: str
    folder: Path
    benchmark: str | None
    metrics: pd.DataFrame | None  # per_item.csv indexed by item, when present
    data: str | None = None  # run.json "data": the benchmark folder, where the runner records it
    manifest_sha256: str | None = None  # run.json "manifest_sha256": which build of the benchmark was separated


def build_test(config: ListenConfig) -> Path:
    """Write the listeners' folder and, outside it, the key; returns the path of index.html."""
    _check_config(config)
    runs = [_read_run(Path(r)) for r in config.runs]
    _check_systems(runs)
    data_dir = _benchmark_folder(config.data, runs)
    manifest = read_item_manifest(data_dir / "manifest.csv")
    ids = _pick_items(manifest, data_dir, runs, config)
    out, key = Path(config.out), config.key_path
    check_output_folder(out, "--out")
    check_output_file(key, "--key")
    check_outside_folder(key, out)
    queries = dict(zip(manifest["id"].astype(str), manifest["query"], strict=True))
    test = {
        "title": config.title,
        "benchmark": runs[0].benchmark or data_dir.name,
        "data": str(data_dir),
        "folder": str(out.resolve()),
        "systems": [r.system for r in runs],
        "fixed_conditions": list(FIXED_CONDITIONS),
        "seed": config.seed,
        "loudness_lufs": config.loudness_lufs,
        "max_seconds": config.max_seconds,
        "items": [{"trial_id": f"t{n:02d}", "item": item, "query": queries[item]}
                  for n, item in enumerate(ids, start=1)],
    }
    identity = {k: test[k] for k in ("benchmark", "systems", "seed", "loudness_lufs", "max_seconds", "items")}
    test["identity_sha256"] = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    secret = blinding_secret(key, test["identity_sha256"])
    test["test_id"] = hashlib.sha256((test["identity_sha256"] + secret).encode()).hexdigest()[:12]
    test["trials"] = [_build_trial(t["trial_id"], t["item"], t["query"], data_dir, runs, config, secret, out)
                      for t in test.pop("items")]
    test["blinding"] = {"secret": secret, "rule": "stimulus id = 's' + HMAC-SHA256(secret, trial_id NUL condition)"
                        "[:12]; display order = ids sorted"}
    test["lassbench_version"] = __version__
    write_key(key, test)
    _remove_stale(out, test["trials"])
    return write_text_atomic(out / "index.html", render_page(test))


def _check_config(config: ListenConfig) -> None:
    if config.trials < 1:
        raise LassbenchError("--trials must be at least 1")
    if config.seed < 0:
        raise LassbenchError(f"--seed must be zero or positive, got {config.seed}")
    if config.items and len(set(config.items)) != len(config.items):
        repeated = sorted({i for i in config.items if config.items.count(i) > 1})
        raise LassbenchError(f"--items lists {', '.join(repeated)} more than once (each item is one trial)")
    if config.max_seconds is not None and not math.isfinite(config.max_seconds):
        raise LassbenchError(f"--max-seconds must be a finite number of seconds, got {config.max_seconds:g}")
    if config.max_seconds is not None and config.max_seconds < 0.5:
        raise LassbenchError(f"--max-seconds {config.max_seconds:g}: stimuli need at least 0.5 s (loudness is "
                             "measured over 0.4 s blocks)")
    if not -70 < config.loudness_lufs < 0:
        raise LassbenchError(f"--loudness {config.loudness_lufs:g}: expected a level in LUFS between -70 and 0")


def _remove_stale(out: Path, trials: list[dict]) -> None:
    """A rebuild into the same folder leaves no earlier build's audio or key (older builds kept it inside)."""
    kept = {out / t["reference"] for t in trials} | {out / s["file"] for t in trials for s in t["stimuli"]}
    for wav in (out / "audio").glob("*/*.wav"):
        if wav not in kept:
            wav.unlink()
    for folder in (out / "audio").glob("*/"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    (out / LEGACY_KEY).unlink(missing_ok=True)


def _read_run(folder: Path) -> RunFolder:
    if not folder.is_dir():
        raise LassbenchError(f"{folder}: run folder not found; expected a result folder OUT/<benchmark>/<system> "
                             "written by `lassbench run MODEL --save-audio` (estimates/<id>.wav, run.json)")
    if not (folder / "estimates").is_dir():
        raise LassbenchError(f"{folder}: no estimates/ folder in this run folder (it was run without "
                             "--save-audio); rerun `lassbench run MODEL --save-audio`")
    info = {}
    if (folder / "run.json").is_file():
        try:
            info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LassbenchError(f"{folder / 'run.json'}: cannot read ({exc})") from exc
    metrics = None
    if (folder / "per_item.csv").is_file():
        metrics = read_manifest(folder / "per_item.csv", ["item"]).set_index("item")
    return RunFolder(system=str(info.get("system") or folder.name), folder=folder,
                     benchmark=info.get("benchmark") or folder.parent.name, metrics=metrics,
                     data=info.get("data"), manifest_sha256=info.get("manifest_sha256"))


def _check_systems(runs: list[RunFolder]) -> None:
    if not runs:
        raise LassbenchError("name at least one run folder (OUT/<benchmark>/<system> made with --save-audio)")
    names = [r.system for r in runs]
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & {REFERENCE, *FIXED_CONDITIONS}))
    if clash:
        raise LassbenchError(f"run folders with the same or a reserved system name: {', '.join(clash)}")
    benchmarks = sorted({r.benchmark for r in runs if r.benchmark})
    if len(benchmarks) > 1:
        raise LassbenchError(f"the runs come from different benchmarks ({', '.join(benchmarks)}); one test compares "
                             "systems on the same items")


def _benchmark_folder(data: str | None, runs: list[RunFolder]) -> Path:
    recorded = next((r.data for r in runs if r.data), None)
    if data is not None or recorded is not None:
        folder = built_benchmark_dir(data if data is not None else recorded)
    elif runs[0].benchmark == "synth":
        # the build `run` used, as it is: building or refreshing it here could pair estimates with other mixtures
        from lassbench.build import default_out

        folder = default_out(None, "lassbench")
        if not (folder / "manifest.csv").is_file():
            raise LassbenchError(f"{folder}: the synth benchmark the runs separated is not there; pass --data BENCH")
    else:
        raise LassbenchError(f"pass --data BENCH: the built benchmark '{runs[0].benchmark}' the runs separated "
                             "(its mixtures and targets are the test's mixture and reference)")
    name = read_dataset_json(folder).get("name") or folder.name
    if runs[0].benchmark and name != runs[0].benchmark:
        raise LassbenchError(f"{folder}: benchmark '{name}', but the runs separated '{runs[0].benchmark}'")
    digest = sha256_file(folder / "manifest.csv")
    stale = [r.folder.name for r in runs if r.manifest_sha256 and r.manifest_sha256 != digest]
    if stale:
        raise LassbenchError(f"{folder}: another build of the benchmark than the one {', '.join(stale)} separated "
                             "(manifest SHA-256 differs); rerun them, or pass --data with the build they used")
    return folder


def _pick_items(manifest: pd.DataFrame, data_dir: Path, runs: list[RunFolder], config: ListenConfig) -> list[str]:
    ids = [str(i) for i in manifest["id"]]
    with_target = {i for i in ids if (data_dir / "target" / f"{i}.wav").is_file()}
    estimated = set.intersection(*({p.stem for p in (r.folder / "estimates").glob("*.wav")} for r in runs))
    usable = [i for i in ids if i in with_target and i in estimated]
    if config.items:
        unusable = [i for i in config.items if i not in set(usable)]
        if unusable:
            raise LassbenchError(f"item(s) without a target or without an estimate in every run: "
                                 f"{', '.join(unusable[:5])}")
        return list(config.items)
    if len(usable) < config.trials:
        raise LassbenchError(f"{len(usable)} item(s) have a target and an estimate from every run, fewer than "
                             f"--trials {config.trials}")
    rng = np.random.default_rng(config.seed)
    return [usable[k] for k in rng.choice(len(usable), size=config.trials, replace=False)]


def _build_trial(trial_id: str, item: str, query: str, data_dir: Path, runs: list[RunFolder],
                 config: ListenConfig, secret: str, out: Path) -> dict:
    target, rate = read_audio(data_dir / "target" / f"{item}.wav")
    mixture = _read_at(data_dir / "mixture" / f"{item}.wav", rate)
    estimates = {r.system: _read_at(r.folder / "estimates" / f"{item}.wav", rate) for r in runs}
    stimuli, levels = trial_stimuli(target, mixture, estimates, rate, loudness_lufs=config.loudness_lufs,
                                    max_seconds=config.max_seconds, where=f"item {item}")
    order = blind_order(secret, trial_id, [c for c in stimuli if c != REFERENCE])
    reference = f"audio/{trial_id}/ref.wav"
    write_audio(out / reference, stimuli[REFERENCE], rate, subtype="PCM_16")
    shown = []
    for stimulus, condition in order:
        shown.append({"id": stimulus, "condition": condition, "file": f"audio/{trial_id}/{stimulus}.wav"})
        write_audio(out / shown[-1]["file"], stimuli[condition], rate, subtype="PCM_16")
    return {
        "trial_id": trial_id,
        "item": item,
        "query": query,
        "reference": reference,
        "stimuli": shown,
        "levels": levels,
        "metrics": {r.system: _item_metrics(r, item) for r in runs},
    }


def _read_at(path: Path, rate: int) -> np.ndarray:
    audio, other = read_audio(path)
    if other != rate:
        raise LassbenchError(f"{path}: {other} Hz, but the benchmark's target is {rate} Hz")
    return audio


def _item_metrics(run: RunFolder, item: str) -> dict:
    if run.metrics is None or item not in run.metrics.index:
        return {}
    row = run.metrics.loc[item]
    names = [c for c in run.metrics.columns if c in CORRELATED_METRICS or c.startswith("clap_score")]
    values = {name: pd.to_numeric(row[name], errors="coerce") for name in names}  # per_item.csv cells are text
    return {name: float(value) for name, value in values.items() if pd.notna(value)}
