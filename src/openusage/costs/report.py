"""The costs endpoint's results: usage of every kind, priced, grouped as asked."""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ..catalogue import COSTS, USAGE_ENDPOINTS
from ..store import AggregateRow, Aggregation, EventStore
from ..store.base import PricedAggregation
from .lineitems import LINEAR_ITEMS, PRICING_DIMENSIONS, line_name, storage_line_items, variant_of
from .pricebook import PriceBook

DAY = 86400
#: the dimensions besides pricing ones that every line is priced and rounded at, where a
#: kind has them: costs may be grouped by each
FINEST = ("project_id", "user_id", "api_key_id", "api_source")


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _order(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else "")


@lru_cache(maxsize=16_384)  # about 25 MB at most
def _combo_lines(
    book: PriceBook, kind: str, dims: tuple[str, ...], start: int, values: tuple[Any, ...]
) -> tuple[tuple[str, str, Decimal | None, str], ...]:
    """Each item's (item, line item, price of a unit or None, unit) for one day's (model,
    tier, ...): the same few for every request, so remembered (a costs query over 180 days
    asks for tens of thousands)."""
    combo = dict(zip(dims, values, strict=True))
    day = datetime.fromtimestamp(start, UTC).date()
    model, batch, tier = combo.get("model"), bool(combo.get("batch")), combo.get("service_tier")
    variant = variant_of(kind, combo)
    lines: list[tuple[str, str, Decimal | None, str]] = []
    for item in LINEAR_ITEMS[kind]:
        name = line_name(item.item, model, batch, tier, variant)
        quote = book.quote(model, item.item, day, batch=batch, service_tier=tier, variant=variant)
        if quote is None:
            lines.append((item.item, f"{name} (unpriced)", None, item.unit))
        else:
            lines.append((item.item, name, quote.usd, item.unit))
    return tuple(lines)


def _price_rows(
    kind: str,
    dims: tuple[str, ...],
    combos: list[AggregateRow],
    book: PriceBook,
    wanted: Container[str] | None,
) -> list[tuple[Any, ...]]:
    """The price of every item for every (day, model, tier, ...) the usage has.

    With ``wanted``, only the line items it names: usage without a price row is left out.
    """
    return [
        (start, *values, item, name, usd, unit)
        for start, values, _ in combos
        for item, name, usd, unit in _combo_lines(book, kind, dims, start, tuple(values))
        if wanted is None or name in wanted
    ]


def cost_results(
    buckets: Sequence[tuple[int, int]],
    group_by: tuple[str, ...],
    filters: dict[str, tuple[str | bool, ...]],
    store: EventStore,
    book: PriceBook,
    result_object: str,
) -> dict[int, list[dict[str, Any]]]:
    """Results per day bucket start: amounts summed exactly, grouped by ``group_by``.

    Every line of every finest row (day, project, user, key, source and what prices the
    usage) is priced and rounded to a billionth of a dollar before any sum, in the store;
    every grouping then adds up the same lines, so totals agree exactly. A ``line_item``
    filter keeps the lines whose complete name it lists.
    """
    wanted = frozenset(str(v) for v in filters["line_item"]) if "line_item" in filters else None
    usage_filters = {k: v for k, v in filters.items() if k != "line_item"}
    totals: dict[tuple[int, tuple[Any, ...]], list[Any]] = {}

    def add(start: int, key: tuple[Any, ...], amount: Decimal, quantity: Decimal | int, unit: str) -> None:
        acc = totals.setdefault((start, key), [Decimal(0), Decimal(0), unit])
        acc[0] += amount
        acc[1] += quantity

    for endpoint in USAGE_ENDPOINTS:
        dims = endpoint.group_fields
        if any(name not in dims for name in usage_filters):
            # Usage that cannot be told by key (vector storage, sessions) cannot match a
            # key filter.
            continue
        pricing = tuple(d for d in PRICING_DIMENSIONS[endpoint.name] if d in dims)
        finest = tuple(d for d in (*FINEST, *pricing) if d in dims)
        base = Aggregation(
            kind=endpoint.name,
            buckets=buckets,
            width_seconds=DAY,
            group_by=finest,
            filters=usage_filters,
            metrics=endpoint.metric_names,
            gauge=endpoint.has_gauge,
        )
        if endpoint.has_gauge:
            # A gauge is not a sum of units: priced here, row by row (a few rows a day).
            for start, values, metrics in store.aggregate(base):
                row = dict(zip(finest, values, strict=True)) | dict(
                    zip(endpoint.metric_names, metrics, strict=True)
                )
                day = datetime.fromtimestamp(start, UTC).date()
                for line in storage_line_items(row, day, book):
                    if wanted is not None and line.name not in wanted:
                        continue
                    key = tuple(line.name if g == "line_item" else row.get(g) for g in group_by)
                    add(start, key, line.amount, line.quantity, line.unit)
            continue
        combos = store.aggregate(replace(base, group_by=pricing, metrics=endpoint.metric_names[:1]))
        if not combos:
            continue
        prices = _price_rows(endpoint.name, pricing, combos, book, wanted)
        if not prices:
            continue
        priced = PricedAggregation(
            base=base,
            items=LINEAR_ITEMS[endpoint.name],
            price_dimensions=pricing,
            prices=prices,
            output=group_by,
        )
        for start, key, amount, quantity, unit in store.aggregate_priced(priced):
            add(start, key, amount, quantity, unit)

    by_bucket: dict[int, list[dict[str, Any]]] = {}
    for (start, key), (amount, quantity, unit) in sorted(
        totals.items(), key=lambda kv: (kv[0][0], tuple(_order(v) for v in kv[0][1]))
    ):
        result: dict[str, Any] = {
            "object": result_object,
            "amount": {"value": float(amount), "currency": "usd"},
            **dict.fromkeys(COSTS.group_fields),
            "quantity": None,
            "quantity_unit": None,
        }
        result.update(zip(group_by, key, strict=True))
        if "line_item" in group_by:
            result["quantity"] = _number(quantity)
            result["quantity_unit"] = unit
        by_bucket.setdefault(start, []).append(result)
    return by_bucket
