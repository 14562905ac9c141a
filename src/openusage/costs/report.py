"""The costs endpoint's results: usage of every kind, priced, grouped as asked."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any, NamedTuple

from ..catalogue import COSTS, USAGE_ENDPOINTS
from ..store import AggregateRow, Aggregation, EventStore
from ..store.base import DIMENSIONS, AmountsOutOfRange, LinearItem, PricedAggregation
from .lineitems import EXACT, LINEAR_ITEMS, PRICING_DIMENSIONS, line_name, storage_line_items, variant_of
from .pricebook import PriceBook

DAY = 86400
#: the dimensions besides pricing ones that costs may be grouped by, where a kind has them
PEOPLE = ("project_id", "user_id", "api_key_id", "api_source")


def _number(value: Decimal | int) -> int | float:
    if isinstance(value, int):
        return value
    return int(value) if value == value.to_integral_value() else float(value)


def _ordered(keys: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Result groups in order, nulls first."""
    try:
        # Without a null to compare, the plain order is the same, and cheaper.
        return sorted(keys)
    except TypeError:  # a null met a value
        return sorted(keys, key=lambda key: tuple((v is not None, "" if v is None else v) for v in key))


class PricedLine(NamedTuple):
    """One item of one day's (model, tier, ...): its line item name and unit price."""

    item: LinearItem
    name: str
    usd: Decimal | None  # None: no price known, the line costs 0 and says "(unpriced)"
    units: int  # the price as a whole number of 10**-scale dollars (0 when unpriced)
    scale: int


def _fixed(amount: Decimal) -> tuple[int, int]:
    """``amount`` as (units, scale): exactly ``units / 10**scale`` dollars."""
    sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):  # NaN or infinity: no price or sum is either
        raise ValueError(f"not a finite amount: {amount}")
    units = int("".join(map(str, digits))) * (-1 if sign else 1)
    return (units * 10**exponent, 0) if exponent >= 0 else (units, -exponent)


#: One result's sums so far, ``[units, scale, quantity, unit]``: its amount exactly, as a
#: whole number of 10**-scale dollars (integers add faster than decimals, and never round),
#: its quantity and the quantity's unit. A list, not an object: a costs page adds up about
#: 15,000 lines, and making and updating an object for each result took a quarter of that
#: work (docs/performance.md, twenty-first session).
Sums = list[Any]


def _add(sums: Sums, units: int, scale: int, quantity: Decimal | int) -> None:
    """Add an amount of ``units`` 10**-``scale`` dollars, and its quantity, to ``sums``."""
    if scale > sums[1]:
        sums[0] *= 10 ** (scale - sums[1])
        sums[1] = scale
    sums[0] += units * 10 ** (sums[1] - scale)
    if isinstance(quantity, int) and isinstance(sums[2], int):
        sums[2] += quantity
    else:
        sums[2] = EXACT.add(sums[2], quantity)


def _usd(sums: Sums) -> float:
    units: int = sums[0]
    power: int = 10 ** sums[1]
    return units / power  # a quotient of integers: correctly rounded


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
        if quote is None:
            lines.append(PricedLine(item, f"{name} (unpriced)", None, 0, 0))
        else:
            lines.append(PricedLine(item, name, quote.usd, *_fixed(quote.usd)))
    return tuple(lines)


@cache
def _item_metrics(kind: str) -> tuple[str, ...]:
    """The metrics a kind's line items are made of (all a line-item query needs to sum)."""
    return tuple(dict.fromkeys(metric for item in LINEAR_ITEMS[kind] for metric, _ in item.terms))


@cache
def _quantities(kind: str, metrics: tuple[str, ...]) -> Callable[[Sequence[int]], Sequence[int]]:
    """A kind's item quantities (in ``LINEAR_ITEMS`` order) from the sums of ``metrics``."""
    place = {metric: i for i, metric in enumerate(metrics)}
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


#: (bucket start, pricing values, the line): a line with usage, for its price
Line = tuple[int, tuple[Any, ...], PricedLine]


#: a line's group in the answer from its name and its row's values
KeyOf = Callable[[str, tuple[Any, ...]], tuple[Any, ...]]


def _key_maker(group_by: tuple[str, ...], who: tuple[str, ...]) -> KeyOf:
    """A line's group in the answer from its name and its row's values (grouped by ``who``
    first); a dimension the kind does not have is null."""
    if group_by == ("line_item",):  # the usual case, made for each of thousands of lines
        return lambda name, _: (name,)
    # Where each part comes from: the line's name (None), the row's values (a place), or
    # nothing (-1).
    places = [None if g == "line_item" else who.index(g) if g in who else -1 for g in group_by]
    return lambda name, values: tuple(name if p is None else None if p < 0 else values[p] for p in places)


