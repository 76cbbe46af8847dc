"""The PNG charts of the report (``report.py`` writes the markdown around them).

Each function draws one chart from the results' JSON rows with matplotlib
(Agg, no display) and saves it to ``path``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.harness import BUCKETCORE, FLOOR, PEER


def ns_text(value: float) -> str:
    """Nanoseconds as the report prints them.

    >>> ns_text(1234.0), ns_text(12_345.0), ns_text(float("inf"))
    ('1,234 ns', '12.3 µs', 'n/a')
    """
    if not math.isfinite(value):
        return "n/a"
    if value >= 100_000:
        return f"{value / 1000:,.0f} µs"
    if value >= 10_000:
        return f"{value / 1000:,.1f} µs"
    return f"{value:,.0f} ns"


_COLOURS = {FLOOR: "#9e9e9e", BUCKETCORE: "#1f77b4", PEER: "#ff7f0e"}


def bar_chart(groups: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [max(1.2, 0.32 * len(group["rows"]) + 0.6) for group in groups]
    figure, axes = plt.subplots(
        len(groups), 1, figsize=(9, sum(heights)), gridspec_kw={"height_ratios": heights}
    )
    axes = [axes] if len(groups) == 1 else list(axes)
    for axis, group in zip(axes, groups, strict=True):
        rows = group["rows"]
        names = [row["case"] for row in rows]
        values = [row["ns"] for row in rows]
        axis.barh(names, values, color=[_COLOURS.get(row["role"], "#777") for row in rows])
        axis.invert_yaxis()
        axis.set_xscale("log")
        axis.set_title(group["title"], fontsize=9, loc="left")
        axis.tick_params(labelsize=7)
        for y, value in enumerate(values):
            axis.text(value, y, f" {ns_text(value)}", va="center", fontsize=6)
    axes[-1].set_xlabel(f"{groups[0]['unit']} (log scale; lower is better)", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def line_chart(
    groups: list[dict[str, Any]],
    path: Path,
    title: str,
    xlabel: str,
    *,
    per_second: bool = False,
) -> None:
    """One line per case across the groups' ``x``; ``per_second``: decisions/s, not ns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for group in groups:
        for row in group["rows"]:
            value = 1e9 / row["ns"] if per_second else row["ns"]
            series[row["case"]].append((group["x"], value))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, points in series.items():
        points.sort()
        axis.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name)
    xs = sorted({group["x"] for group in groups})
    if len(xs) > 1 and xs[-1] / max(xs[0], 1) >= 100:
        axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xticks(xs)
    axis.set_xticklabels([f"{x:,.0f}" for x in xs])
    axis.set_xlabel(xlabel)
    axis.set_ylabel(
        "decisions/s, all processes (log; higher is better)"
        if per_second
        else f"{groups[0]['unit']} (log; lower is better)"
    )
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=7)
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def accuracy_chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    patterns = list(dict.fromkeys(row["pattern"] for row in rows))
    libraries = list(dict.fromkeys(row["library"] for row in rows))
    table = {(row["pattern"], row["library"]): row for row in rows}
    figure, axis = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(libraries))
    for index, library in enumerate(libraries):
        values = []
        for pattern in patterns:
            row = table.get((pattern, library))
            values.append(100.0 * row["excess"] / row["exact"] if row and row["exact"] else 0.0)
        axis.bar([p + index * width for p in range(len(patterns))], values, width, label=library)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_xticks([p + width * (len(libraries) - 1) / 2 for p in range(len(patterns))])
    axis.set_xticklabels(patterns, fontsize=8)
    axis.set_ylabel("granted vs exact token bucket (%)")
    axis.set_title("Accuracy: above 0 lets forbidden traffic through, below 0 over-throttles")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def footprint_chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    names = [f"{row['case']} ({row['store']})" for row in rows]
    values = [row["bytes_per_bucket"] for row in rows]
    axis.barh(names, values, color=[_COLOURS.get(row["role"], "#777") for row in rows])
    axis.invert_yaxis()
    for y, value in enumerate(values):
        axis.text(value, y, f" {value:,.0f} B", va="center", fontsize=7)
    axis.set_xlabel("bytes per resident bucket (lower is better)")
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
