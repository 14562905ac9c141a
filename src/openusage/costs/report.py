"""The costs endpoint's results: usage of every kind, priced, grouped as asked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ..catalogue import USAGE_ENDPOINTS
from ..store import AggregateRow, Aggregation
from .lineitems import PRICING_DIMENSIONS, line_items
from .pricebook import PriceBook

DAY = 86400


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _order(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else "")


def cost_results(
    buckets: Sequence[tuple[int, int]],
    group_by: tuple[str, ...],
    filters: dict[str, tuple[str | bool, ...]],
    aggregate: Callable[[Aggregation], list[AggregateRow]],
    book: PriceBook,
    result_object: str,
) -> dict[int, list[dict[str, Any]]]:
    """Results per day bucket start: amounts summed exactly, grouped by ``group_by``."""
    totals: dict[tuple[int, tuple[Any, ...]], list[Any]] = {}
    days: dict[int, date] = {}
    for endpoint in USAGE_ENDPOINTS:
        dims = endpoint.group_fields
        if any(name not in dims for name in filters):
            # Usage that cannot be told by key (vector storage, sessions) cannot match a
            # key filter.
            continue
        # Always the finest rows (project, key and what prices the usage), whatever the
        # grouping: every grouping then sums the same rounded lines, so totals agree exactly.
        groups = tuple(
            d for d in ("project_id", "api_key_id", *PRICING_DIMENSIONS[endpoint.name]) if d in dims
        )
        rows = aggregate(
            Aggregation(
                kind=endpoint.name,
                buckets=buckets,
                width_seconds=DAY,
                group_by=groups,
                filters=filters,
                metrics=endpoint.metric_names,
                gauge=endpoint.has_gauge,
            )
        )
        for start, group_values, metrics in rows:
            row = dict(zip(groups, group_values, strict=True)) | dict(
                zip(endpoint.metric_names, metrics, strict=True)
            )
            day = days.get(start) or days.setdefault(start, datetime.fromtimestamp(start, UTC).date())
            for item in line_items(endpoint.name, row, day, book):
                key = tuple(item.name if g == "line_item" else row.get(g) for g in group_by)
                acc = totals.setdefault((start, key), [Decimal(0), Decimal(0), item.unit])
                acc[0] += item.amount
                acc[1] += item.quantity

    by_bucket: dict[int, list[dict[str, Any]]] = {}
    for (start, key), (amount, quantity, unit) in sorted(
        totals.items(), key=lambda kv: (kv[0][0], tuple(_order(v) for v in kv[0][1]))
    ):
        result: dict[str, Any] = {
            "object": result_object,
            "amount": {"value": float(amount), "currency": "usd"},
            "line_item": None,
            "project_id": None,
            "api_key_id": None,
            "quantity": None,
            "quantity_unit": None,
        }
        result.update(zip(group_by, key, strict=True))
        if "line_item" in group_by:
            result["quantity"] = _number(quantity)
            result["quantity_unit"] = unit
        by_bucket.setdefault(start, []).append(result)
    return by_bucket