def _priced_rows(
    rows: list[AggregateRow], query: Aggregation, book: PriceBook, people: int
) -> Iterator[tuple[int, tuple[Any, ...], tuple[PricedLine, ...], Sequence[int]]]:
    """Each row of ``query`` (grouped by its first ``people`` dimensions, then by what
    prices its kind) with its items' lines and quantities, in the same order."""
    quantities = _quantities(query.kind, query.metrics)
    pricing = query.group_by[people:]
    periods: dict[int, date] = {}  # bucket start -> the run of days with its prices
    for start, values, metrics in rows:
        period = periods.get(start)
        if period is None:
            period = periods[start] = book.period_start(datetime.fromtimestamp(start, UTC).date())
        priced_lines = _period_lines(book, query.kind, pricing, period, values[people:])
        yield start, values, priced_lines, quantities(metrics)


def _lines(
    rows: list[AggregateRow], query: Aggregation, book: PriceBook, wanted: frozenset[str] | None
) -> Iterator[Line]:
    """The lines with usage of the rows of ``query`` (grouped by what prices its kind);
    only the names ``wanted``, if given."""
    for start, values, priced_lines, quantities in _priced_rows(rows, query, book, 0):
        for priced, quantity in zip(priced_lines, quantities, strict=True):
            if quantity and (wanted is None or priced.name in wanted):
                yield start, values, priced


def _add_lines(
    totals: dict[int, dict[tuple[Any, ...], Sums]],
    rows: list[AggregateRow],
    query: Aggregation,
    book: PriceBook,
    group_by: tuple[str, ...],
    wanted: frozenset[str] | None,
    people: int = 0,
) -> None:
    """Add the lines with usage of the rows of ``query`` (grouped by its first ``people``
    dimensions, then by what prices its kind; only the names ``wanted``) to their results'
    sums in ``totals``, each as it is priced: no line is kept, and a line priced at its
    result's scale adds in place."""
    key_of = _key_maker(group_by, query.group_by[:people])
    for start, values, priced_lines, quantities in _priced_rows(rows, query, book, people):
        groups = totals.get(start)
        if groups is None:
            groups = totals[start] = {}
        for priced, quantity in zip(priced_lines, quantities, strict=True):
            if quantity and (wanted is None or priced.name in wanted):
                key = key_of(priced.name, values)
                found = groups.get(key)
                if found is None:
                    groups[key] = [quantity * priced.units, priced.scale, quantity, priced.item.unit]
                elif found[1] == priced.scale and isinstance(found[2], int):
                    found[0] += quantity * priced.units
                    found[2] += quantity
                else:
                    _add(found, quantity * priced.units, priced.scale, quantity)


def _priced_by_who(
    usage: Aggregation, lines: list[Line], people: int, group_by: tuple[str, ...]
) -> PricedAggregation:
    """``usage`` (grouped by its first ``people`` dimensions, then by what prices its kind)
    priced with the prices of ``lines``, read only for the metrics and values they need."""
    pricing = usage.group_by[people:]
    prices = [(start, *combo, p.item.item, p.name, p.usd, p.item.unit) for start, combo, p in lines]
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
    totals: dict[int, dict[tuple[Any, ...], Sums]] = {}  # per bucket start, per group

    def total(start: int, key: tuple[Any, ...], unit: str) -> Sums:
        groups = totals.setdefault(start, {})
        found = groups.get(key)
        if found is None:
            found = groups[key] = [0, 0, 0, unit]
        return found

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
                    _add(total(start, key, line.unit), *_fixed(line.amount), line.quantity)
            continue
        # The lines of each day's (model, tier, ...), with their prices.
        at_prices = replace(base, group_by=pricing, metrics=_item_metrics(endpoint.name))
        usage = store.aggregate(at_prices)
        people = tuple(d for d in base.group_by if d in group_by)  # costs group by no pricing one
        if not people:
            _add_lines(totals, usage, at_prices, book, group_by, wanted)
            continue
        lines = list(_lines(usage, at_prices, book, wanted))
        if not lines:
            continue
        by_who = replace(base, group_by=(*people, *pricing), metrics=_item_metrics(endpoint.name))
        try:
            # The store sums the usage per group and line, and prices it.
            priced_rows = store.aggregate_priced(_priced_by_who(by_who, lines, len(people), group_by))
        except AmountsOutOfRange:
            # Past the engine's decimals: priced here from its 128-bit sums (slower).
            _add_lines(totals, store.aggregate(by_who), by_who, book, group_by, wanted, len(people))
        else:
            for start, key, amount, quantity, unit in priced_rows:
                _add(total(start, key, unit), *_fixed(amount), quantity)

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
        for key in _ordered(groups):
            sums = groups[key]
            result = template.copy()
            result["amount"] = {"value": _usd(sums), "currency": "usd"}
            result.update(zip(group_by, key, strict=True))
            if "line_item" in group_by:
                result["quantity"] = _number(sums[2])
                result["quantity_unit"] = sums[3]
            results.append(result)
    return by_bucket
