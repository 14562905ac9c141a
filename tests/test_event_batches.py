"""The fast path for whole batches (msgspec, column by column) against the careful one
(``events.parse_events``), which states the rules: whenever the fast path accepts a
batch, the careful one accepts it too and makes the very same rows; and batches as real
clients send them do take the fast path."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openusage.catalogue import USAGE_KINDS
from openusage.demo import demo_events
from openusage.server.batches import FEW_EVENTS, fast_rows
from openusage.server.errors import ApiError
from openusage.server.events import EventRules, events_from_body, parse_events
from openusage.store.base import COLUMN_DEFAULTS
from openusage.store.duckdb import batch_table
from openusage.store.event_columns import EventColumns

NOW = 1_800_000_000
RULES = EventRules(now=NOW)


def careful(events: list[Any], max_events: int = 10_000) -> list[tuple[Any, ...]] | None:
    """What the server's careful path makes of a batch: its rows, or None for an error."""
    try:
        return parse_events(events_from_body({"events": events}, max_events), RULES)
    except ApiError:
        return None


def test_every_kind_of_demo_event_takes_the_fast_path_to_the_same_rows() -> None:
    events = list(demo_events(NOW - 2 * 86_400, NOW))
    assert {e["type"] for e in events} == set(USAGE_KINDS)
    for start in range(0, len(events), 1000):
        batch = events[start : start + 1000]
        rows = fast_rows(orjson.dumps({"events": batch}), RULES, 10_000)
        expected = careful(batch)
        assert rows is not None and expected is not None and list(rows) == expected
        assert batch_table([rows], given_only=True).equals(batch_table([expected], given_only=True))


#: values that break some rule somewhere: wrong types, edges, NULs, unknown words
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.just(10**12 + 1),
    st.sampled_from([0.0, 1.0, 2.5, -1.0, 1e300]),
    st.sampled_from(["", "x" * 257, "a\x00b", "not a time", "2027-01-15T10:00:00", "nonsense"]),
    st.just([1]),
)
stamps = st.one_of(
    st.integers(NOW - 10**9, NOW + 86_400),
    st.floats(NOW - 10**6, NOW + 10**6, allow_nan=False),
    st.sampled_from(["2026-11-25T10:00:00Z", "2027-01-15T10:00:00+02:00"]),
)


@st.composite
def valid_event(draw: st.DrawFn, kind: str | None = None) -> dict[str, Any]:
    """An event the rules may well accept: right types, values from the catalogue, token
    counts drawn freely (so their identities hold or fail by chance)."""
    kind = kind or draw(st.sampled_from(list(USAGE_KINDS)))
    endpoint = USAGE_KINDS[kind]
    made: dict[str, Any] = {"id": draw(st.sampled_from(["e1", "e2", "x" * 256])), "type": kind}
    made["timestamp"] = draw(stamps)
    for d in endpoint.dimensions:
        if d.type == "boolean":
            choices: Any = st.sampled_from([None, True, False])
        elif d.values is not None:
            choices = st.sampled_from([None, *d.values])
        else:
            choices = st.sampled_from([None, "p1", "m-1"]) if not d.required else st.just("vs_1")
        value = draw(choices)
        if value is not None or draw(st.booleans()):  # null given, or the field left out
            made[d.name] = value
    for name in draw(st.lists(st.sampled_from(endpoint.metric_names), max_size=5, unique=True)):
        made[name] = draw(st.integers(0, 3000))
    return made


@st.composite
def event(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly a plausible event; now and then one field broken, added or taken away."""
    made = draw(valid_event())
    if draw(st.integers(0, 4)) == 0:
        name = draw(st.sampled_from([*made, "extra"]))
        if draw(st.booleans()):
            made[name] = draw(junk)
        else:
            made.pop(name, None)
    return made


#: counts whose identities interact: a total with parts given or left to be worked out
TOKENS = [
    "input_tokens",
    "input_cached_tokens",
    "input_uncached_tokens",
    "input_text_tokens",
    "output_tokens",
]


@st.composite
def alike_batch(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Completion events giving the same counts, as from one client: the fast path
    settles the token identities of such events together, so some events of a group may
    add up and others not."""
    given = draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4, unique=True))
    return [
        {
            "id": f"alike-{number}",
            "type": "completions",
            "timestamp": NOW,
            **{name: draw(st.integers(0, 3000)) for name in given},
        }
        for number in range(draw(st.integers(2, 6)))
    ]


@st.composite
def bad_value_batch(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Plausible events, one of them with a string too short or too long, or a count below
    zero: each breaks one rule and nothing else."""
    batch = draw(st.lists(valid_event(), min_size=1, max_size=3))
    victim = draw(st.sampled_from(batch))
    counts = [name for name in victim if name in USAGE_KINDS[victim["type"]].metric_names]
    if counts and draw(st.booleans()):
        victim[draw(st.sampled_from(counts))] = -1
        return batch
    names = [
        name for name, value in victim.items() if isinstance(value, str) and name not in ("type", "timestamp")
    ]
    victim[draw(st.sampled_from(names))] = draw(st.sampled_from(["", "x" * 257]))
    return batch


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.one_of(st.lists(event(), min_size=0, max_size=6), alike_batch(), bad_value_batch()))
def test_the_fast_path_never_accepts_what_the_careful_one_refuses_nor_differs(
    batch: list[dict[str, Any]],
) -> None:
    rows = fast_rows(orjson.dumps({"events": batch}), RULES, 5)
    if rows is not None:
        expected = careful(batch, max_events=5)
        assert expected is not None and list(rows) == expected
        # what DuckDB reads: the columns the fast path holds, as the rows the careful one makes
        assert batch_table([rows], given_only=True).equals(batch_table([expected], given_only=True))


@st.composite
def one_kind_batch(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Plausible events of one kind, enough of them to be held as columns."""
    kind = draw(st.sampled_from(list(USAGE_KINDS)))
    drawn = draw(st.one_of(alike_batch(), st.lists(valid_event(kind), min_size=1, max_size=4)))
    return [{**e, "id": f"many-{n}"} for n, e in enumerate(drawn * (FEW_EVENTS // len(drawn) + 1))]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(batch=one_kind_batch())
def test_many_events_of_one_kind_are_held_as_columns_that_read_as_their_rows(
    batch: list[dict[str, Any]],
) -> None:
    rows = fast_rows(orjson.dumps({"events": batch}), RULES, 10_000)
    if rows is None:
        return
    expected = careful(batch)
    assert expected is not None
    assert isinstance(rows, EventColumns) and list(rows) == expected
    few = fast_rows(orjson.dumps({"events": batch[:2]}), RULES, 10_000)
    assert few is not None and not isinstance(few, EventColumns)
    # a store of another kind: it fills columns the batch holds none of
    report = {
        "id": "vs",
        "type": "vector_stores",
        "timestamp": NOW,
        "vector_store_id": "vs_1",
        "usage_bytes": 5,
    }
    other = careful([report])
    assert other is not None
    # a group commit's batches, columns and rows mixed, read as all their rows
    commit = [rows, few, other, few, rows]
    every_row = [[*expected, *expected[:2], *other, *expected[:2], *expected]]
    whole = batch_table(every_row)
    assert batch_table(commit).equals(whole)
    # only columns at their default in every row are left to the table's defaults
    given = batch_table(commit, given_only=True)
    for name in whole.column_names:
        if name in given.column_names:
            assert given[name].equals(whole[name])
        else:
            assert whole[name].to_pylist() == [COLUMN_DEFAULTS[name]] * whole.num_rows
