"""``lassbench evaluate``: score separated estimates against references (thin wrapper over lassbench.evaluate)."""

from __future__ import annotations

from pathlib import Path

import click

from lassbench.errors import LassbenchError

_EPILOG = """\b
Examples:
  lassbench evaluate --manifest data/synth/manifest.csv --split test --estimates out/lassnet --out results/lassnet
  lassbench evaluate --manifest data/synth/manifest.csv --split test --ids my5.txt --estimates out/five --out r/five
  lassbench evaluate --references ref/ --estimates est/ --mixtures mix/ --out results/x --metrics sdri,bss_sdr

\b
Metrics (default sdr,sdri,si_sdr,si_sdri, plus bss_sdr,bss_sdri on clapsep benchmarks, whose headline SDR they
are; without --mixtures or --manifest: sdr,si_sdr):
  sdr       energy ratio 10log10(|s|^2/|s-ŝ|^2), as the AudioSep / DCASE 2024 evaluators
  sdri      sdr(s, ŝ) - sdr(s, mixture)
  si_sdr    scale-invariant SDR, absolute (AudioSep's "SISDR" column), by protocol: AudioSep's
            calculate_sisdr for audiosep/dcase2024/clapsep benchmarks, else zero-mean (see --si-sdr)
  si_sdri   si_sdr(s, ŝ) - si_sdr(s, mixture)
  si_sdr_zm, si_sdri_zm   zero-mean SI-SDR(i), clipped to ±100 dB, whatever the protocol
  bss_sdr   BSS-Eval SDR, 512-tap filter (= mir_eval / torchmetrics; CLAPSep's "SDR")
  bss_sdri  bss_sdr(s, ŝ) - bss_sdr(s, mixture)
With --clap CKPT (reference-free; needs --manifest; items with an empty target_id get only these):
  clap_score@<sha8>    cos(CLAP(estimate), CLAP(query)); <sha8>: the checkpoint weights' SHA-256 prefix
  clap_score_i@<sha8>  clap_score(estimate) - clap_score(mixture)
With --judge DIR (reference-free; needs --manifest; the SAM Audio judge, higher is better):
  judge_overall, judge_recall, judge_precision, judge_faithfulness
            the judge network's ratings of the estimate given its mixture and query; DIR: the judge's
            local folder (config.json, checkpoint.pt, tokenizer files), never downloaded
With --fad DIR (or --metrics ...,fad with --fad DIR): one value per benchmark, not per item:
  fad@<sha8>  Fréchet Audio Distance between the embeddings of the estimates and of the references
              (lower is better), with a paired bootstrap 95% CI; DIR: a local CLAP checkpoint folder,
              or a VGGish state-dict file (torchvggish layout); <sha8>: the weights' SHA-256 prefix
Writes OUT/per_item.csv and OUT/summary.json and prints the summary table. See docs/metrics.md and
docs/evaluation.md.
"""


@click.command("evaluate", epilog=_EPILOG)
@click.option("--manifest", type=click.Path(path_type=Path), help="Item manifest of a built benchmark "
              "(references target/<id>.wav and mixtures mixture/<id>.wav beside it).")
@click.option("--references", type=click.Path(path_type=Path), help="Folder of reference WAVs (matched by name).")
@click.option("--estimates", type=click.Path(path_type=Path), required=True, help="Folder of estimate WAVs.")
@click.option("--mixtures", type=click.Path(path_type=Path), help="Folder of mixture WAVs (needed for *i metrics).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder for the results.")
@click.option("--metrics", "metric_names", help="Comma-separated metric names (see below).")
@click.option("--align", type=click.Choice(["trim", "pad"]), help="Score items whose lengths differ: cut to the "
              "shortest (trim) or zero-pad to the longest (pad). Default: a length mismatch is an error.")
@click.option("--aggregate", type=click.Choice(["mean", "class-median-mean", "class-mean"]),
              help="Headline statistic: plain mean over items, or the mean over classes (first label) of per-class "
              "medians (AudioSep's AudioSet) or means (AudioSep's MUSIC). Default: what the benchmark's dataset.json "
              "prescribes (--manifest), else mean.")
@click.option("--si-sdr", "si_sdr", type=click.Choice(["zero-mean", "audiosep"]), help="SI-SDR definition of the "
              "si_sdr columns. Default: the benchmark's protocol (--manifest; audiosep for audiosep, dcase2024, "
              "clapsep), else zero-mean.")
