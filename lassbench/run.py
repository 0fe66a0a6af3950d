"""``lassbench run MODEL``: separate a built benchmark with a model of the zoo, score it, write the results.

Results go to ``OUT/<benchmark>/<system>/{per_item.csv, summary.json, run.json}`` where ``system`` is the model name
for the main run and ``<model>@<variant>`` for the query-robustness study (``--queries all``) and the controls
(``wrong-query``, ``absent``, ``interferer``, ``negative``): :mod:`lassbench.controls` says what each variant asks
for and scores against; :mod:`lassbench.summary` builds summary.json as ``evaluate`` does.

Separation streams (:mod:`lassbench.run_stream`): batches are read ahead by DataLoader workers, scored as they finish
and appended to a partial file, so memory does not grow with the number of items, an interrupted run resumes, and
under torchrun every rank takes its share of the batches while rank 0 merges one result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from tqdm import tqdm

from lassbench import __version__
from lassbench.audio import audio_info, sha256_file, sweep_stale_temps, write_text_atomic
from lassbench.controls import (
    FALSE_SEPARATION_DEFINITIONS,
    FALSE_SEPARATION_METRICS,
    VariantPlan,
    askable,
    needs_sources,
    parse_controls,
    queries_by_id,
    run_variants,
    variant_plans,
)
from lassbench.corpora.packaged import UNSEEN_SPLIT
from lassbench.distributed import Distributed, barrier, init_distributed, process_device
from lassbench.errors import LassbenchError
from lassbench.fad import FadScorer, fad_scorer
from lassbench.judge import METRICS as JUDGE_METRICS
from lassbench.manifests import check_unique_ids, locate_sources, read_dataset_json, read_item_manifest
from lassbench.models.lassnet import sized_config
from lassbench.models.registry import (
    build_model,
    check_published_checkpoint,
    check_sampler_options,
    count_parameters,
    get_model_entry,
    load_model,
)
from lassbench.ready import resolve_benchmark
from lassbench.result_folders import ItemSelection, exclusive_out, item_selection, refuse_other_item_set
from lassbench.run_stream import (
    PARTIAL_DIR,
    BatchReader,
    default_batch_size,
    default_workers,
    done_batches,
    item_shapes,
    merge_partials,
    remove_partials,
    run_shards,
)
from lassbench.summary import ProtocolRules, benchmark_summary, item_classes, protocol_rules, write_results

if TYPE_CHECKING:  # loaded on use: CLAP and the judge pull in transformers
    from lassbench.clapscore import ClapScorer
    from lassbench.judge import JudgeScorer


@dataclass
class RunConfig:
    model: str
    data: str | None = None  # built benchmark folder; None: the embedded synth benchmark
    split: str = "test"
    checkpoint: str | None = None  # None: the checkpoint shipped with lassbench
    out: str = "results"
    device: str = "cpu"
    batch_size: int | None = None  # None: default_batch_size(device)
    control: str | list[str] | None = None  # controls.CONTROLS, several allowed ("absent,interferer" or a list)
    queries: str = "caption"  # "caption" | "all"
    save_audio: bool = False
    limit: int | None = None
    seed: int = 0
    replace: bool = False  # overwrite a finished result over another item set in the same folder
    workers: int | None = None  # DataLoader reader processes; None: default_workers()
    text_encoder: str | None = None  # published systems: the tokenizer folder (docs/models.md)
    clap: str | None = None  # CLAP checkpoint folder or hub name: adds reference-free CLAPScore (lassbench.clapscore)
    fad: str | None = None  # local CLAP folder or VGGish file: adds the set-level FAD (lassbench.fad)
    steps: int | None = None  # generative systems: sampler steps; None: the official default
    sampler_seed: int | None = None  # generative systems: the sampler's noise seed; None: the official default
    judge: str | None = None  # local SAM Audio judge folder: adds the reference-free judge scores (lassbench.judge)


@dataclass
class RunOutcome:
    variant: str
    out_dir: Path
    summary: dict
    run_info: dict = field(default_factory=dict)


def run_model(config: RunConfig, *, log=None) -> list[RunOutcome]:
    """Separate + score; one outcome per variant (the main run first). Under torchrun (``WORLD_SIZE`` > 1) every
    rank separates its share of the batches and rank 0 merges; ranks other than 0 return ``[]``.
    ``log`` gets one line per note (skipped variant, reused result); default: stderr."""
    log = log or _stderr
    entry = get_model_entry(config.model)
    check_published_checkpoint(config.model, config.checkpoint)
    check_sampler_options(config.model, config.steps, config.sampler_seed)
    controls = check_config(config)
    if entry.query_type == "class-id" and config.split == UNSEEN_SPLIT:
        raise LassbenchError(f"{config.model}: not applicable on {UNSEEN_SPLIT}, whose classes are none it was "
                             "trained on (a class id exists only for a class seen in training)")
    variants = run_variants(entry.query_type, config.queries, controls)
    check_out(config.out)
    with exclusive_out(config.out):
        return _run_locked(config, entry.query_type, variants, log)


@dataclass
class _Session:
    """What every variant of one run shares: the model, the benchmark's items and rules, the scorers, the ranks."""

    config: RunConfig
    query_type: str
    model: torch.nn.Module
    checkpoint: Path | None
    data_dir: Path
    dataset: dict
    benchmark: str
    items: pd.DataFrame
    selection: ItemSelection
    shapes: list[tuple[int, int]]  # (samples, rate) of every item: batches hold items of one length
    rules: ProtocolRules
    base: dict  # the fingerprint of everything but the variant
    dist: Distributed
    device: str
    log: Callable[[str], None]
    clap: object = None  # lassbench.clapscore.ClapScorer
    fad: object = None  # lassbench.fad.FadScorer
    judge: object = None  # lassbench.judge.JudgeScorer


