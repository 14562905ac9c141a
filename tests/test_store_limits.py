"""Sums stay exact however many events at the largest values: no overflow, no 500."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from openusage.server.events import EventRules, parse_events
from openusage.store import Aggregation, DuckDBStore, ResultShape
from openusage.store.base import COLUMNS
from openusage.store.rollups import ROLLUPS, covering

from .conftest import ADMIN_KEY, DAY, start_server, stop_server

DAY0 = 1_700_006_400


def test_vector_store_sizes_past_64_bits_are_summed_exactly(tmp_path: Path) -> None:
    """8,193 stores at the largest size (2^50 bytes) add up past 2^63: an ingest-only key
    could once make every query over them answer 500."""
    running = start_server(tmp_path, "--lookback-days", "0")
    try:
        events = [
            {"id": f"vs-{i}", "type": "vector_stores", "timestamp": DAY0 + 60, "project_id": "p",
             "vector_store_id": f"vs_{i}", "usage_bytes": 2**50}
            for i in range(8_193)
        ]  # fmt: skip
        running.ingest_ok(events)
        window = {"start_time": DAY0, "end_time": DAY0 + DAY}
        with httpx.Client(base_url=running.api, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
            usage = client.get("/organization/usage/vector_stores", params=window)
            costs = client.get("/organization/costs", params={**window, "group_by": "line_item"})
        assert usage.status_code == 200, usage.text
        (result,) = json.loads(usage.text)["data"][0]["results"]
        assert result["usage_bytes"] == 8_193 * 2**50 > 2**63
        assert costs.status_code == 200, costs.text
        (line,) = costs.json()["data"][0]["results"]
        assert line["line_item"] == "vector store storage"
        assert line["quantity"] == 8_193 * 2**20 * 24  # GiB-hours: 2^50 bytes is 2^20 GiB
    finally:
        stop_server(running)


def test_token_sums_past_64_bits_are_exact_through_raw_events_and_rollups(tmp_path: Path) -> None:
    """Four events of 2^62 tokens each (the API takes at most 10^12 an event; the store
    takes what it is given) sum to 2^64, read raw, rolled up and compacted."""
    store = DuckDBStore(tmp_path / "big.duckdb")
    try:
        rows = parse_events(
            [
                {"id": f"e{i}", "type": "embeddings", "timestamp": DAY0 + i, "input_tokens": 1}
                for i in range(4)
            ],
            EventRules(now=DAY0 + DAY),
        )
        at = COLUMNS.index("input_tokens")
        rows = [(*row[:at], 2**62, *row[at + 1 :]) for row in rows]
        store.append(rows[:2])
        store.roll()
        store.compact(force=True)
        store.append(rows[2:])  # two rolled up and compacted, two read raw
        query = Aggregation(
            kind="embeddings",
            buckets=[(DAY0, DAY0 + DAY)],
            width_seconds=DAY,
            group_by=(),
            filters={},
            metrics=("input_tokens",),
        )
        shape = ResultShape("result", ("input_tokens", "project_id"))
        written = [(DAY0, 1, '[{"object":"result","input_tokens":18446744073709551616,"project_id":null}]')]
        assert [values for _, _, values in store.aggregate(query)] == [(2**64,)]
        assert store.aggregate_json(query, shape) == written
        store.roll()
        assert [values for _, _, values in store.aggregate(query)] == [(2**64,)]
        assert store.aggregate_json(query, shape) == written
    finally:
        store.close()


def hostile_events(first: int, count: int, now: int) -> list[dict[str, object]]:
    """Events whose ids and four string fields are long and each one distinct."""
    return [
        {
            "id": f"e{i}-" + "i" * 200,
            "type": "completions",
            "timestamp": now - i % 86_400,
            **{field: field[0] * 250 + str(i) for field in ("model", "project_id", "user_id", "api_key_id")},
            "input_tokens": 5,
        }
        for i in range(first, first + count)
    ]


def test_a_store_that_cannot_roll_up_at_close_still_closes_and_loses_nothing(tmp_path: Path) -> None:
    """Rolling up 100,000 events whose strings are long and distinct needs more than 64MiB
    (appending them does not: it spills). Closing must close the file anyway; the events
    are read raw, then rolled up, after the next open."""
    path = tmp_path / "tight.duckdb"
    store = DuckDBStore(path, memory_limit="64MiB")
    now = 1_800_000_000
    events = hostile_events(0, 100_000, now)
    assert store.append(parse_events(events, EventRules(now=now))).inserted == 100_000
    store.close()  # the roll-up may fail here; the close must not
    reopened = DuckDBStore(path)
    try:
        query = Aggregation(
            kind="completions",
            buckets=[(now - 2 * 86_400, now + 1)],
            width_seconds=86_400,
            group_by=(),
            filters={},
            metrics=("input_tokens",),
        )
        assert sum(metrics[0] for _, _, metrics in reopened.aggregate(query)) == 500_000
    finally:
        reopened.close()


def test_rebuilding_rollups_stays_within_a_tight_memory_limit(tmp_path: Path) -> None:
    """Rollups are filled a share of the events at a time, so rolling up a backlog or
    rebuilding needs bounded memory: 150,000 events of long distinct strings are rebuilt
    under 128MB (summed in one GROUP BY they ran out), each counted once."""
    store = DuckDBStore(tmp_path / "tight.duckdb", memory_limit="128MB")
    now = 1_800_000_000
    try:
        for first in range(0, 150_000, 10_000):
            store.append(parse_events(hostile_events(first, 10_000, now), EventRules(now=now)))
        store.rebuild_rollups()
        assert store.unrolled() == 0
        query = Aggregation(
            kind="completions",
            buckets=[(now - 2 * 86_400, now + 1)],
            width_seconds=86_400,
            group_by=("project_id",),
            filters={},
            metrics=("input_tokens",),
        )
        answers = [store.aggregate(query, using=plan) for plan in covering(query, ROLLUPS["completions"])]
    finally:
        store.close()
    assert answers, "some rollup answers by project"
    for rows in answers:
        assert len(rows) == 150_000 and {metrics for _, _, metrics in rows} == {(5,)}


def test_a_write_that_fails_inside_its_transaction_leaves_the_store_working(tmp_path: Path) -> None:
    """A batch that fails halfway into its commit is rolled back: nothing of it is stored,
    and the next batch commits as if it had never been tried."""
    store = DuckDBStore(tmp_path / "rollback.duckdb")
    try:
        good = parse_events(
            [{"id": f"ok-{i}", "type": "embeddings", "timestamp": DAY0, "input_tokens": 1} for i in range(3)],
            EventRules(now=DAY0),
        )
        broken = [tuple("not a number" if i == len(COLUMNS) - 1 else v for i, v in enumerate(good[0]))]
        broken[0] = ("broken", *broken[0][1:])
        try:
            store.append(broken)
        except Exception:  # the table of the batch cannot be made: the write fails
            pass
        else:
            raise AssertionError("a row with text for a count was stored")
        assert store.append(good).inserted == 3
        assert store.stored_events(0, 10) and {e[1][0] for e in store.stored_events(0, 10)} == {
            "ok-0",
            "ok-1",
            "ok-2",
        }
    finally:
        store.close()


def test_the_count_of_events_not_rolled_up_is_exact(tmp_path: Path) -> None:
    """``openusage rollups show`` says how many events are not rolled up yet."""
    store = DuckDBStore(tmp_path / "unrolled.duckdb")
    try:
        events = [
            {"id": f"u-{i}", "type": "embeddings", "timestamp": DAY0, "input_tokens": 1} for i in range(7)
        ]
        store.roll()
        assert store.unrolled() == 0
        with store._maintenance_lock:  # the background roller waits: the count is seen before a roll
            store.append(parse_events(events, EventRules(now=DAY0)))
            assert store.unrolled() == 7
        store.roll()
        assert store.unrolled() == 0
    finally:
        store.close()
