"""A request that needs more memory than the store's limit is told so, and loses nothing.

A query answers one bucket whole, so a bucket of more results than the memory limit holds
(valid ids of 250 characters, 100,000 of them in a day, under the smallest limit the server
takes) cannot be answered: the client gets a 503 that names the limit and what to do, not a
fault, and the server goes on answering everything else exactly. A write that runs out of
memory is rolled back whole: its batch is refused with a 503 to send again, and stores
exactly once when sent again. To make a write run out deterministically, the tests lower
DuckDB's own limit under the store for a moment (as the roller does to make room).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from openusage.server import create_app
from openusage.server.events import EventRules, parse_events
from openusage.settings import Settings
from openusage.store import DuckDBStore, StoreOutOfMemory
from openusage.store.base import Aggregation, LinearItem, PricedAggregation, Row
from openusage.store.rollup_tables import DATABASE

from .conftest import ADMIN_KEY, DAY, start_server, stop_server
from .test_server_errors import check_error

DAY0 = 1_700_006_400
#: the first id number of the events a squeezed store holds before each test
STORED = 1_000_000
COMPLETIONS = "/organization/usage/completions"


def long_events(count: int, first: int = 0) -> list[dict[str, Any]]:
    """Completions in one day, each with its own user and key of 250 characters (the most
    an id may have is 256)."""
    return [
        {
            "id": f"long-{n}",
            "type": "completions",
            "timestamp": DAY0 + n % DAY,
            "model": "m",
            "user_id": f"{n:u>250}",
            "api_key_id": f"{n:k>250}",
            "input_tokens": 1,
        }
        for n in range(first, first + count)
    ]


def rows(events: list[dict[str, Any]]) -> list[Row]:
    return parse_events(events, EventRules(now=DAY0 + 2 * DAY))


@pytest.fixture
def squeezed(tmp_path: Path) -> Any:
    """A store of 20,000 events whose DuckDB memory limit is set to 2 MB (the store's own
    stays 64 MiB), and a function that gives DuckDB its limit back."""
    store = DuckDBStore(tmp_path / "squeezed.duckdb", memory_limit="64MiB")
    store.append(rows(long_events(20_000, first=STORED)))

    def set_limit(limit: str) -> None:
        # Neither a roll nor a commit runs meanwhile; written out, the events can be evicted.
        with store._maintenance_lock, store._write_lock:
            store._con.execute("CHECKPOINT")
            store._con.execute(f"CHECKPOINT {DATABASE}")
            store._con.execute(f"SET memory_limit = '{limit}'")

    set_limit("2MB")
    yield store, lambda: set_limit("64MiB")
    store.close()


def test_sums_of_more_groups_than_memory_holds_fail_naming_the_limit(squeezed: Any) -> None:
    store, give_back = squeezed
    by_user_and_key = Aggregation(
        "completions", [(DAY0, DAY0 + DAY)], DAY, ("user_id", "api_key_id"), {}, ("input_tokens",)
    )
    with pytest.raises(StoreOutOfMemory, match=r"memory limit \(64 MiB\)"):
        store.aggregate(by_user_and_key)
    give_back()
    assert len(store.aggregate(by_user_and_key)) == 20_000


def test_priced_sums_of_more_keys_than_memory_holds_fail_naming_the_limit(squeezed: Any) -> None:
    """What costs grouped by key are priced from."""
    store, give_back = squeezed
    tokens = LinearItem("input", "tokens", (("input_tokens", 1),))
    by_key = PricedAggregation(
        base=Aggregation(
            "completions", [(DAY0, DAY0 + DAY)], DAY, ("api_key_id", "model"), {}, ("input_tokens",)
        ),
        items=(tokens,),
        price_dimensions=("model",),
        prices=[(DAY0, "m", "input", "m, input", Decimal("0.000001"), "tokens")],
        output=("api_key_id",),
    )
    with pytest.raises(StoreOutOfMemory, match=r"memory limit \(64 MiB\)"):
        store.aggregate_priced(by_key)
    give_back()
    priced = store.aggregate_priced(by_key)
    assert len(priced) == 20_000
    assert sum(amount for _, _, amount, _, _ in priced) == Decimal("0.02")


def test_a_query_of_more_results_than_memory_holds_gets_a_503_naming_the_limit(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "usage.duckdb")
    store.append(rows(long_events(100_000)))
    store.close()
    server = start_server(tmp_path, "--lookback-days", "0", "--memory-limit", "64MiB")
    try:
        day = {"start_time": DAY0, "end_time": DAY0 + DAY}
        refused = server.get(COMPLETIONS, {**day, "group_by": "user_id,api_key_id"})
        error = check_error(refused, 503, None)
        assert error["type"] == "server_error"
        assert "memory limit (64 MiB)" in error["message"]
        assert "--memory-limit" in error["message"]
        # The server goes on answering, exactly, and taking events.
        totals = server.get(COMPLETIONS, {**day, "group_by": "model"})
        assert totals.status_code == 200
        [result] = totals.json()["data"][0]["results"]
        assert (result["model"], result["num_model_requests"]) == ("m", 100_000)
        added = server.ingest(long_events(1, first=100_000))
        assert added.status_code == 200
        again = server.get(COMPLETIONS, {**day, "group_by": "model"}).json()["data"][0]["results"]
        assert again[0]["num_model_requests"] == 100_001
    finally:
        stop_server(server)
    # What held the memory, for whoever sets limits (the roller's own message differs).
    assert '"message":"out of memory: ' in server.log_path.read_text()


def test_a_write_that_runs_out_of_memory_stores_nothing_and_the_same_batch_stores_once_later(
    squeezed: Any,
) -> None:
    store, give_back = squeezed
    batch = rows(long_events(20_000, first=10))
    with pytest.raises(StoreOutOfMemory, match=r"memory limit \(64 MiB\)"):
        store.append(batch)
    give_back()
    assert store.append(batch).inserted == 20_000  # none of it was stored the first time
    assert store.append(batch).duplicates == 20_000


def test_a_batch_refused_for_memory_gets_a_503_to_send_again(squeezed: Any, tmp_path: Path) -> None:
    store, give_back = squeezed
    settings = Settings(db_path=tmp_path / "squeezed.duckdb", admin_key=ADMIN_KEY, lookback_days=None)
    body = {"events": long_events(5_000, first=10)}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(create_app(settings, store=store), base_url="http://test/v1") as http:
        refused = http.post("/organization/usage/events", json=body, headers=headers)
        error = check_error(refused, 503, None)
        assert refused.headers["retry-after"] == "1"
        assert error["message"].startswith("The batch was not stored: the store ran out of its memory limit")
        give_back()
        stored = http.post("/organization/usage/events", json=body, headers=headers)
        assert stored.status_code == 200
        assert stored.json()["inserted"] == 5_000


class SqueezedAtCommit:
    """The writer's cursor, but DuckDB's memory limit drops to 2 MB just before it commits:
    the insert went in, and DuckDB then fails the COMMIT itself for memory (a transaction
    error), as seen once in three runs of 100,000 long events under 64 MiB."""

    def __init__(self, store: DuckDBStore, cursor: Any) -> None:
        self._store, self._cursor = store, cursor
        # The store's insert reads its Arrow table by name from the frame that runs it,
        # and this wrapper's frame comes between.
        cursor.execute("SET python_scan_all_frames = true")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            self._store._con.execute("SET memory_limit = '2MB'")
        return self._cursor.execute(sql, *args)


def test_a_commit_that_runs_out_of_memory_stores_nothing_and_the_batch_stores_once_later(
    tmp_path: Path,
) -> None:
    store = DuckDBStore(tmp_path / "commit.duckdb", memory_limit="64MiB")
    try:
        store.append(rows(long_events(1_000, first=STORED)))
        batch = rows(long_events(20_000, first=10))
        writer = store._cursor
        store._cursor = lambda: SqueezedAtCommit(store, writer())  # type: ignore[method-assign]
        try:
            with (
                store._maintenance_lock,
                pytest.raises(StoreOutOfMemory, match=r"memory limit \(64 MiB\)") as refused,
            ):
                store.append(batch)
            assert "Failed to commit" in str(refused.value.__context__)  # the insert went in
        finally:
            store._cursor = writer  # type: ignore[method-assign]
            store._con.execute("SET memory_limit = '64MiB'")
        assert store.append(batch).inserted == 20_000  # none of it was stored the first time
        assert store.append(batch).duplicates == 20_000
    finally:
        store.close()