def _run_locked(config: RunConfig, query_type: str, variants: list[str], log) -> list[RunOutcome]:
    data_dir = resolve_benchmark(config.data, log)
    dataset = read_dataset_json(data_dir)
    manifest = read_item_manifest(data_dir / "manifest.csv")
    items = _select_items(data_dir, config.split, config.limit, manifest)
    selection = item_selection(config.split, config.limit, len(items), _split_size(manifest, config.split))
    rules = _scoring_rules(dataset, items)
    dist = init_distributed(config.device)
    device = process_device(config.device, dist)
    from lassbench.clapscore import clap_scorer
    from lassbench.judge import judge_scorer

    judge = judge_scorer(config.judge, device)  # a wrong folder fails before the separator's checkpoint is read
    model, checkpoint = _load_system(config.model, config.checkpoint, device, config.text_encoder)
    if config.steps is not None or config.sampler_seed is not None:
        model.set_sampler(config.steps, config.sampler_seed)
    if config.batch_size is None:
        config = replace(config, batch_size=default_batch_size(device, count_parameters(model)))
    clap = clap_scorer(config.clap, device)  # loaded before any separation: a bad checkpoint fails first
    fad = fad_scorer(config.fad, device)
    if hasattr(model, "input_rate"):  # separators resample the benchmark's audio to their own rate
        model.input_rate = _benchmark_rate(dataset, items, data_dir)
    sources = read_sources_of(dataset, data_dir) if needs_sources(variants) else None
    plans = variant_plans(items, variants, manifest=_with_list_columns(manifest), sources=sources,
                          data_dir=data_dir, seed=config.seed, log=log)
    plans = [plan for plan in plans if askable(model, plan, log)]
    shapes = item_shapes(data_dir, list(items["id"]))  # read once for all variants
    if not getattr(model, "takes_negative_query", False):  # only then do negatives reach the model (and fingerprint)
        plans = [dataclasses.replace(plan, negatives=None) for plan in plans]
    base = _base_fingerprint(config, checkpoint, data_dir, device, selection)
    base.update(_scoring_fingerprint(rules, model, clap, fad, judge))
    session = _Session(config, query_type, model, checkpoint, data_dir, dataset, dataset.get("name") or data_dir.name,
                       items, selection, shapes, rules, base, dist, device, log, clap, fad, judge)
    outcomes = [_run_variant(session, plan) for plan in plans]
    return [outcome for outcome in outcomes if outcome is not None]


