"""Charts a person can read: usage as a stacked time series, costs as stacked bars per day."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..buckets import iter_buckets
from ..catalogue import Endpoint

TOP_SERIES = 8
PER = {"1m": "minute", "1h": "hour", "1d": "day"}


def _series(rows: list[dict[str, Any]], group_by: list[str], metric: str) -> dict[str, dict[int, float]]:
    """Metric per bucket start for each group, the smallest groups folded into "other"."""
    series: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        label = " / ".join("—" if row.get(g) is None else str(row[g]) for g in group_by) or "total"
        series[label][row["start_time"]] += float(row.get(metric) or 0)
    ranked = sorted(series, key=lambda label: -sum(series[label].values()))
    if len(ranked) <= TOP_SERIES:
        return {label: series[label] for label in ranked}
    kept = {label: series[label] for label in ranked[: TOP_SERIES - 1]}
    other: dict[int, float] = defaultdict(float)
    for label in ranked[TOP_SERIES - 1 :]:
        for start, value in series[label].items():
            other[start] += value
    kept["other"] = other
    return kept


def draw_chart(
    endpoint: Endpoint,
    rows: list[dict[str, Any]],
    group_by: list[str],
    metric: str,
    span: tuple[int, int, str],
    path: Path,
) -> None:
    """Write a PNG chart of ``metric`` by the grouped fields over the query's buckets."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("charts need matplotlib: pip install 'openusage[charts]'") from None
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from .query import human, human_bytes

    start, end, width = span
    starts = [s for s, _ in iter_buckets(start, end, width, whole_days=endpoint.is_costs)]
    times = mdates.date2num([datetime.fromtimestamp(s, UTC) for s in starts])  # type: ignore[no-untyped-call]
    series = _series(rows, group_by, metric)
    figure, axes = plt.subplots(figsize=(11, 5.5), dpi=100)
    values = [[series[label].get(s, 0.0) for s in starts] for label in series]
    labels = list(series)
    if endpoint.is_costs:
        bottom = [0.0] * len(starts)
        for label, column in zip(labels, values, strict=True):
            axes.bar(times, column, bottom=bottom, width=0.8, label=label, align="edge")
            bottom = [b + v for b, v in zip(bottom, column, strict=True)]
        axes.set_ylabel("USD per day")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.2f}"))
        title = f"Costs per day by {', '.join(group_by) or 'day'}"
    else:
        # Steps, not slopes: a bucket's value holds for the whole bucket.
        axes.stackplot(times, values, labels=labels, step="post")
        by = ", ".join(group_by) or "bucket"
        if endpoint.has_gauge:  # a size at each bucket's end, not an amount per bucket
            axes.set_ylabel(f"{metric} (size at the end of each {PER[width]})")
            axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: human_bytes(v)))
            title = f"{endpoint.name}: size by {by}"
        else:
            axes.set_ylabel(f"{metric} per {PER[width]}")
            axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
            title = f"{endpoint.name}: {metric} per {PER[width]} by {by}"
    axes.set_title(title)
    axes.set_xlabel("time (UTC)")
    axes.xaxis_date()
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.grid(axis="y", alpha=0.3)
    axes.set_ylim(bottom=0)
    if labels:
        axes.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title=", ".join(group_by) or None
        )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
