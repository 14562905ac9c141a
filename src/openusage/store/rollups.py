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

#: a rollup read costs a transaction and more planning: worth it when it saves this many rows
MIN_ROWS_SAVED = 2_000

#: dimensions with few values: a fixed list, a flag, or a handful of tiers
FEW_VALUES = ("batch", "service_tier", "size", "source", "context_level", "api_source")

#: (name, grain in seconds, dimensions kept where the kind has them)
SHAPES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("minute", MINUTE, ()),
    ("hour", HOUR, ("project_id", "model", "size", "source", "context_level")),
    ("day", DAY, ("project_id", "model", *FEW_VALUES)),
    ("day_model", DAY, ("model", *FEW_VALUES)),
    ("day_people", DAY, ("project_id", "user_id", "api_key_id")),
    # what costs grouped by user, key or source are priced from
    ("day_priced", DAY, ("project_id", "user_id", "api_key_id", "model", *FEW_VALUES)),
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
        return f"{self.grain}|{','.join(self.dimensions)}|{','.join(self.metrics)}|hugeint"


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
class Segment:
    """Read ``rollup`` for ``[start, end)``."""

    rollup: Rollup
    start: int
    end: int


@dataclass(frozen=True)
class Plan:
    """Rollup segments that together cover ``[start, end)``, coarsest in the middle; raw
    events answer the rest of the query's range.

    ``through`` (the query's end) when the last segment reads whole grains past it: right
    only while no event lies at or after it, which the read checks in its snapshot."""

    segments: tuple[Segment, ...]
    through: int | None = None

    @property
    def start(self) -> int:
        return min(s.start for s in self.segments)

    @property
    def end(self) -> int:
        return max(s.end for s in self.segments)


@dataclass(frozen=True)
class Extent:
    """How many rows a table holds over how many seconds: the router's cost model."""

    rows: int
    seconds: int

    @property
    def density(self) -> float:
        """Rows per second: what reading any stretch of time from the table costs."""
        return self.rows / max(self.seconds, 1)


def _usable(query: Aggregation, rollups: tuple[Rollup, ...]) -> list[Rollup]:
    """The rollups whose grain divides the bucket width (no rollup row straddles two
    buckets) and that keep every dimension the query groups or filters by."""
    if query.gauge or not query.buckets:
        return []
    needed = {*query.group_by, *query.filters}
    return [r for r in rollups if not query.width_seconds % r.grain and needed <= set(r.dimensions)]


def _whole_grains(query: Aggregation, grain: int, through_end: bool = False) -> tuple[int, int]:
    """The grains of the query's range; with ``through_end``, the grain its end falls in too."""
    end = query.buckets[-1][1]
    return ceil_to(query.buckets[0][0], grain), ceil_to(end, grain) if through_end else floor_to(end, grain)


def covering(query: Aggregation, rollups: tuple[Rollup, ...]) -> list[Plan]:
    """Every usable rollup alone, over the whole grains of the query's range."""
    plans = []
    for rollup in _usable(query, rollups):
        start, end = _whole_grains(query, rollup.grain)
        if start < end:
            plans.append(Plan((Segment(rollup, start, end),)))
    return plans


def choose(
    query: Aggregation,
    rollups: tuple[Rollup, ...],
    raw: Extent,
    extents: Mapping[str, Extent],
    *,
    through_end: bool = False,
) -> Plan | None:
    """The cheapest way to read ``query``: None for raw events alone.

    Each grain contributes its least dense usable rollup, if it is less dense than every
    finer one kept (and than raw events). The coarsest kept grain answers its whole
    grains of the range; each finer one the whole grains of its own left at the edges;
    raw events the rest. So a 31-day query ending mid-afternoon reads 30 daily rows per
    group, the hours of today, and the minutes of this hour.

    With ``through_end`` (no event lies at or after the query's end, as when it ends now),
    the grain the end falls in holds only events before it: the same query reads 31 daily
    rows per group (a page of users and keys at 100M events read up to a day of raw events).
    """
    levels: list[tuple[Rollup, float]] = []
    density = {r.table: extents.get(r.table, raw).density for r in rollups}
    for rollup in sorted(_usable(query, rollups), key=lambda r: (r.grain, density[r.table])):
        finer = levels[-1] if levels else None
        if finer is not None and finer[0].grain == rollup.grain:
            continue  # a less dense rollup of this grain is kept already
        if density[rollup.table] < (raw.density if finer is None else finer[1]):
            levels.append((rollup, density[rollup.table]))
    segments: list[Segment] = []
    inner: tuple[int, int] | None = None
    for rollup, _ in reversed(levels):
        start, end = _whole_grains(query, rollup.grain, through_end)
        if start >= end:
            continue
        if inner is None:
            segments.append(Segment(rollup, start, end))
        else:
            segments += [Segment(rollup, a, b) for a, b in ((start, inner[0]), (inner[1], end)) if a < b]
        inner = (start, end)
    saved = sum((raw.density - density[s.rollup.table]) * (s.end - s.start) for s in segments)
    if saved < MIN_ROWS_SAVED:
        return None
    end = query.buckets[-1][1]
    past_end = max(s.end for s in segments) > end  # not when the end falls on a grain
    return Plan(tuple(segments), end if past_end else None)
