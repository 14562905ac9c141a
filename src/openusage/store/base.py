"""The store's narrow interface: append events, aggregate one query.

Any engine (the embedded DuckDB file by default, a distributed one later) sits behind
this interface; the server knows nothing else about it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..catalogue import DimensionType, all_dimensions, all_metrics

DIMENSIONS: dict[str, DimensionType] = all_dimensions()
DIMENSION_COLUMNS: tuple[str, ...] = tuple(DIMENSIONS)
METRIC_COLUMNS: tuple[str, ...] = all_metrics()
#: an event row: these values, in this order
COLUMNS: tuple[str, ...] = ("id", "kind", "ts", *DIMENSION_COLUMNS, *METRIC_COLUMNS)

Row = tuple[Any, ...]
#: what an event holds where it gives no value: no dimension, no count
DEFAULT_ROW: Row = (None, None, None, *(None for _ in DIMENSION_COLUMNS), *(0 for _ in METRIC_COLUMNS))
COLUMN_DEFAULTS: dict[str, Any] = dict(zip(COLUMNS, DEFAULT_ROW, strict=True))


def check_column(name: str) -> str:
    """A dimension or metric name, checked: column names reach SQL text, so they must come
    from the catalogue alone."""
    if name not in DIMENSIONS and name not in METRIC_COLUMNS:
        raise ValueError(f"not a store column: {name!r}")
    return name


class StoreUnavailable(Exception):
    """The store cannot be opened; the message says why and what to do."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
