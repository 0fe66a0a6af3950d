"""``lassbench run MODEL``: separate a built benchmark with a model of the zoo, score it, write the results.

Results go to ``OUT/<benchmark>/<system>/{per_item.csv, summary.json, run.json}`` where ``system`` is the model name
for the main run and ``<model>@<variant>`` for the controls and the query-robustness study:

* ``wrong-query``: each item's query is swapped for the caption of another item with a different target clip; a model
  that listens to language loses SDRi.
* ``--queries all`` (text-queried models): ``caption`` (the benchmark's query), ``caption-2``.. (each other human
  caption of the same clip), ``tags`` (class labels only), ``paraphrase`` (wordings never used in training, where the
  corpus has them) and ``wrong-query``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from lassbench import __version__
from lassbench.audio import read_audio, sha256_file, write_audio, write_text_atomic
from lassbench.errors import LassbenchError
from lassbench.evaluate import breakdowns, evaluate_arrays, format_table, summarize, write_results
from lassbench.manifests import built_benchmark_dir, decode_list, read_dataset_json, read_item_manifest
from lassbench.models.lassnet import QueryBatch, sized_config
from lassbench.models.registry import build_model, count_parameters, get_model_entry, load_model

MAIN_METRICS = ("sdr", "sdri", "si_sdr", "si_sdri")


@dataclass
class RunConfig:
    model: str
    data: str | None = None  # built benchmark folder; None: the embedded synth benchmark
    split: str = "test"
    checkpoint: str | None = None  # None: the checkpoint shipped with lassbench
    out: str = "results"
    device: str = "cpu"
    batch_size: int = 8
    control: str | None = None  # "wrong-query"
    queries: str = "caption"  # "caption" | "all"
    save_audio: bool = False
    limit: int | None = None
    seed: int = 0


@dataclass
class RunOutcome:
    variant: str
    out_dir: Path
    summary: dict
    run_info: dict = field(default_factory=dict)


def run_model(config: RunConfig) -> list[RunOutcome]:
    """Separate + score; one outcome per variant (the main run first)."""
    entry = get_model_entry(config.model)
    data_dir = _resolve_data(config.data)
    dataset = read_dataset_json(data_dir)
    items = _select_items(data_dir, config.split, config.limit)
    model, checkpoint = _load_system(config.model, config.checkpoint, config.device)
    variants = _variants(entry.query_type, config)
    sources = _paraphrase_lookup(dataset) if "paraphrase" in variants else {}
    benchmark = dataset.get("name") or data_dir.name
    outcomes = []
    for variant in variants:
        queries = variant_queries(items, variant, paraphrases=sources, seed=config.seed)
        if queries is None:
            continue
        started = time.time()
        system = config.model if variant == "default" else f"{config.model}@{variant}"
        out_dir = Path(config.out) / benchmark / system
        per_item = _separate_and_score(model, items, queries, data_dir, config, out_dir)
        scored = [m for m in MAIN_METRICS if m in per_item.columns]
        summary = summarize(per_item, scored)
        summary["breakdowns"] = breakdowns(per_item, scored)
        summary.update(benchmark=benchmark, protocol=dataset.get("protocol"), lassbench_version=__version__)
        info = _run_info(config, entry.query_type, model, checkpoint, dataset, benchmark, variant,
                         time.time() - started, len(per_item))
        write_results(per_item, summary, out_dir)
        write_text_atomic(out_dir / "run.json", json.dumps(info, indent=2) + "\n")
        outcomes.append(RunOutcome(variant, out_dir, summary, info))
    return outcomes


def variant_queries(items: pd.DataFrame, variant: str, *, paraphrases: dict | None = None,
                    seed: int = 0) -> list[str] | None:
    """The query of every item under ``variant``; None when the benchmark cannot provide that variant."""
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


def _variants(query_type: str, config: RunConfig) -> list[str]:
    if config.queries == "all":
        if query_type != "caption":
            raise LassbenchError("--queries all needs a text-queried model (e.g. lassnet)")
        return ["default", *[f"caption-{k}" for k in range(2, 6)], "tags", "paraphrase", "wrong-query"]
    if config.queries != "caption":
        raise LassbenchError(f"--queries must be 'caption' or 'all', not '{config.queries}'")
    variants = ["default"]
    if config.control == "wrong-query":
        if query_type != "caption":
            raise LassbenchError("--control wrong-query needs a text-queried model (e.g. lassnet)")
        variants.append("wrong-query")
    elif config.control:
        raise LassbenchError(f"unknown control '{config.control}' (known: wrong-query)")
    return variants


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


def _separate_and_score(model, items: pd.DataFrame, queries: list[str], data_dir: Path, config: RunConfig,
                        out_dir: Path) -> pd.DataFrame:
    scored = []
    bar = tqdm(total=len(items), desc=f"separate {config.model}", unit="item", dynamic_ncols=True)
    for batch_items, mixture, target, query_batch in _batches(items, queries, data_dir, config.batch_size):
        with torch.no_grad():
            estimate = model(mixture.to(config.device), query_batch.to_device(config.device)).cpu().numpy()
        for row, mix, ref, est in zip(batch_items.itertuples(), mixture.numpy(), target.numpy(), estimate,
                                      strict=True):
            scored.append((row.id, ref, est, mix))
            if config.save_audio:
                write_audio(out_dir / "estimates" / f"{row.id}.wav", est, int(row.sample_rate))
        bar.update(len(batch_items))
    bar.close()
    per_item = evaluate_arrays(scored, metrics=list(MAIN_METRICS))
    extra = items.set_index("id").loc[per_item["item"]]
    for column in ("snr_db", "condition", "labels"):
        if column in extra:
            per_item[column] = list(extra[column])
    per_item["query"] = queries_by_id(items, queries, per_item["item"])
    return per_item


def queries_by_id(items: pd.DataFrame, queries: list[str], ids) -> list[str]:
    lookup = dict(zip(items["id"], queries, strict=True))
    return [lookup[i] for i in ids]


def _batches(items: pd.DataFrame, queries: list[str], data_dir: Path,
             batch_size: int) -> Iterator[tuple[pd.DataFrame, torch.Tensor, torch.Tensor, QueryBatch]]:
    for start in range(0, len(items), batch_size):
        chunk = items.iloc[start:start + batch_size]
        mixtures = [read_audio(data_dir / "mixture" / f"{i}.wav")[0] for i in chunk["id"]]
        targets = [read_audio(data_dir / "target" / f"{i}.wav")[0] for i in chunk["id"]]
        length = max(len(m) for m in mixtures)
        batch = QueryBatch(
            queries=queries[start:start + batch_size],
            labels=[list(labels) for labels in chunk["labels"]],
            targets=_stack(targets, length),
        )
        yield chunk, _stack(mixtures, length), batch.targets, batch


def _stack(arrays: list[np.ndarray], length: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.pad(a, (0, length - len(a))) for a in arrays]))


def _load_system(name: str, checkpoint: str | None, device: str):
    entry = get_model_entry(name)
    if not entry.trainable:
        return build_model(name, sized_config("tiny")).to(device).eval(), None
    path = Path(checkpoint) if checkpoint else entry.shipped_checkpoint()
    if path is None:
        raise LassbenchError(
            f"no checkpoint ships for '{name}': train one (`lassbench train {name} --data DIR --out RUN`) "
            f"and pass --checkpoint RUN/model.pt"
        )
    model, _ = load_model(path, expected=name, device=device)
    return model, path


def _resolve_data(data: str | None) -> Path:
    if data is None:
        from lassbench.build import default_benchmark

        return Path(default_benchmark())
    return built_benchmark_dir(data)


def _select_items(data_dir: Path, split: str, limit: int | None) -> pd.DataFrame:
    items = read_item_manifest(data_dir / "manifest.csv")
    if "split" in items and split:
        items = items[items["split"] == split]
    if items.empty:
        raise LassbenchError(f"{data_dir}: no items of split '{split}'")
    if "labels" not in items:
        items["labels"] = [[] for _ in range(len(items))]
    if "captions" not in items:
        items["captions"] = [[q] for q in items["query"]]
    return items.iloc[:limit].reset_index(drop=True) if limit else items.reset_index(drop=True)


def _paraphrase_lookup(dataset: dict) -> dict[str, list[str]]:
    """target source_id -> paraphrases, from the sources the benchmark was built from (if they have them)."""
    from lassbench.corpora import resolve_sources

    origin = (dataset.get("sources") or {}).get("origin")
    if not origin or (origin != "synth" and not Path(origin).exists()):
        return {}
    frame = resolve_sources(origin).frame
    if "paraphrases" not in frame:
        return {}
    return {sid: decode_list(p) for sid, p in zip(frame["source_id"], frame["paraphrases"], strict=True)}


def _run_info(config: RunConfig, query_type: str, model, checkpoint: Path | None, dataset: dict, benchmark: str,
              variant: str, wall: float, n_items: int) -> dict:
    text_encoder = getattr(getattr(model, "config", None), "text_encoder", None) if query_type in (
        "caption", "tags") else None
    return {
        "model": config.model,
        "system": config.model if variant == "default" else f"{config.model}@{variant}",
        "variant": variant,
        "query_type": "tags" if variant == "tags" else query_type,
        "params": count_parameters(model),
        "checkpoint": _checkpoint_label(checkpoint),
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint else None,
        "text_encoder": text_encoder,
        "benchmark": benchmark,
        "split": config.split,
        "protocol": dataset.get("protocol"),
        "lassbench_version": __version__,
        "wall_time_s": round(wall, 2),
        "date": date.today().isoformat(),
        "n_items": n_items,
        "device": config.device,
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
    """Main table per variant, then the SDRi drop of each variant against the main run."""
    lines = []
    for outcome in outcomes:
        lines.append(f"== {outcome.run_info['system']} on {outcome.run_info['benchmark']} "
                     f"({outcome.run_info['n_items']} items) -> {outcome.out_dir}")
        lines.append(format_table(outcome.summary))
    if len(outcomes) > 1:
        base = outcomes[0].summary["metrics"]["sdri"]["mean"]
        lines.append("SDRi by query variant (drop vs. the benchmark's query):")
        for outcome in outcomes:
            value = outcome.summary["metrics"]["sdri"]["mean"]
            lines.append(f"  {outcome.variant:<12} {value:7.2f} dB   ({value - base:+.2f})")
    return "\n".join(lines)
