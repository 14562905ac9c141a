"""Rollups: pre-aggregated sums that answer a query without reading every raw event.

A rollup sums one kind's metrics per time grain over a subset of its dimensions. Several
are kept per kind, so that each query reads the smallest one that still holds its
grouping and filters. Sums add up, so a late event is folded in like any other: its
row is appended, and compaction later merges the rows of a bucket into one per group.

The router here is pure arithmetic: which rollup covers a query, over which part of its
time range, and at what estimated cost against reading the raw events alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..buckets import ceil_to, floor_to
from ..catalogue import USAGE_ENDPOINTS, Endpoint
from .base import Aggregation

MINUTE, HOUR, DAY = 60, 3600, 86400

#: dimensions with few values: a fixed list, a flag, or a handful of tiers
FEW_VALUES = ("batch", "service_tier", "size", "source", "context_level")

#: (name, grain in seconds, dimensions kept where the kind has them)
SHAPES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("minute", MINUTE, ()),
    ("hour", HOUR, ("project_id", "model", "size", "source", "context_level")),
    ("day", DAY, ("project_id", "model", *FEW_VALUES)),
    ("day_model", DAY, ("model", *FEW_VALUES)),
    ("day_people", DAY, ("project_id", "user_id", "api_key_id")),
)


@dataclass(frozen=True)
class Rollup:
    kind: str
    name: str
    grain: int
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]

    @property
    def table(self) -> str:
        return f"rollup_{self.kind}_{self.name}"

    @property
    def definition(self) -> str:
        """What the table holds; a stored table with another definition is rebuilt."""
        return f"{self.grain}|{','.join(self.dimensions)}|{','.join(self.metrics)}"


def rollups_for(endpoint: Endpoint) -> tuple[Rollup, ...]:
    """The rollups of one kind; none for a gauge, whose buckets are not sums."""
    if endpoint.has_gauge:
        return ()
    have = {d.name for d in endpoint.dimensions}
    out: dict[tuple[int, tuple[str, ...]], Rollup] = {}
    for name, grain, wanted in SHAPES:
        dims = tuple(d for d in wanted if d in have)
        # A kind with fewer dimensions may make two shapes the same; keep the first.
        out.setdefault((grain, dims), Rollup(endpoint.name, name, grain, dims, endpoint.metric_names))
    return tuple(out.values())


ROLLUPS: dict[str, tuple[Rollup, ...]] = {e.name: rollups_for(e) for e in USAGE_ENDPOINTS}


@dataclass(frozen=True)
class Plan:
    """Read ``rollup`` for ``[start, end)`` and raw events for the rest of the query's range."""

    rollup: Rollup
    start: int
    end: int


@dataclass(frozen=True)
class Extent:
    """How many rows a table holds over how many seconds: the router's cost model."""

    rows: int
    seconds: int

    def rows_in(self, seconds: int) -> float:
        return self.rows * seconds / max(self.seconds, 1)


def covering(query: Aggregation, rollups: tuple[Rollup, ...]) -> list[Plan]:
    """Every rollup that can answer part of ``query``, with the part it answers.

    A rollup covers a query when its grain divides the bucket width (so no rollup row
    straddles two buckets) and it keeps every dimension the query groups or filters by.
    The edges of the range that are not whole grains are left to raw events.
    """
    if query.gauge or not query.buckets:
        return []
    first, last = query.buckets[0][0], query.buckets[-1][1]
    needed = {*query.group_by, *query.filters}
    plans = []
    for rollup in rollups:
        if query.width_seconds % rollup.grain or not needed <= set(rollup.dimensions):
            continue
        start, end = ceil_to(first, rollup.grain), floor_to(last, rollup.grain)
        if start < end:
            plans.append(Plan(rollup, start, end))
    return plans


def choose(
    query: Aggregation, rollups: tuple[Rollup, ...], raw: Extent, extents: Mapping[str, Extent]
) -> Plan | None:
    """The cheapest covering rollup for ``query``, or None when raw events alone are cheaper."""
    if not query.buckets:
        return None
    first, last = query.buckets[0][0], query.buckets[-1][1]
    best: Plan | None = None
    best_cost = raw.rows_in(last - first)
    for plan in covering(query, rollups):
        extent = extents.get(plan.rollup.table, raw)
        cost = extent.rows_in(plan.end - plan.start) + raw.rows_in((plan.start - first) + (last - plan.end))
        if cost < best_cost:
            best, best_cost = plan, cost
    return best
