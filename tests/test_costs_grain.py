"""Costs summed at whatever grain the store reads equal every event's lines priced one by
one, exactly, worked out here in Python from the events themselves."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from openusage.buckets import iter_buckets
from openusage.costs import PriceBook, cost_results
from openusage.costs.lineitems import LINEAR_ITEMS, line_name
from openusage.costs.pricebook import rules_from_toml
from openusage.server.events import EventRules, parse_events
from openusage.store import DuckDBStore
from openusage.store.base import COLUMNS

DAY = 86400
DAY0 = 1_700_006_400  # a UTC midnight
MODELS = ("m1", "m2", "m3")
ITEMS = ("input", "cached input", "output")
#: per million tokens: whole billionths a token (2, 1.25), and not (0.0123, 0.0375, 0.00625)
PRICES = (None, "2", "1.25", "0.0123", "0.0375", "0.00625")
RULES = EventRules(now=DAY0 + 100 * DAY)

event_fields = st.fixed_dictionaries(
    {
        "offset": st.integers(0, 2 * DAY - 1),
        "project_id": st.sampled_from([None, "p1", "p2"]),
        "user_id": st.sampled_from([None, "u1", "u2", "u3"]),
        "api_key_id": st.sampled_from([None, "k1", "k2"]),
        "model": st.sampled_from([None, *MODELS]),
        "batch": st.sampled_from([None, True, False]),
        "service_tier": st.sampled_from([None, "default", "flex"]),
        "input_tokens": st.integers(0, 10**6),
        "cached_share": st.integers(0, 4),
        "output_tokens": st.integers(0, 10**5),
    }
)
price_rules = st.fixed_dictionaries(
    {
        (model, item, batch): st.sampled_from(PRICES)
        for model in MODELS
        for item in ITEMS
        for batch in (False, True)
    }
)
group_bys = st.lists(
    st.sampled_from(["project_id", "user_id", "api_key_id", "api_source", "line_item"]),
    unique=True,
    max_size=3,
)
filter_sets = st.sampled_from([{}, {"project_id": ("p1",)}, {"api_key_id": ("k1", "k2")}])


def events_of(fields: list[dict[str, Any]], number: int) -> list[dict[str, Any]]:
    events = []
    for i, f in enumerate(fields):
        event = {"id": f"e{number}-{i}", "type": "completions", "timestamp": DAY0 + f["offset"]}
        event |= {k: v for k, v in f.items() if k not in ("offset", "cached_share") and v is not None}
        event["input_cached_tokens"] = f["input_tokens"] * f["cached_share"] // 4
        events.append(event)
    return events


def book_of(rules: dict[tuple[str, str, bool], str | None]) -> PriceBook:
    text = "".join(
        f'[[price]]\nmodel = "{model}"\nitem = "{item}"\nbatch = {str(batch).lower()}\n'
        f'usd_per_million = "{usd}"\n'
        for (model, item, batch), usd in rules.items()
        if usd is not None
    )
    return PriceBook(rules_from_toml(text, "drawn prices")[0])


def by_the_rule(
    events: list[dict[str, Any]],
    book: PriceBook,
    group_by: tuple[str, ...],
    filters: dict[str, tuple[str, ...]],
) -> dict[tuple[int, tuple[Any, ...]], tuple[Decimal, int]]:
    """Each line of each event priced exactly, then summed per day and group."""
    totals: dict[tuple[int, tuple[Any, ...]], tuple[Decimal, int]] = {}
    for row in parse_events(events, RULES):
        values = dict(zip(COLUMNS, row, strict=True))
        if any(values[name] not in allowed for name, allowed in filters.items()):
            continue
        start = values["ts"] - values["ts"] % DAY
        day = datetime.fromtimestamp(start, UTC).date()
        batch, tier = bool(values["batch"]), values["service_tier"]
        for item in LINEAR_ITEMS["completions"]:
            quantity = sum(values[m] * sign for m, sign in item.terms)
            if quantity <= 0:
                continue
            quote = book.quote(values["model"], item.item, day, batch=batch, service_tier=tier, variant=None)
            name = line_name(item.item, values["model"], batch, tier, None)
            amount = Decimal(0)
            if quote is None:
                name += " (unpriced)"
            else:
                amount = quantity * quote.usd
            key = (start, tuple(name if g == "line_item" else values[g] for g in group_by))
            total, count = totals.get(key, (Decimal(0), 0))
            totals[key] = (total + amount, count + quantity)
    return totals


@settings(max_examples=50, deadline=None)
@given(
    batches=st.lists(st.lists(event_fields, min_size=1, max_size=25), min_size=1, max_size=3),
    rules=price_rules,
    group_by=group_bys,
    filters=filter_sets,
)
def test_costs_equal_every_events_lines_priced_exactly(
    batches: list[list[dict[str, Any]]],
    rules: dict[tuple[str, str, bool], str | None],
    group_by: list[str],
    filters: dict[str, tuple[str, ...]],
) -> None:
    book = book_of(rules)
    events = [events_of(fields, n) for n, fields in enumerate(batches)]
    with tempfile.TemporaryDirectory() as folder:
        store = DuckDBStore(Path(folder) / "costs.duckdb")
        try:
            for batch in events:
                store.append(parse_events(batch, RULES))
            store.roll()  # the first batches from rollups, later ones raw
            store.append(parse_events(events_of(batches[0], len(batches)), RULES))
            buckets = list(iter_buckets(DAY0, DAY0 + 2 * DAY, "1d"))
            wanted: dict[str, tuple[str | bool, ...]] = dict(filters)
            answer = cost_results(buckets, tuple(group_by), wanted, store, book, "organization.costs.result")
        finally:
            store.close()
    # Grouped by line item, each result also carries its quantity; otherwise it is null.
    by_item = "line_item" in group_by
    got = {
        (start, tuple(r[g] for g in group_by)): (r["amount"]["value"], r["quantity"])
        for start, results in answer.items()
        for r in results
    }
    stored = [e for batch in events for e in batch] + events_of(batches[0], len(batches))
    expected = by_the_rule(stored, book, tuple(group_by), filters)
    assert got == {
        key: (float(amount), quantity if by_item else None) for key, (amount, quantity) in expected.items()
    }