def _run_variant(session: _Session, plan: VariantPlan) -> RunOutcome | None:
    started = time.time()
    config, dist = session.config, session.dist
    system = config.model if plan.variant == "default" else f"{config.model}@{plan.variant}"
    out_dir = Path(config.out) / session.benchmark / (system + session.selection.key)
    fingerprint = _fingerprint(session.base, plan)
    finished = _finished(out_dir, fingerprint)
    if finished is not None:
        if dist.rank == 0:
            session.log(f"{out_dir}: kept the results of an identical finished run (delete the folder to run it "
                        "again)")
        return finished if dist.rank == 0 else None
    refuse_other_item_set(out_dir, session.items["id"], replace=config.replace)  # every rank: none starts separating
    partial = out_dir / PARTIAL_DIR
    if dist.rank == 0:  # temp files a run killed with SIGKILL left (those of live writers are kept)
        sweep_stale_temps(out_dir)
        sweep_stale_temps(out_dir / "estimates")
        if config.save_audio and not done_batches(partial, fingerprint):
            # a new run, not a resume: estimates another run left must not sit beside this run's
            shutil.rmtree(out_dir / "estimates", ignore_errors=True)
    barrier(dist)
    reader = BatchReader(session.data_dir, list(session.items["id"]), plan, config.batch_size, session.shapes)
    resumed = sum(len(reader.batches[b]) for b in done_batches(partial, fingerprint))  # scored by an earlier run
    run_shards(session.model, reader, partial, fingerprint, dist=dist, system=system,
               metrics=session.rules.metrics, workers=default_workers() if config.workers is None else config.workers,
               device=session.device, estimates_dir=out_dir / "estimates" if config.save_audio else None,
               clap=session.clap, convention=session.rules.convention, fad=session.fad, judge=session.judge)
    if dist.rank != 0:
        barrier(dist)
        return None
    rows = merge_partials(partial, fingerprint, len(reader), order=reader.ids)
    # before the per-item table: score_rows takes the FAD embeddings out of the rows
    fad_stats = session.fad.score_rows(rows) if session.fad is not None and not plan.scores_false_separation else None
    per_item = _per_item(rows, session.items, plan)
    summary = _summary(session, per_item, fad_stats)
    info = _run_info(session, plan, time.time() - started, len(per_item), fingerprint, fad_stats is not None,
                     separated_now=len(per_item) - resumed)
    write_results(per_item, summary, out_dir)
    write_text_atomic(out_dir / "run.json", json.dumps(info, indent=2) + "\n")  # last: marks the variant finished
    remove_partials(partial)
    barrier(dist)
    return RunOutcome(plan.variant, out_dir, summary, info)


def _summary(session: _Session, per_item: pd.DataFrame, fad_stats: dict | None) -> dict:
    """summary.json of one variant: the protocol's metrics (or the false-separation level), then the reference-free
    scores (CLAPScore, the judge's)."""
    clap, judge = session.clap, session.judge
    names = [c for c in (*session.rules.metrics, *FALSE_SEPARATION_METRICS) if c in per_item.columns]
    free = [*((clap.score_name, clap.improvement_name) if clap else ()), *(JUDGE_METRICS if judge else ())]
    return benchmark_summary(
        per_item, names, session.rules, session.dataset, benchmark=session.benchmark,
        reference_free=[c for c in free if c in per_item.columns],
        definitions={k: v for k, v in FALSE_SEPARATION_DEFINITIONS.items() if k in names},
        clap=clap.info if clap is not None else None, fad=(session.fad, fad_stats) if fad_stats is not None else None,
        subset=session.selection.subset, judge=judge.info if judge is not None else None)


def _scoring_rules(dataset: dict, items: pd.DataFrame) -> ProtocolRules:
    """The benchmark protocol's SI-SDR convention and aggregate; a class aggregate needs every item's class, checked
    here, before anything is separated."""
    rules = protocol_rules(dataset)
    if rules.aggregate != "mean":
        item_classes(items.rename(columns={"id": "item"}), rules.aggregate)
    return rules


def _per_item(rows: list[dict], items: pd.DataFrame, plan: VariantPlan) -> pd.DataFrame:
    per_item = pd.DataFrame(rows)
    extra = items.set_index("id").loc[per_item["item"]]
    for column in ("snr_db", "condition", "labels"):
        if column in extra:
            per_item[column] = list(extra[column])
    per_item["query"] = queries_by_id(items, plan.queries, per_item["item"])
    return per_item


def _finished(out_dir: Path, fingerprint: str) -> RunOutcome | None:
    """The outcome of a finished run with the same fingerprint in ``out_dir`` (run.json is written last)."""
    try:
        info = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
        if info.get("fingerprint") != fingerprint or not (out_dir / "per_item.csv").is_file():
            return None
        summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, AttributeError):
        return None
    return RunOutcome(info.get("variant", "default"), out_dir, summary, info)


