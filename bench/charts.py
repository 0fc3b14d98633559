"""The charts `make bench` writes beside results.json, from the figures' own data."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

logger = logging.getLogger(__name__)

DRAIN_TIMELINES = "drain-timelines.png"
RATE_AGAINST_SIZE = "rate-against-size.png"


def draw(figures: list[dict[str, Any]], output: Path) -> None:
    """Draw every chart the figures have data for."""
    for figure in figures:
        if "per_second" in figure:
            path = output / DRAIN_TIMELINES
            drain_timelines(figure["per_second"], figure["longest_gap_s"], path)
            logger.info("wrote %s", path)
    by_size = {f["label"]: f["per_size"] for f in figures if "per_size" in f}
    if by_size:
        rate_against_size(by_size, output / RATE_AGAINST_SIZE)
        logger.info("wrote %s", output / RATE_AGAINST_SIZE)


def rate_against_size(by_size: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Each operation's median rate at each table size, relative to its rate at the smallest,
    with the target's floor."""
    fig, axis = plt.subplots(figsize=(9, 5))
    for name, per_size in by_size.items():
        sizes = sorted(per_size, key=int)
        medians = [statistics.median(per_size[size]) for size in sizes]
        relative = [median / medians[0] for median in medians]
        axis.plot([int(size) for size in sizes], relative, marker="o", label=name)
    axis.axhline(0.85, color="grey", linestyle="--", label="target: 0.85x of the smallest")
    axis.set_xscale("log")
    axis.set_xlabel("applications in the table")
    axis.set_ylabel("rate relative to the smallest table")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def drain_timelines(
    per_second: dict[str, list[list[int]]], gaps: dict[str, list[float]], path: Path
) -> None:
    """Records processed in each second of each drain: one panel per variant, one line per
    round, the longest pause between two batches in the legend."""
    variants = list(per_second)
    columns = 2
    rows = (len(variants) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(12, 3.6 * rows), sharey=True, squeeze=False)
    for axis, variant in zip(axes.flat, variants, strict=False):
        for index, (series, gap) in enumerate(zip(per_second[variant], gaps[variant], strict=True)):
            axis.plot(range(len(series)), series, label=f"round {index + 1}, longest gap {gap} s")
        axis.set_title(variant)
        axis.set_xlabel("seconds since the first batch")
        axis.set_ylabel("records processed")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(variants) :]:
        axis.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
