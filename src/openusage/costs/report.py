"""The costs endpoint's results: usage of every kind, priced, grouped as asked."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any, NamedTuple

from ..catalogue import COSTS, USAGE_ENDPOINTS, USAGE_KINDS
from ..store import AggregateRow, Aggregation, EventStore
from ..store.base import DIMENSIONS, AmountsOutOfRange, LinearItem, PricedAggregation
from .lineitems import EXACT, LINEAR_ITEMS, PRICING_DIMENSIONS, line_name, storage_line_items, variant_of
from .pricebook import PriceBook

DAY = 86400
#: the dimensions besides pricing ones that costs may be grouped by, where a kind has them
PEOPLE = ("project_id", "user_id", "api_key_id", "api_source")


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _order(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else "")


class PricedLine(NamedTuple):
    """One item of one day's (model, tier, ...): its line item name and unit price."""

    item: LinearItem
    name: str
    usd: Decimal | None  # None: no price known, the line costs 0 and says "(unpriced)"


def _combo_lines(
    book: PriceBook, kind: str, dims: tuple[str, ...], start: int, values: tuple[Any, ...]
) -> tuple[PricedLine, ...]:
    """Each item's line for one day's (model, tier, ...)."""
    day = datetime.fromtimestamp(start, UTC).date()
    return _period_lines(book, kind, dims, book.period_start(day), values)


@lru_cache(maxsize=16_384)  # about 25 MB at most
def _period_lines(
    book: PriceBook, kind: str, dims: tuple[str, ...], day: date, values: tuple[Any, ...]
) -> tuple[PricedLine, ...]:
    """Each item's line for (model, tier, ...) over a run of days with the same prices: the
    same few for every request, so remembered. (Looked up day by day, the first costs query
    over 180 days took most of a second looking up tens of thousands.)"""
    combo = dict(zip(dims, values, strict=True))
    model, batch, tier = combo.get("model"), bool(combo.get("batch")), combo.get("service_tier")
    variant = variant_of(kind, combo)
    lines: list[PricedLine] = []
    for item in LINEAR_ITEMS[kind]:
        name = line_name(item.item, model, batch, tier, variant)
        quote = book.quote(model, item.item, day, batch=batch, service_tier=tier, variant=variant)
        usd = None if quote is None else quote.usd
        name = name if quote is not None else f"{name} (unpriced)"
        lines.append(PricedLine(item, name, usd))
    return tuple(lines)


@cache
def _quantities(kind: str) -> Callable[[Sequence[int]], Sequence[int]]:
    """A kind's item quantities (in ``LINEAR_ITEMS`` order) from its metric sums."""
    place = {metric: i for i, metric in enumerate(USAGE_KINDS[kind].metric_names)}
    terms = [[(place[metric], sign) for metric, sign in item.terms] for item in LINEAR_ITEMS[kind]]
    if any(sign <= 0 for item in terms for _, sign in item):
        # Usage summed at a coarser grain is priced only because no quantity falls as
        # rows add up: a term that subtracts would break that.
        raise ValueError(f"a {kind} line item subtracts a metric")
    if len(terms) > 1 and all(len(item) == 1 for item in terms):
        return itemgetter(*(item[0][0] for item in terms))  # one call a row, not one an item
    return lambda sums: [sum(sums[i] * sign for i, sign in item) for item in terms]


def _narrowed(
    prices: list[tuple[Any, ...]], pricing: tuple[str, ...], filters: Mapping[str, tuple[str | bool, ...]]
) -> dict[str, tuple[str | bool, ...]]:
    """``filters`` narrowed to the (model, batch, ...) values the price rows name, so that
    the store reads only their rows (the join with the price rows decides the rest).

    A dimension is left alone where a row has no value (usage without one is priced too,
    and a filter would drop it) and, for a flag, where the rows have both values. (Costs
    take no filter on a pricing dimension, so none is replaced.)"""
    narrowed = dict(filters)
    for place, dimension in enumerate(pricing, start=1):
        values = {p[place] for p in prices}
        if None in values or (DIMENSIONS[dimension] == "boolean" and len(values) > 1):
            continue
        narrowed[dimension] = tuple(sorted(values))
    return narrowed


#: (bucket start, pricing values, the line, its quantity, its group in the answer)
Line = tuple[int, tuple[Any, ...], PricedLine, int, tuple[Any, ...]]


def _lines(
    rows: list[AggregateRow],
    query: Aggregation,
    book: PriceBook,
    group_by: tuple[str, ...],
    wanted: frozenset[str] | None,
    people: int = 0,
) -> Iterator[Line]:
    """The lines with usage of the rows of ``query``, grouped by its first ``people``
    dimensions, then by what prices its kind; only the names ``wanted``, if given."""
    quantities = _quantities(query.kind)
    pricing = query.group_by[people:]
    for start, values, metrics in rows:
        who = dict(zip(query.group_by[:people], values, strict=False))
        combo = values[people:]
        for priced, quantity in zip(
            _combo_lines(book, query.kind, pricing, start, combo), quantities(metrics), strict=True
        ):
            if quantity and (wanted is None or priced.name in wanted):
                key = tuple(priced.name if g == "line_item" else who.get(g) for g in group_by)
                yield start, combo, priced, quantity, key