def _base_fingerprint(config: RunConfig, checkpoint: Path | None, data_dir: Path, device: str,
                      selection: ItemSelection | None = None) -> dict:
    """Everything besides the variant that changes a score or what is written: the same options give the same rows
    (``save_audio``: rows kept from a run without it have no estimate files). A ``--limit`` that covers the whole
    split is no limit: the run is the full run."""
    limit = selection.limit if selection is not None else config.limit
    return {
        "model": config.model, "checkpoint_sha256": sha256_file(checkpoint) if checkpoint else None,
        "manifest_sha256": sha256_file(data_dir / "manifest.csv"), "split": config.split, "limit": limit,
        "batch_size": config.batch_size, "device_type": torch.device(device).type, "seed": config.seed,
        "lassbench_version": __version__, "torch_version": torch.__version__, "save_audio": config.save_audio,
        "text_encoder": str(Path(config.text_encoder).resolve()) if config.text_encoder else None,
    }


def _scoring_fingerprint(rules: ProtocolRules, model: torch.nn.Module, clap: ClapScorer | None,
                         fad: FadScorer | None, judge: JudgeScorer | None = None) -> dict:
    """What besides the options changes the rows: the protocol's scoring, the model's rate, the extra scorers. Each
    optional entry is there only when it applies, so runs without it keep their fingerprint."""
    extra: dict = {"si_sdr_convention": rules.convention, "batches": "equal-length"}  # padded batches: never reused
    if rules.sdr != "sdr":
        extra["headline_sdr"] = rules.sdr
    if _resampled(model):  # not reused from before the rate fix
        extra["resampled"] = [int(model.input_rate), int(model.sample_rate)]
    if clap is not None:
        extra["clap_sha256"] = clap.sha256
    if getattr(model, "sampler", None):  # a sampling system's steps and seed change every estimate
        extra["sampler"] = model.sampler
    if fad is not None:  # the rows then carry FAD embeddings
        extra["fad_sha256"] = fad.sha256
    if judge is not None:
        extra["judge_sha256"] = judge.sha256
        extra["judge_config_sha256"] = judge.config_sha256
    if getattr(model, "config_sha256", None):  # SAM Audio: its config.json sets what the weights do not
        extra["checkpoint_config_sha256"] = model.config_sha256
    return extra