@click.option("--clap", help="Also score reference-free with CLAPScore (cos(CLAP(estimate), CLAP(query)) and its "
              "gain over the mixture): a CLAP checkpoint folder or hub name (e.g. laion/clap-htsat-unfused). "
              "Needs --manifest; items with an empty target_id get only these. See docs/evaluation.md.")
@click.option("--judge", type=click.Path(path_type=Path), help="Also score reference-free with the SAM Audio judge "
              "(overall, recall, precision, faithfulness of the estimate given the mixture and the query): its local "
              "folder (config.json, checkpoint.pt and the tokenizer files); never downloaded. Needs --manifest. See "
              "docs/metrics.md.")
@click.option("--fad", type=click.Path(path_type=Path), help="Also compute FAD (Fréchet Audio Distance) of the "
              "estimates against the references, embedding with this local model: a CLAP checkpoint folder or a "
              "VGGish state-dict file (torchvggish layout); never downloaded. See docs/metrics.md.")
@click.option("--split", help="With --manifest: score only the items of this split (e.g. test), so estimates are "
              "needed for those only and the row is comparable with `lassbench run` (which scores test).")
@click.option("--ids", "ids_file", type=click.Path(path_type=Path), help="With --manifest: score only these items "
              "(a file with one id per line, or a CSV with an id column such as a sub-manifest). summary.json and "
              "the leaderboard row say it is a subset.")
@click.option("--limit", type=int, help="With --manifest: score only the first N items (after --split and --ids); "
              "recorded as a subset like --ids.")
def command(manifest, references, estimates, mixtures, out, metric_names, align, aggregate, si_sdr, clap, judge, fad,
            split, ids_file, limit) -> None:
    """Score separated estimates: SDR, SDRi, SI-SDR(i), BSS-Eval SDR, FAD, judge scores, with bootstrap 95% CIs."""
    from lassbench.evaluate import evaluate_folders, evaluate_manifest
    from lassbench.summary import format_table

    metric_names = _without_fad(metric_names, fad)

    if (manifest is None) == (references is None):
        raise LassbenchError("pass either --manifest MANIFEST or --references DIR (not both)")
    if manifest is not None:
        if mixtures is not None:
            raise LassbenchError("--mixtures is read from the manifest's folder; drop it when using --manifest")
        _, summary = evaluate_manifest(manifest, estimates, out=out, metrics=metric_names, align=align,
                                       aggregate=aggregate, progress=True, clap=clap, split=split, convention=si_sdr,
                                       ids=ids_file, limit=limit, fad=fad, judge=judge)
        for name, skipped in summary.get("not_scored", {}).items():
            click.echo(f"not scored: {name} for {skipped['n']} item(s): {skipped['reason']}", err=True)
        if summary.get("subset"):
            click.echo(f"note: scored a subset: {summary['subset']['label']} ({summary['subset']['selection']})",
                       err=True)
    elif split is not None or ids_file is not None or limit is not None:
        raise LassbenchError("--split, --ids and --limit select rows of a manifest: use them with --manifest")
    elif clap is not None or judge is not None:
        option = "--clap" if clap is not None else "--judge"
        raise LassbenchError(f"{option} needs the queries: score a benchmark with --manifest (a CSV with id,query)")
    else:
        _, summary = evaluate_folders(references, estimates, mixtures, out=out, metrics=metric_names, align=align,
                                      aggregate=aggregate or "mean", progress=True, convention=si_sdr, fad=fad)
    click.echo(format_table(summary))
    click.echo(f"wrote {out / 'per_item.csv'} and {out / 'summary.json'}", err=True)


def _without_fad(metric_names: str | None, fad: Path | None) -> str | None:
    """``--metrics`` less ``fad``, which names no per-item metric but asks for ``--fad``'s embedding model."""
    if metric_names is None:
        return None
    names = [n.strip() for n in metric_names.split(",") if n.strip()]
    if "fad" in names and fad is None:
        raise LassbenchError("--metrics fad needs the embedding model: pass --fad DIR (a local CLAP checkpoint "
                             "folder or a VGGish state-dict file)")
    rest = [n for n in names if n != "fad"]
    return ",".join(rest) if rest else None
