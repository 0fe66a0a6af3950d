"""``lassbench download CORPUS``: get a corpus onto disk (thin wrappers over lassbench.corpora)."""

from __future__ import annotations

from pathlib import Path

import click

from lassbench.corpora.audiocaps_sources import DEFAULT_URL_TEMPLATE


@click.group("download")
def command() -> None:
    """Download a corpus and write its source manifest."""


@command.command("audiocaps")
@click.option("--split", required=True, help="train, val or test.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output folder: audio/<youtube_id>.wav, manifest.csv, failures.csv.")
@click.option("--metadata", type=click.Path(path_type=Path),
              help="AudioCaps CSV (audiocap_id,youtube_id,start_time,caption); default: the official one, cached.")
@click.option("--source", default="youtube", show_default=True,
              help="youtube, dir:PATH (clips named <id>.wav or Y<id>.wav) or hf:NAME_OR_PATH (a datasets copy).")
@click.option("--url-template", default=DEFAULT_URL_TEMPLATE, show_default=True,
              help="Media URL of a clip, with {youtube_id}: point it at a mirror.")
@click.option("--sample-rate", default=32000, show_default=True, type=int)
@click.option("--min-duration", default=1.0, show_default=True, type=float,
              help="Clips with less audio than this (seconds) are dropped as too_short; longer short clips are kept.")
@click.option("--workers", default=4, show_default=True, type=int)
@click.option("--retries", default=3, show_default=True, type=int, help="Extra attempts for transient errors.")
@click.option("--limit", type=int, help="Only the first N clips of the metadata (a quick sample).")
@click.option("--audioset-labels", multiple=True, type=click.Path(path_type=Path),
              help="AudioSet segment CSVs and class_labels_indices.csv (repeat the option); adds labels.")
@click.option("--retry-failed", is_flag=True, help="Also retry clips that failed before as unavailable/private/...")
def audiocaps(split: str, out_dir: Path, metadata: Path | None, source: str, url_template: str, sample_rate: int,
              min_duration: float, workers: int, retries: int, limit: int | None,
              audioset_labels: tuple[Path, ...], retry_failed: bool) -> None:
    """AudioCaps clips with all their captions, from YouTube (yt-dlp + ffmpeg), a folder or a datasets copy.

    Rerun the same command to resume: finished clips are kept, transient failures retried.
    """
    from lassbench.corpora.audiocaps import AudiocapsDownloadConfig, download_audiocaps

    config = AudiocapsDownloadConfig(
        split=split, out_dir=out_dir, metadata=metadata, source=source, url_template=url_template,
        sample_rate=sample_rate, min_duration=min_duration, workers=workers, retries=retries, limit=limit,
        audioset_labels=tuple(audioset_labels), retry_failed=retry_failed,
    )
    click.echo(download_audiocaps(config).summary_line())


@command.command("packaged")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output folder: audio/, manifest.csv, provenance.csv, classes.csv, licences/, debs/.")
@click.option("--table", type=click.Path(path_type=Path),
              help="Package table JSON (pins + rules); default: the shipped one (lassbench/data/packaged.json).")
@click.option("--mirror", help="Debian mirror base URL for HTTP fetching; default: apt-get, then the apt sources.")
@click.option("--no-apt", is_flag=True, help="Never run apt-get download: fetch over HTTP and unpack in Python.")
@click.option("--sample-rate", default=32000, show_default=True, type=int)
@click.option("--drop-debs", is_flag=True, help="Delete the downloaded .deb files when done.")
def packaged(out_dir: Path, table: Path | None, mirror: str | None, no_apt: bool, sample_rate: int,
             drop_debs: bool) -> None:
    """Real recordings from pinned, freely licensed Debian packages, cut to 10 s clips with captions and licences.

    Pinned versions and SHA-256s make the corpus bit-exact; a changed package is refused. Rerun to resume.
    """
    from lassbench.corpora.packaged import PackagedConfig, download_packaged

    config = PackagedConfig(out_dir=out_dir, table=table, mirror=mirror, use_apt=not no_apt,
                            sample_rate=sample_rate, keep_debs=not drop_debs)
    click.echo(download_packaged(config).summary_line())