def _fingerprint(base: dict, plan: VariantPlan) -> str:
    content = {**base, "variant": plan.variant, "reference": plan.reference, "queries": plan.queries,
               "labels": plan.labels, "references": plan.references}
    if plan.negatives is not None:
        content["negatives"] = plan.negatives
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _stderr(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


# --- checks (before any work) ---------------------------------------------------------------------------------


def check_config(config: RunConfig) -> list[str]:
    """Refuse bad options before anything is read or built; returns the parsed controls."""
    if config.limit is not None and (isinstance(config.limit, bool) or config.limit < 1):
        raise LassbenchError(f"--limit {config.limit}: give a positive number of items (leave it out for all)")
    if config.batch_size is not None and config.batch_size < 1:
        raise LassbenchError(f"--batch-size {config.batch_size}: must be at least 1")
    if config.workers is not None and config.workers < 0:
        raise LassbenchError(f"--workers {config.workers}: must be 0 (read in this process) or more")
    check_device(config.device)
    return parse_controls(config.control)


def check_device(device: str) -> None:
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise LassbenchError(f"--device {device!r}: not a device (use cpu, cuda, cuda:N or mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise LassbenchError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise LassbenchError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise LassbenchError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise LassbenchError(f"--device {device!r}: unsupported device type (use cpu, cuda, cuda:N or mps)")


def check_out(out: str | Path) -> None:
    """The results folder can be created and written to (checked now, not after all the separating)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise LassbenchError(f"{path}: --out exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise LassbenchError(f"{path}: cannot write results there ({exc.strerror or exc})") from None


def _benchmark_rate(dataset: dict, items: pd.DataFrame, data_dir: Path) -> int:
    """The rate of the items' audio: ``sample_rate`` of the manifest, else of dataset.json, else the first mixture's
    header."""
    if "sample_rate" in items and items["sample_rate"].notna().any():
        return int(items["sample_rate"].dropna().iloc[0])
    if dataset.get("sample_rate"):
        return int(dataset["sample_rate"])
    return audio_info(data_dir / "mixture" / f"{items['id'].iloc[0]}.wav").sample_rate


def _resampled(model) -> bool:
    rate = getattr(model, "sample_rate", None)
    return rate is not None and getattr(model, "input_rate", rate) != rate


def _load_system(name: str, checkpoint: str | None, device: str, text_encoder: str | None = None):
    entry = get_model_entry(name)
    if not entry.trainable and entry.published is None:
        return build_model(name, sized_config("tiny")).to(device).eval(), None
    path = Path(checkpoint) if checkpoint else entry.shipped_checkpoint()
    if path is None:
        raise LassbenchError(
            f"no checkpoint ships for '{name}': train one (`lassbench train {name} --data DIR --out RUN`) "
            f"and pass --checkpoint RUN/model.pt"
        )
    model, info = load_model(path, expected=name, device=device, text_encoder=text_encoder)
    # a checkpoint folder (SAM Audio's) is hashed and sized by the weights file read from it
    return model, Path(info.get("weights", path))


def _split_size(manifest: pd.DataFrame, split: str) -> int:
    """Items of ``split`` in the manifest (all of them when it has no split column), before any --limit."""
    if "split" in manifest and split:
        return int((manifest["split"] == split).sum())
    return len(manifest)


def _select_items(data_dir: Path, split: str, limit: int | None, manifest: pd.DataFrame | None = None
                  ) -> pd.DataFrame:
    items = read_item_manifest(data_dir / "manifest.csv") if manifest is None else manifest
    ids = items["id"].astype(str)
    check_unique_ids(ids, data_dir / "manifest.csv")  # read_item_manifest checked that each is a safe file stem
    if "split" in items and split:
        items = items[items["split"] == split]
    if items.empty:
        raise LassbenchError(f"{data_dir}: no items of split '{split}'")
    items = _with_list_columns(items.iloc[:limit] if limit else items)
    return items.reset_index(drop=True)


def _with_list_columns(items: pd.DataFrame) -> pd.DataFrame:
    items = items.copy()
    if "labels" not in items:
        items["labels"] = [[] for _ in range(len(items))]
    if "captions" not in items:
        items["captions"] = [[q] for q in items["query"]]
    return items


def read_sources_of(dataset: dict, data_dir: Path) -> pd.DataFrame | None:
    """The source manifest a benchmark was built from, when dataset.json's sources origin still leads to it
    (older relative origins are looked up as :func:`lassbench.manifests.locate_sources` does)."""
    from lassbench.corpora import resolve_sources

    origin = locate_sources(data_dir, dataset)
    return resolve_sources(origin).frame if origin else None


def _run_info(session: _Session, plan: VariantPlan, wall: float, n_items: int, fingerprint: str,
              with_fad: bool, separated_now: int) -> dict:
    """run.json: the system, its checkpoint and text encoder, the benchmark, how it ran (written last)."""
    config, model, checkpoint, variant = session.config, session.model, session.checkpoint, plan.variant
    text_encoder = getattr(getattr(model, "config", None), "text_encoder", None) if session.query_type in (
        "caption", "tags") else None
    text_encoder = text_encoder or getattr(model, "tokenizer_source", None)
    info = {
        "model": config.model,
        "system": config.model if variant == "default" else f"{config.model}@{variant}",
        "variant": variant,
        "query_type": "tags" if variant == "tags" else session.query_type,
        "params": count_parameters(model),
        "checkpoint": _checkpoint_label(checkpoint),
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint else None,
        "checkpoint_bytes": Path(checkpoint).stat().st_size if checkpoint else None,
        "text_encoder": text_encoder,
        "benchmark": session.benchmark,
        "split": config.split,
        "protocol": session.dataset.get("protocol"),
        "lassbench_version": __version__,
        "wall_time_s": round(wall, 2),
        # this session's wall time over the items it separated (a resumed run's earlier items are not in `wall`)
        "seconds_per_item": round(wall / separated_now, 3) if separated_now > 0 else None,
        "date": date.today().isoformat(),
        "n_items": n_items,
        "device": config.device,
        **({"model_sample_rate": int(model.sample_rate)} if _resampled(model) else {}),
        **({"sampler": model.sampler} if getattr(model, "sampler", None) else {}),
        **({"checkpoint_config_sha256": model.config_sha256} if getattr(model, "config_sha256", None) else {}),
        "scored_against": plan.reference, "world_size": session.dist.world, "fingerprint": fingerprint,
    }
    extras = {"subset": session.selection.subset, "clap": session.clap.info if session.clap is not None else None,
              "fad": session.fad.info if with_fad else None,
              "judge": session.judge.info if session.judge is not None else None}
    return {**info, **{key: value for key, value in extras.items() if value is not None}}


def _checkpoint_label(checkpoint: Path | None) -> str | None:
    """Shipped checkpoints are named by file (the same on every machine); others by the path given."""
    from lassbench.models.registry import CHECKPOINT_DIR

    if checkpoint is None:
        return None
    if Path(checkpoint).resolve().parent == CHECKPOINT_DIR:
        return f"shipped:{Path(checkpoint).name}"
    return str(checkpoint)