def _priced_by_who(
    usage: Aggregation, lines: list[Line], people: int, group_by: tuple[str, ...]
) -> PricedAggregation:
    """``usage`` (grouped by its first ``people`` dimensions, then by what prices its kind)
    priced with the prices of ``lines``, read only for the metrics and values they need."""
    pricing = usage.group_by[people:]
    prices = [(start, *combo, p.item.item, p.name, p.usd, p.item.unit) for start, combo, p, _, _ in lines]
    names = {p[-4] for p in prices}
    items = tuple(item for item in LINEAR_ITEMS[usage.kind] if item.item in names)
    return PricedAggregation(
        base=replace(
            usage,
            filters=_narrowed(prices, pricing, usage.filters),
            metrics=tuple(dict.fromkeys(metric for item in items for metric, _ in item.terms)),
        ),
        items=items,
        price_dimensions=pricing,
        prices=prices,
        output=group_by,
    )


def cost_results(
    buckets: Sequence[tuple[int, int]],
    group_by: tuple[str, ...],
    filters: dict[str, tuple[str | bool, ...]],
    store: EventStore,
    book: PriceBook,
    result_object: str,
) -> dict[int, list[dict[str, Any]]]:
    """Results per day bucket start: amounts summed exactly, grouped by ``group_by``.

    A line costs its quantity times its unit price, exactly, never rounded: so any
    grouping of the same usage adds up to the same total, and usage may be summed at the
    grain the answer needs before it is priced. A ``line_item`` filter keeps the lines
    whose complete name it lists.
    """
    wanted = frozenset(str(v) for v in filters["line_item"]) if "line_item" in filters else None
    usage_filters = {k: v for k, v in filters.items() if k != "line_item"}
    #: per bucket start, per group: [amount, quantity, unit]
    totals: dict[int, dict[tuple[Any, ...], list[Any]]] = {}

    def add(start: int, key: tuple[Any, ...], amount: Decimal, quantity: Decimal | int, unit: str) -> None:
        acc = totals.setdefault(start, {}).setdefault(key, [Decimal(0), Decimal(0), unit])
        acc[0] = EXACT.add(acc[0], amount)
        acc[1] = EXACT.add(acc[1], quantity)

    for endpoint in USAGE_ENDPOINTS:
        dims = endpoint.group_fields
        if any(name not in dims for name in usage_filters):
            # Usage that cannot be told by key (vector storage, sessions) cannot match a
            # key filter.
            continue
        pricing = tuple(d for d in PRICING_DIMENSIONS[endpoint.name] if d in dims)
        base = Aggregation(
            kind=endpoint.name,
            buckets=buckets,
            width_seconds=DAY,
            group_by=tuple(d for d in (*PEOPLE, *pricing) if d in dims),
            filters=usage_filters,
            metrics=endpoint.metric_names,
            gauge=endpoint.has_gauge,
        )
        if endpoint.has_gauge:
            # A gauge is not a sum of units: priced here, row by row (a few rows a day).
            for start, values, metrics in store.aggregate(base):
                row = dict(zip(base.group_by, values, strict=True)) | dict(
                    zip(endpoint.metric_names, metrics, strict=True)
                )
                day = datetime.fromtimestamp(start, UTC).date()
                for line in storage_line_items(row, day, book):
                    if wanted is not None and line.name not in wanted:
                        continue
                    key = tuple(line.name if g == "line_item" else row.get(g) for g in group_by)
                    add(start, key, line.amount, line.quantity, line.unit)
            continue
        # The lines of each day's (model, tier, ...), with their prices.
        at_prices = replace(base, group_by=pricing)
        lines = list(_lines(store.aggregate(at_prices), at_prices, book, group_by, wanted))
        people = tuple(d for d in base.group_by if d in group_by)  # costs group by no pricing one
        if people and lines:
            by_who = replace(base, group_by=(*people, *pricing))
            try:
                # The store sums the usage per group and line, and prices it.
                priced_rows = store.aggregate_priced(_priced_by_who(by_who, lines, len(people), group_by))
            except AmountsOutOfRange:
                # Past the engine's decimals: priced here from its 128-bit sums (slower).
                lines = list(_lines(store.aggregate(by_who), by_who, book, group_by, wanted, len(people)))
            else:
                for start, key, amount, quantity, unit in priced_rows:
                    add(start, key, amount, quantity, unit)
                continue
        for start, _, priced, quantity, key in lines:
            amount = Decimal(0) if priced.usd is None else EXACT.multiply(quantity, priced.usd)
            add(start, key, amount, quantity, priced.item.unit)

    template: dict[str, Any] = {
        "object": result_object,
        "amount": None,
        **dict.fromkeys(COSTS.group_fields),
        "quantity": None,
        "quantity_unit": None,
    }
    by_bucket: dict[int, list[dict[str, Any]]] = {}
    for start, groups in totals.items():
        results = by_bucket[start] = []
        for key in sorted(groups, key=lambda key: tuple(_order(v) for v in key)):
            amount, quantity, unit = groups[key]
            result = template.copy()
            result["amount"] = {"value": float(amount), "currency": "usd"}
            result.update(zip(group_by, key, strict=True))
            if "line_item" in group_by:
                result["quantity"] = _number(quantity)
                result["quantity_unit"] = unit
            results.append(result)
    return by_bucket