_UNIT_BYTES = {"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}
_UNIT_BYTES |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
MIN_MEMORY_BYTES = 64 * 2**20


def memory_bytes(text: str) -> int:
    """A store's memory limit (like 512MB or 2GiB) in bytes. Engines read a negative size as
    "no limit" and fail late on a tiny one: both are refused here, with the reason."""
    match = _SIZE.match(text)
    if match is None:
        raise StoreUnavailable(f"memory limit {text!r} is not a size like 512MB or 2GB")
    size = int(float(match[1]) * _UNIT_BYTES[match[2].lower()])
    if size < MIN_MEMORY_BYTES:
        raise StoreUnavailable(f"memory limit {text!r} is too small: the database needs at least 64MiB")
    return size


class StoreFull(Exception):
    """The store's disk has too little room to take a write safely; nothing was written."""


class StoreOutOfMemory(Exception):
    """The engine reached its memory limit answering a query or taking a write (a page of
    more results than the limit holds, say); nothing was written. The message names the limit."""


class StoreRestarting(Exception):
    """The database stopped after an error DuckDB cannot continue from, and is being opened
    again: the request was not carried out, or (a write) perhaps in part; nothing
    acknowledged is lost. The next request finds it open."""


class WriteUnfinished(Exception):
    """A write failed midway, so part of it may be stored; nothing was acknowledged. The
    store completes it before its next write, and a retried batch counts once."""


class AmountsOutOfRange(Exception):
    """Priced sums the engine's decimals cannot hold exactly (a sum past about 10^20
    dollars, or a price of more than 18 decimal places); nothing was answered."""


@dataclass(frozen=True)
class AppendResult:
    inserted: int
    duplicates: int


@dataclass(frozen=True)
class Aggregation:
    """Sum (or, for a gauge, sample) one kind's metrics into contiguous buckets.

    ``buckets`` are the page's buckets, oldest first and touching; an event belongs to the
    bucket whose ``[start, end)`` holds its timestamp.
    """

    kind: str
    buckets: Sequence[tuple[int, int]]
    #: the width of the interior buckets, in seconds
    width_seconds: int
    group_by: tuple[str, ...]
    filters: Mapping[str, tuple[str | bool, ...]]
    metrics: tuple[str, ...]
    gauge: bool = False


#: (bucket start, group values in group_by order, metric values in metrics order)
AggregateRow = tuple[int, tuple[Any, ...], tuple[int, ...]]


@dataclass(frozen=True)
class ResultShape:
    """How a page writes each result of an aggregation: ``{"object": object, ...fields}``,
    the fields in this order; a metric or a dimension grouped by has its value, any other
    field is null."""

    object: str
    fields: tuple[str, ...]


#: (bucket start, how many results, the bucket's results as one JSON array)
EncodedBucket = tuple[int, int, str]


def encode_results(
    rows: Sequence[AggregateRow], query: Aggregation, shape: ResultShape
) -> list[EncodedBucket]:
    """``aggregate``'s rows written as JSON, one array per bucket, result by result (for a
    store that cannot write them in its engine)."""
    template: dict[str, Any] = {"object": shape.object, **dict.fromkeys(shape.fields)}
    names = (*query.metrics, *query.group_by)
    by_bucket: dict[int, list[dict[str, Any]]] = {}
    for start, groups, metrics in rows:
        result = template.copy()  # the fields keep the template's order
        result.update(zip(names, metrics + groups, strict=True))
        by_bucket.setdefault(start, []).append(result)
    return [(start, len(results), _json(results)) for start, results in by_bucket.items()]


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # a sum past 64 bits, which the standard library writes
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def past_64_bits(rows: Sequence[tuple[Any, ...]], groups: int) -> bool:
    """Whether a row of (bucket, ``groups`` values, sums) read with its sums narrowed to 64
    bits (NULL where one does not fit) has a sum that did not: then all are read in 128."""
    return any(None in row[1 + groups :] for row in rows)


@dataclass(frozen=True)
class LinearItem:
    """A quantity made of metrics: the sum of ``metric * sign`` over ``terms``."""

    item: str
    unit: str
    terms: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class PricedAggregation:
    """Weigh the rows of ``base`` item by item with a price table, then regroup.

    ``prices`` rows are (bucket start, *values of ``price_dimensions``, item, line item,
    price of one unit or None, unit). Amounts are exact: never rounded, so every regrouping
    of the same rows adds up to the same total.
    ``output`` names the result's groups: dimensions of ``base`` and ``line_item``.
    """

    base: Aggregation
    items: tuple[LinearItem, ...]
    price_dimensions: tuple[str, ...]
    prices: Sequence[tuple[Any, ...]]
    output: tuple[str, ...]


#: (bucket start, output group values, amount, quantity, unit)
PricedRow = tuple[int, tuple[Any, ...], Decimal, int, str]


#: a stored event and its place in the order events were stored
Stored = tuple[int, Row]


class EventStore(Protocol):
    def append(self, rows: Sequence[Row]) -> AppendResult:
        """Store the rows not seen before (by id), durably, all or none."""
        ...

    def append_batches(self, batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        """Several batches durably in one commit; each batch's own result, in order."""
        ...

    def aggregate(self, query: Aggregation) -> list[AggregateRow]:
        """Rows ordered by bucket, then group values ascending with nulls first."""
        ...

    def aggregate_json(self, query: Aggregation, shape: ResultShape) -> list[EncodedBucket]:
        """The buckets that have results, in order, each with its results written as JSON
        in ``aggregate``'s order."""
        ...

    def aggregate_priced(self, query: PricedAggregation) -> list[PricedRow]:
        """Rows ordered by bucket; amounts exact decimals (``AmountsOutOfRange`` if not)."""
        ...

    def backup(self, target: Path | str) -> int:
        """Write a consistent copy to ``target`` while serving; the number of events copied."""
        ...

    def problem(self) -> str | None:
        """Why the store cannot take writes just now (reads go on), or None."""
        ...

    def last_place(self) -> int:
        """The place of the event stored last (0: none yet)."""
        ...

    def stored_events(self, after: int, limit: int) -> list[Stored]:
        """Up to ``limit`` events in the order they were stored, from the one after place
        ``after`` (0: from the first), each with its place, to go on from."""
        ...

    def project_ids(self) -> list[str]:
        """Every project id any stored event names."""
        ...

    def close(self) -> None: ...
