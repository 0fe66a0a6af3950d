"""Plots: one PNG per benchmark, the per-item SDRi distribution and the per-class mean SDRi of its main rows.

Drawn from the ``per_item.csv`` of the reproduced main rows over the table's usual item set. Needs matplotlib (the
``plot`` extra), imported only when a plot is drawn.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lassbench.leaderboard.results import REFERENCE_SYSTEMS, read_per_item
from lassbench.leaderboard.tables import Leaderboard, main_rows, main_sort_key, unranked_notes
from lassbench.manifests import first_label


def plot_leaderboard(board: Leaderboard, path: str | Path) -> Path | None:
    """PNG with the per-system SDRi distribution (box plot) and per-class mean SDRi bars, from per_item.csv of
    the reproduced main rows. Returns None when no system has per-item SDRi. Needs matplotlib."""
    from matplotlib.figure import Figure  # a Figure, not pyplot: no global figure state, no GUI backend

    per_system = _per_item_sdri(board)
    if not per_system:
        return None
    classes = _per_class_means(per_system)
    height = 3.0 + 0.3 * (len(classes.index) if classes is not None else 0)
    figure = Figure(figsize=(11, max(4.0, height)))
    box_axes, bar_axes = figure.subplots(1, 2)
    names = list(per_system)
    box_axes.boxplot([per_system[n]["sdri"].to_numpy() for n in names], showfliers=False)
    box_axes.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    box_axes.set_ylabel("SDRi per item (dB)")
    box_axes.set_title(f"{board.benchmark}: SDRi distribution")
    if classes is not None:
        _grouped_bars(bar_axes, classes)
    else:
        bar_axes.set_axis_off()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, metadata={"Software": None})
    return path


def _grouped_bars(axes, classes: pd.DataFrame) -> None:
    """Horizontal bars, one group per class, one bar per system (drawn here: pandas plotting uses pyplot)."""
    width = 0.8 / len(classes.columns)
    for k, system in enumerate(classes.columns):
        positions = [i + k * width for i in range(len(classes.index))]
        axes.barh(positions, classes[system].to_numpy(), height=width, label=system)
    axes.set_yticks([i + 0.4 - width / 2 for i in range(len(classes.index))], list(classes.index))
    axes.set_xlabel("mean SDRi (dB)")
    axes.set_title("per-class SDRi (first label)")
    axes.legend(fontsize="small")


def _per_item_sdri(board: Leaderboard) -> dict[str, pd.DataFrame]:
    """system -> per_item rows with numeric ``sdri`` (and ``labels`` if scored from a manifest), of the main rows
    over the table's usual item set only: the per-class bars compare matched items (partial and other-item-set
    rows are left out, as they are left unranked)."""
    found = {}
    main = [s for s in main_rows(board.systems) if s.source == "reproduced"]
    apart = unranked_notes(main)
    for result in sorted(main, key=main_sort_key):
        frame = None if id(result) in apart else read_per_item(result)
        if frame is None:
            continue
        column = result.headline_sdri  # the benchmark's SDRi: CLAPSep's lists plot bss_sdri
        if column not in frame.columns:
            continue
        frame["sdri"] = pd.to_numeric(frame[column], errors="coerce")
        frame = frame[frame["sdri"].notna()]
        if len(frame):
            found[result.system] = frame
    return found


def _per_class_means(per_system: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """classes x systems table of mean SDRi; a class is the first label (as evaluate's class aggregation)."""
    columns = {}
    for system, frame in per_system.items():
        if system in REFERENCE_SYSTEMS or "labels" not in frame.columns:
            continue
        first = [first_label(v) for v in frame["labels"]]
        grouped = frame.assign(_class=first)
        grouped = grouped[grouped["_class"] != ""]
        if len(grouped):
            columns[system] = grouped.groupby("_class")["sdri"].mean()
    if not columns:
        return None
    return pd.DataFrame(columns).sort_index(ascending=False)
