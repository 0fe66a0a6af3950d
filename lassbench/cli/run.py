"""``lassbench run``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lassbench.cli.sampler_options import sampler_options

if TYPE_CHECKING:
    from lassbench.run import RunOutcome


@click.command("run")
@click.argument("model")
@click.option("--data", default=None, type=click.Path(),
              help="Built benchmark folder; a corpus folder from `lassbench download packaged|audiocaps` (its "
                   "benchmark is built once inside it); or 'real' (real recordings, docs/real-corpus.md: found in "
                   "data/real or the cache, downloaded only when absent). Default: the embedded synth benchmark "
                   "(built on first use, offline).")
@click.option("--split", default="test", show_default=True)
@click.option("--checkpoint", default=None, type=click.Path(),
              help="Default: the checkpoint shipped for MODEL. Published systems: their released file (sam-audio: "
                   "its folder with config.json), never downloaded (docs/models.md).")
@click.option("--out", default="results", show_default=True, type=click.Path(),
              help="Results go to OUT/<benchmark>/<system>/.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps.")
@click.option("--batch-size", default=None, type=int,
              help="Items separated together. Default: 8 on CUDA or MPS; on CPU 8 for a small separator (under "
                   "5 M parameters, e.g. the shipped tiny models) and 1 for a full-size one (AudioSep, LASS-Net), "
                   "whose memory then stays at one item's. A batch only holds items of the same length, so scores "
                   "do not depend on it.")
@click.option("--workers", default=None, type=int,
              help="Processes reading items ahead of the model (0: read in this process). "
                   "Default: min(2, CPU cores - 1).")
@click.option("--control", "controls", multiple=True,
              help="Query controls, each a variant row (repeat or comma-separate): wrong-query (another item's "
                   "caption), absent (a sound not in the mixture: false-separation level), interferer (the first "
                   "interferer's caption, scored against it), negative (the benchmark's negative_query).")
@click.option("--queries", type=click.Choice(["caption", "all"]), default="caption", show_default=True,
              help="all: query-robustness study (other captions, tags, paraphrases, wrong query).")
@click.option("--save-audio", is_flag=True, help="Keep the estimates under OUT/.../estimates/.")
@click.option("--limit", type=int, default=None,
              help="Only the first N items (quick look). Results go to OUT/<benchmark>/<system>+firstN/, beside "
                   "the full run, never over it; the leaderboard lists them unranked.")
@click.option("--replace", is_flag=True,
              help="Overwrite a finished result in the same folder that scored another item set (e.g. after the "
                   "benchmark was rebuilt); without it such a run is refused.")
@click.option("--clap", default=None, help="Also score reference-free CLAPScore with this CLAP checkpoint (folder "
              "or hub name, e.g. laion/clap-htsat-unfused); see docs/evaluation.md.")
@click.option("--judge", default=None, type=click.Path(), help="Also score reference-free with the SAM Audio judge "
              "(overall, recall, precision, faithfulness of each estimate given its mixture and query): its local "
              "folder (config.json, checkpoint.pt and the tokenizer files); never downloaded. See docs/metrics.md.")
@click.option("--fad", default=None, type=click.Path(), help="Also compute FAD (Fréchet Audio Distance) of the "
              "estimates against the references, with its bootstrap CI, embedding with this local model: a CLAP "
              "checkpoint folder or a VGGish state-dict file (torchvggish layout); never downloaded. See "
              "docs/metrics.md.")
@click.option("--text-encoder", default=None, type=click.Path(),
              help="Published systems (lassnet-release, audiosep, ...): their tokenizer folder (docs/models.md).")
@sampler_options
def command(model: str, data: str | None, split: str, checkpoint: str | None, out: str, device: str,
            batch_size: int | None, workers: int | None, controls: tuple[str, ...], queries: str, save_audio: bool,
            limit: int | None, replace: bool, clap: str | None, judge: str | None, fad: str | None,
            text_encoder: str | None, steps: int | None, sampler_seed: int | None) -> None:
    """Separate a benchmark with MODEL, score it (SDR, SDRi, SI-SDR, SI-SDRi with 95% CIs), write results.

    MODEL is one of `lassbench models`: lassnet, tag-queried, class-conditioned, or the references mixture,
    oracle-irm, oracle-ibm. Scores are appended batch by batch: an interrupted run resumes where it stopped when
    the same command is run again. Under `torchrun --nproc_per_node N -m lassbench run ...` the processes share
    the items and the first one writes the one result. One run at a time writes into an --out folder (a second
    is refused); a run over other items (--limit, --split) gets its own result folder.
    """
    announced = _announce_first_use(data)  # before the heavy imports below: a first run says what it waits for
    from lassbench.run import RunConfig, run_model

    try:
        outcomes = run_model(RunConfig(model=model, data=data, split=split, checkpoint=checkpoint, out=out,
                                       device=device, batch_size=batch_size, control=list(controls),
                                       queries=queries, save_audio=save_audio, limit=limit, replace=replace,
                                       workers=workers, text_encoder=text_encoder, clap=clap, fad=fad,
                                       judge=judge, steps=steps, sampler_seed=sampler_seed),
                             log=lambda line: line == announced or click.echo(line, err=True))
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the entry point prints which and exits 128 + signal
        from lassbench.cli import Interrupted

        raise Interrupted(f"the batches already scored are kept under {Path(out)}/<benchmark>/<system>/.partial; "
                          "rerun the same command to resume") from exc
    if outcomes:  # under torchrun only the first process reports
        click.echo(outcome_report(outcomes))


def outcome_report(outcomes: list[RunOutcome]) -> str:
    """Main table per variant, then each variant against the main run: the SDRi drop, the SDRi of the
    interferer-scored controls, the false-separation level of ``absent``."""
    from lassbench.controls import QUIET_THRESHOLD_DB
    from lassbench.summary import format_table

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


FIRST_USE_NOTE = "building the embedded synth benchmark (first use; later runs reuse it)..."


def _announce_first_use(data: str | None) -> str | None:
    """Print the first-use note now (importing torch takes seconds) when the synth benchmark is not built yet."""
    from lassbench.paths import cache_dir

    if data is not None or (cache_dir() / "benchmarks" / "synth" / "dataset.json").is_file():
        return None
    click.echo(FIRST_USE_NOTE, err=True)
    return FIRST_USE_NOTE
