"""``lassbench run MODEL``: separate a built benchmark with a model of the zoo, score it, write the results.

Results go to ``OUT/<benchmark>/<system>/{per_item.csv, summary.json, run.json}`` where ``system`` is the model name
for the main run and ``<model>@<variant>`` for the controls and the query-robustness study:

* ``wrong-query``: each item's query is swapped for the caption of another item with a different target clip; a model
  that listens to language loses SDRi.
* ``--queries all`` (text-queried models): ``caption`` (the benchmark's query), ``caption-2``.. (each other human
  caption of the same clip), ``tags`` (class labels only), ``paraphrase`` (wordings never used in training, where the
  corpus has them) and ``wrong-query``.
* ``absent``, ``interferer``, ``negative``: the query controls of :mod:`lassbench.controls`.

Separation streams (:mod:`lassbench.run_stream`): batches are read ahead by DataLoader workers, scored as they finish
and appended to a partial file, so memory does not grow with the number of items, an interrupted run resumes, and
under torchrun every rank takes its share of the batches while rank 0 merges one result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from lassbench import __version__
from lassbench.audio import audio_info, sha256_file, sweep_stale_temps, write_text_atomic
from lassbench.benchmark_data import SYNTH_FIRST_USE_NOTE, resolve_benchmark
from lassbench.controls import (
    FALSE_SEPARATION_DEFINITIONS,
    FALSE_SEPARATION_METRICS,
    QUIET_THRESHOLD_DB,
    SkipVariant,
    VariantPlan,
    absent_plan,
    clip_lookup,
    interferer_plan,
    negative_plan,
    parse_controls,
    target_plan,
)
from lassbench.corpora.packaged import UNSEEN_SPLIT
from lassbench.distributed import Distributed, all_ranks_ok, barrier, init_distributed, process_device
from lassbench.errors import LassbenchError
from lassbench.fad import fad_scorer
from lassbench.manifests import (
    check_unique_ids,
    decode_list,
    locate_sources,
    read_dataset_json,
    read_item_manifest,
)
from lassbench.models.lassnet import sized_config
from lassbench.models.registry import (
    build_model,
    check_published_checkpoint,
    count_parameters,
    get_model_entry,
    load_model,
)
from lassbench.result_folders import ItemSelection, exclusive_out, item_selection, refuse_other_item_set
from lassbench.run_stream import (
    PARTIAL_DIR,
    BatchReader,
    Shard,
    done_batches,
    item_shapes,
    merge_partials,
    remove_partials,
    run_shard,
)
from lassbench.summary import (
    ProtocolRules,
    benchmark_summary,
    format_table,
    item_classes,
    protocol_rules,
    write_results,
)


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


@dataclass
class RunOutcome:
    variant: str
    out_dir: Path
    summary: dict
    run_info: dict = field(default_factory=dict)


SMALL_SEPARATOR = 5_000_000  # parameters (text encoder excluded): the shipped tiny models have 1.3 M


def default_batch_size(device: str, parameters: int = 0) -> int:
    """Items separated together: 8 on an accelerator, where a batch keeps the device busy; on CPU, 8 for a small
    separator (a batch shares each layer's fixed cost: faster per item, docs/benchmarks.md) and 1 for a
    full-size one, whose peak memory then stays at one item's. Batches only ever hold items of one length."""
    if torch.device(device).type != "cpu" or parameters < SMALL_SEPARATOR:
        return 8
    return 1


def default_workers() -> int:
    """Reader processes: enough to keep one separator busy on a small machine, none on a single core."""
    return min(2, max(0, (os.cpu_count() or 1) - 1))


def run_model(config: RunConfig, *, log=None) -> list[RunOutcome]:
    """Separate + score; one outcome per variant (the main run first). Under torchrun (``WORLD_SIZE`` > 1) every
    rank separates its share of the batches and rank 0 merges; ranks other than 0 return ``[]``.
    ``log`` gets one line per note (skipped variant, reused result); default: stderr."""
    log = log or _stderr
    entry = get_model_entry(config.model)
    check_published_checkpoint(config.model, config.checkpoint)
    controls = check_config(config)
    if entry.query_type == "class-id" and config.split == UNSEEN_SPLIT:
        raise LassbenchError(f"{config.model}: not applicable on {UNSEEN_SPLIT}, whose classes are none it was "
                             "trained on (a class id exists only for a class seen in training)")
    variants = _variants(entry.query_type, config, controls)
    check_out(config.out)
    with exclusive_out(config.out):
        return _run_locked(config, entry, variants, log)


def _run_locked(config: RunConfig, entry, variants: list[str], log) -> list[RunOutcome]:
    data_dir = _resolve_data(config.data, log)
    dataset = read_dataset_json(data_dir)
    manifest = read_item_manifest(data_dir / "manifest.csv")
    items = _select_items(data_dir, config.split, config.limit, manifest)
    selection = item_selection(config.split, config.limit, len(items), _split_size(manifest, config.split))
    rules = _scoring_rules(dataset, items)
    dist = init_distributed(config.device)
    device = process_device(config.device, dist)
    model, checkpoint = _load_system(config.model, config.checkpoint, device, config.text_encoder)
    if config.batch_size is None:
        config = replace(config, batch_size=default_batch_size(device, count_parameters(model)))
    from lassbench.clapscore import clap_scorer

    clap = clap_scorer(config.clap, device)  # loaded before any separation: a bad checkpoint fails first
    fad = fad_scorer(config.fad, device)
    if hasattr(model, "input_rate"):  # separators resample the benchmark's audio to their own rate
        model.input_rate = _benchmark_rate(dataset, items, data_dir)
    benchmark = dataset.get("name") or data_dir.name
    plans = _plans(items, manifest, variants, dataset, data_dir, config.seed, log)
    plans = [plan for plan in plans if _askable(model, plan, log)]
    shapes = item_shapes(data_dir, list(items["id"]))  # batches hold items of one length: read once for all variants
    if not getattr(model, "takes_negative_query", False):  # only then do negatives reach the model (and fingerprint)
        plans = [dataclasses.replace(plan, negatives=None) for plan in plans]
    base = _base_fingerprint(config, checkpoint, data_dir, device, selection)
    base["si_sdr_convention"] = rules.convention
    if rules.sdr != "sdr":  # only then: runs scored with the energy-ratio headline keep their fingerprint
        base["headline_sdr"] = rules.sdr
    base["batches"] = "equal-length"  # rows of padded batches (earlier versions) are never reused
    if _resampled(model):  # only then: runs at the model's own rate keep their fingerprint
        base["resampled"] = [int(model.input_rate), int(model.sample_rate)]  # not reused from before the rate fix
    if clap is not None:  # only then: runs without CLAP keep their fingerprint
        base["clap_sha256"] = clap.sha256
    if fad is not None:  # likewise: the rows then carry FAD embeddings
        base["fad_sha256"] = fad.sha256
    outcomes = []
    for plan in plans:
        outcome = _run_variant(model, plan, items, config, entry.query_type, checkpoint, dataset, benchmark,
                               data_dir, base, dist, device, log, rules, clap=clap, selection=selection, fad=fad,
                               shapes=shapes)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _run_variant(model, plan: VariantPlan, items: pd.DataFrame, config: RunConfig, query_type: str,
                 checkpoint: Path | None, dataset: dict, benchmark: str, data_dir: Path, base: dict,
                 dist: Distributed, device: str, log, rules: ProtocolRules, clap=None,
                 selection: ItemSelection | None = None, fad=None,
                 shapes: list[tuple[int, int]] | None = None) -> RunOutcome | None:
    started = time.time()
    selection = selection or ItemSelection()
    system = config.model if plan.variant == "default" else f"{config.model}@{plan.variant}"
    out_dir = Path(config.out) / benchmark / (system + selection.key)
    fingerprint = _fingerprint(base, plan)
    finished = _finished(out_dir, fingerprint)
    if finished is not None:
        if dist.rank == 0:
            log(f"{out_dir}: kept the results of an identical finished run (delete the folder to run it again)")
        return finished if dist.rank == 0 else None
    refuse_other_item_set(out_dir, items["id"], replace=config.replace)  # every rank: none starts separating
    partial = out_dir / PARTIAL_DIR
    if dist.rank == 0:  # temp files a run killed with SIGKILL left (those of live writers are kept)
        sweep_stale_temps(out_dir)
        sweep_stale_temps(out_dir / "estimates")
        if config.save_audio and not done_batches(partial, fingerprint):
            # a new run, not a resume: estimates another run left must not sit beside this run's
            shutil.rmtree(out_dir / "estimates", ignore_errors=True)
    barrier(dist)
    reader = BatchReader(data_dir, list(items["id"]), plan, config.batch_size, shapes)
    workers = default_workers() if config.workers is None else config.workers
    failure = None
    try:
        run_shard(model, reader, partial, fingerprint, shard=Shard(dist.rank, dist.world), metrics=rules.metrics,
                  workers=workers, device=device, desc=f"separate {system}",
                  estimates_dir=out_dir / "estimates" if config.save_audio else None, clap=clap,
                  convention=rules.convention, fad=fad)
    except (LassbenchError, OSError) as exc:
        failure = exc
    if not all_ranks_ok(failure is None, dist, device):
        if failure is not None:
            raise failure
        raise LassbenchError(f"another process failed while separating {system}; see its message above")
    if dist.rank != 0:
        barrier(dist)
        return None
    rows = merge_partials(partial, fingerprint, len(reader), order=reader.ids)
    fad_stats = fad.score_rows(rows) if fad is not None and not plan.scores_false_separation else None
    per_item = _per_item(rows, items, plan)
    names = [c for c in (*rules.metrics, *FALSE_SEPARATION_METRICS) if c in per_item.columns]
    clap_names = [c for c in (clap.score_name, clap.improvement_name) if c in per_item.columns] if clap else []
    summary = benchmark_summary(
        per_item, names, rules, dataset, benchmark=benchmark, reference_free=clap_names,
        definitions={k: v for k, v in FALSE_SEPARATION_DEFINITIONS.items() if k in names},
        clap=clap.info if clap is not None else None, fad=(fad, fad_stats) if fad_stats is not None else None,
        subset=selection.subset)
    info = _run_info(config, query_type, model, checkpoint, dataset, benchmark, plan.variant,
                     time.time() - started, len(per_item))
    info.update(scored_against=plan.reference, world_size=dist.world, fingerprint=fingerprint)
    if selection.subset is not None:
        info["subset"] = selection.subset
    if clap is not None:
        info["clap"] = clap.info
    if fad_stats is not None:
        info["fad"] = fad.info
    write_results(per_item, summary, out_dir)
    write_text_atomic(out_dir / "run.json", json.dumps(info, indent=2) + "\n")  # last: marks the variant finished
    remove_partials(partial)
    barrier(dist)
    return RunOutcome(plan.variant, out_dir, summary, info)


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


# --- variants -------------------------------------------------------------------------------------------------


def _plans(items: pd.DataFrame, manifest: pd.DataFrame, variants: list[str], dataset: dict, data_dir: Path,
           seed: int, log) -> list[VariantPlan]:
    """The plan of every variant the benchmark can provide; the others are skipped with a note."""
    needs_sources = {"paraphrase", "absent", "interferer", "negative"} & set(variants)
    sources = read_sources_of(dataset, data_dir) if needs_sources else None
    clips = clip_lookup(_with_list_columns(manifest), sources) if needs_sources else {}
    paraphrases = _paraphrases(sources) if "paraphrase" in variants else {}
    plans = []
    for variant in variants:
        try:
            plans.append(_plan(items, variant, clips, paraphrases, data_dir, seed))
        except SkipVariant as exc:
            log(f"skipped variant {exc}")
    return plans


def _askable(model, plan: VariantPlan, log) -> bool:
    """A class-conditioned model can only be asked for a class it knows: check every item now, not mid-run."""
    known = getattr(model, "class_index", None)
    if known is None:
        return True
    unknown = sorted({labels[0] if labels else "(none)" for labels in plan.labels} - set(known))
    if unknown and plan.variant == "default":  # the main run cannot be skipped
        raise LassbenchError(f"the class-conditioned model does not know class(es) {', '.join(unknown[:5])}; "
                             f"it knows {', '.join(sorted(known))}")
    if unknown:
        log(f"skipped variant {plan.variant}: the class-conditioned model does not know class(es) "
            f"{', '.join(unknown[:5])}")
    return not unknown


def _plan(items: pd.DataFrame, variant: str, clips: dict, paraphrases: dict, data_dir: Path,
          seed: int) -> VariantPlan:
    if variant == "absent":
        return absent_plan(items, clips, seed)
    if variant == "interferer":
        return interferer_plan(items, clips, data_dir)
    if variant == "negative":
        return negative_plan(items, clips, data_dir)
    queries = variant_queries(items, variant, paraphrases=paraphrases, seed=seed)
    if queries is None:
        raise SkipVariant(f"{variant}: the benchmark cannot provide it (no such captions, tags or paraphrases)")
    return target_plan(items, variant, queries)


def variant_queries(items: pd.DataFrame, variant: str, *, paraphrases: dict | None = None,
                    seed: int = 0) -> list[str] | None:
    """The query of every item under ``variant``; None when the benchmark cannot provide that variant."""
    if variant in ("wrong-query", "paraphrase") and "target_id" not in items:
        return None  # an `id,query` manifest (real mixtures): no target clip to tell items apart by
    if variant in ("default", "caption"):
        return list(items["query"])
    if variant == "tags":
        return [", ".join(labels) if labels else "" for labels in items["labels"]] if _all_labelled(items) else None
    if variant == "wrong-query":
        return list(items["query"].iloc[_wrong_query_permutation(items["target_id"].tolist(), seed)])
    if variant.startswith("caption-"):
        k = int(variant.removeprefix("caption-")) - 1
        return _other_caption(items, k)
    if variant == "paraphrase":
        lookup = paraphrases or {}
        if not all(lookup.get(t) for t in items["target_id"]):
            return None
        return [lookup[t][i % len(lookup[t])] for i, t in enumerate(items["target_id"])]
    raise LassbenchError(f"unknown query variant '{variant}'")


def _variants(query_type: str, config: RunConfig, controls: list[str]) -> list[str]:
    if config.queries not in ("caption", "all"):
        raise LassbenchError(f"--queries must be 'caption' or 'all', not '{config.queries}'")
    if config.queries == "all" and query_type != "caption":
        raise LassbenchError("--queries all needs a text-queried model (e.g. lassnet)")
    if "wrong-query" in controls and query_type != "caption":
        raise LassbenchError("--control wrong-query needs a text-queried model (e.g. lassnet)")
    variants = ["default"]
    if config.queries == "all":
        variants += [*[f"caption-{k}" for k in range(2, 6)], "tags", "paraphrase", "wrong-query"]
    return variants + [c for c in controls if c not in variants]


def _other_caption(items: pd.DataFrame, k: int) -> list[str] | None:
    """The k-th caption of the clip other than the query (k=1: the first other one)."""
    queries = []
    for query, captions in zip(items["query"], items["captions"], strict=True):
        others = [c for c in captions if c != query]
        if k < 1 or len(others) < k:
            return None
        queries.append(others[k - 1])
    return queries


def _wrong_query_permutation(target_ids: list[str], seed: int) -> np.ndarray:
    """A permutation sending every item to an item with a different target clip.

    Items are shuffled, grouped by target, then rotated by the largest group's size: no item lands in its own group
    as long as no target holds more than half of the items (otherwise as few as possible do).
    """
    n = len(target_ids)
    shuffled = np.random.default_rng(seed).permutation(n)
    order = sorted(shuffled, key=lambda i: target_ids[i])  # stable: random order within a target
    shift = max(pd.Series(target_ids).value_counts().max(), 1) if n else 0
    perm = np.empty(n, dtype=int)
    for position, item in enumerate(order):
        perm[item] = order[(position + shift) % n]
    return perm


def _all_labelled(items: pd.DataFrame) -> bool:
    return "labels" in items and all(bool(labels) for labels in items["labels"])


def queries_by_id(items: pd.DataFrame, queries: list[str], ids) -> list[str]:
    lookup = dict(zip(items["id"], queries, strict=True))
    return [lookup[i] for i in ids]


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
    model, _ = load_model(path, expected=name, device=device, text_encoder=text_encoder)
    return model, path


FIRST_USE_NOTE = SYNTH_FIRST_USE_NOTE  # = cli.run's


def _resolve_data(data: str | None, log) -> Path:
    return resolve_benchmark(data, log)


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


def _paraphrases(sources: pd.DataFrame | None) -> dict[str, list[str]]:
    """target source_id -> paraphrases, from the sources the benchmark was built from (if they have them)."""
    if sources is None or "paraphrases" not in sources:
        return {}
    return {sid: decode_list(p) for sid, p in zip(sources["source_id"], sources["paraphrases"], strict=True)}


def _run_info(config: RunConfig, query_type: str, model, checkpoint: Path | None, dataset: dict, benchmark: str,
              variant: str, wall: float, n_items: int) -> dict:
    text_encoder = getattr(getattr(model, "config", None), "text_encoder", None) if query_type in (
        "caption", "tags") else None
    text_encoder = text_encoder or getattr(model, "tokenizer_source", None)
    return {
        "model": config.model,
        "system": config.model if variant == "default" else f"{config.model}@{variant}",
        "variant": variant,
        "query_type": "tags" if variant == "tags" else query_type,
        "params": count_parameters(model),
        "checkpoint": _checkpoint_label(checkpoint),
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint else None,
        "checkpoint_bytes": Path(checkpoint).stat().st_size if checkpoint else None,
        "text_encoder": text_encoder,
        "benchmark": benchmark,
        "split": config.split,
        "protocol": dataset.get("protocol"),
        "lassbench_version": __version__,
        "wall_time_s": round(wall, 2),
        "date": date.today().isoformat(),
        "n_items": n_items,
        "device": config.device,
        **({"model_sample_rate": int(model.sample_rate)} if _resampled(model) else {}),
    }


def _checkpoint_label(checkpoint: Path | None) -> str | None:
    """Shipped checkpoints are named by file (the same on every machine); others by the path given."""
    from lassbench.models.registry import CHECKPOINT_DIR

    if checkpoint is None:
        return None
    if Path(checkpoint).resolve().parent == CHECKPOINT_DIR:
        return f"shipped:{Path(checkpoint).name}"
    return str(checkpoint)


def print_outcomes(outcomes: list[RunOutcome]) -> str:
    """Main table per variant, then each variant against the main run: the SDRi drop, the SDRi of the
    interferer-scored controls, the false-separation level of ``absent``."""
    lines = []
    for outcome in outcomes:
        lines.append(f"== {outcome.run_info['system']} on {outcome.run_info['benchmark']} "
                     f"({outcome.run_info['n_items']} items) -> {outcome.out_dir}")
        lines.append(format_table(outcome.summary))
    if len(outcomes) > 1:
        sdri = outcomes[0].summary.get("headline", {}).get("sdri", "sdri")  # CLAPSep's: bss_sdri
        base = outcomes[0].summary["metrics"].get(sdri, {}).get("mean", math.nan)
        lines.append("By query variant (SDRi drop vs. the benchmark's query):")
        for outcome in outcomes:
            metrics = outcome.summary["metrics"]
            if "false_separation_db" in metrics:
                level, share = metrics["false_separation_db"]["mean"], metrics["below_-20db"]["mean"]
                lines.append(f"  {outcome.variant:<12} false-separation level {level:7.2f} dB, "
                             f"{100 * share:.0f}% of items below {QUIET_THRESHOLD_DB:g} dB")
                continue
            value = metrics[sdri]["mean"]
            against = outcome.run_info.get("scored_against", "target")
            note = "   (scored against the interferer)" if against == "interferer" else f"   ({value - base:+.2f})"
            lines.append(f"  {outcome.variant:<12} {value:7.2f} dB{note}")
    return "\n".join(lines)
