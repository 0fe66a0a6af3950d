"""Leaderboards: gather every scored run under ``results/`` into one table per benchmark.

Data flows one way through four modules:

* :mod:`~lassbench.leaderboard.results`: reading result folders (``summary.json``, ``run.json``, ``per_item.csv``)
  and the hand-curated ``reported.csv`` into :class:`SystemResult` rows.
* :mod:`~lassbench.leaderboard.tables`: ranking them into each benchmark's main and query-robustness tables.
* :mod:`~lassbench.leaderboard.plots`: one PNG per benchmark (per-item and per-class SDRi).
* :mod:`~lassbench.leaderboard.report`: writing the CSV tables, the markdown page and the plots.
"""

from lassbench.leaderboard.plots import plot_leaderboard
from lassbench.leaderboard.report import LeaderboardOutputs, render_markdown, write_leaderboards
from lassbench.leaderboard.results import (
    METRICS,
    REFERENCE_SYSTEMS,
    REPORTED_COLUMNS,
    REPORTED_REQUIRED,
    SystemResult,
    collect_results,
    default_reported_path,
    read_reported,
    read_result_folder,
)
from lassbench.leaderboard.tables import (
    MAIN_COLUMNS,
    QUERY_COLUMNS,
    Leaderboard,
    build_leaderboards,
    incomparable,
    main_table,
    partial_notes,
    queries_table,
)

__all__ = [
    "MAIN_COLUMNS", "METRICS", "QUERY_COLUMNS", "REFERENCE_SYSTEMS", "REPORTED_COLUMNS", "REPORTED_REQUIRED",
    "Leaderboard", "LeaderboardOutputs", "SystemResult", "build_leaderboards", "collect_results",
    "default_reported_path", "incomparable", "main_table", "partial_notes", "plot_leaderboard", "queries_table",
    "read_reported", "read_result_folder", "render_markdown", "write_leaderboards",
]
