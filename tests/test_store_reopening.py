"""DuckDB gives a database up after a checkpoint fails (for memory or disk): every
statement fails until it is opened again. The store opens it again by itself: the request
that met the failure gets a 503 to send again, nothing acknowledged is lost, a commit that
DuckDB made durable before its checkpoint failed counts once when sent again, and the
requests after it are answered.

The failure is DuckDB's own, injected at its checkpoint (``debug_checkpoint_abort``, a
DuckDB setting made for testing this); squeezing DuckDB's memory during a checkpoint
fails the same way, but not at a moment a test can choose.
"""

from __future__ import annotations

import gc
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import duckdb
import pytest
from starlette.testclient import TestClient

from openusage.server import create_app
from openusage.server.events import EventRules, parse_events
from openusage.settings import Settings
from openusage.store import DuckDBStore, StoreRestarting, WriteUnfinished
from openusage.store.base import Aggregation, Row

from .conftest import ADMIN_KEY, DAY
from .test_server_errors import check_error

DAY0 = 1_700_006_400
EMBEDDINGS = "/organization/usage/embeddings"
#: what DuckDB says of a commit whose checkpoint failed
DURABLE = "COMMIT succeeded and is durable"


def events(count: int, first: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"e-{n}",
            "type": "embeddings",
            "timestamp": DAY0 + n,
            "model": "m",
            "project_id": f"p{n % 3}",
            "input_tokens": n,
        }
        for n in range(first, first + count)
    ]


def rows(batch: list[dict[str, Any]]) -> list[Row]:
    return parse_events(batch, EventRules(now=DAY0 + 2 * DAY))


def tokens(count: int, first: int = 0) -> int:
    """The input tokens of ``events(count, first)``."""
    return sum(range(first, first + count))


def totals(store: DuckDBStore, **kwargs: Any) -> dict[str | None, int]:
    """Input tokens by project over the day, read as the router plans (or ``using``)."""
    query = Aggregation("embeddings", [(DAY0, DAY0 + DAY)], DAY, ("project_id",), {}, ("input_tokens",))
    return {groups[0]: sums[0] for _, groups, sums in store.aggregate(query, **kwargs)}


def expected(count: int) -> dict[str | None, int]:
    by_project: dict[str | None, int] = {}
    for n in range(count):
        by_project[f"p{n % 3}"] = by_project.get(f"p{n % 3}", 0) + n
    return by_project


def fail_next_checkpoint(store: DuckDBStore, *, at_commit: bool) -> None:
    """DuckDB aborts its next checkpoint, and then invalidates the database; with
    ``at_commit``, the next commit checkpoints (as a commit does past the log's threshold)."""
    with store._maintenance_lock, store._write_lock:  # no roll or commit meanwhile
        if at_commit:
            store._con.execute("SET checkpoint_threshold = '1KB'")
        store._con.execute("PRAGMA debug_checkpoint_abort = 'before_header'")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    opened = DuckDBStore(tmp_path / "usage.duckdb")
    assert opened.append(rows(events(5_000))).inserted == 5_000
    yield opened
    opened.close()


@pytest.mark.parametrize(
    ("count", "kept", "said"),
    [
        # written to the log, then the checkpoint past its threshold fails: durable
        (100, True, DURABLE),
        # large enough that DuckDB writes it into the file at once: not committed
        (1_000, False, "Failed to create checkpoint"),
    ],
)
def test_a_commit_whose_checkpoint_fails_counts_once_and_the_store_opens_again(
    store: DuckDBStore, count: int, kept: bool, said: str
) -> None:
    fail_next_checkpoint(store, at_commit=True)
    batch = rows(events(count, first=5_000))
    with store._maintenance_lock, pytest.raises(WriteUnfinished, match="opened again") as refused:
        store.append(batch)  # the roller holds off: the commit's is the checkpoint that fails
    assert said in str(refused.value)  # DuckDB's own reason
    # Opened again at the next use, with what the file holds.
    assert totals(store) == expected(5_000 + count if kept else 5_000)
    again = store.append(batch)
    assert (again.inserted, again.duplicates) == ((0, count) if kept else (count, 0))
    # Writes go on, and the rollups add each event once.
    assert store.append(rows(events(1_000, first=5_000 + count))).inserted == 1_000
    store.roll()
    store.compact(force=True)
    assert store.unrolled() == 0
    assert totals(store) == totals(store, using=None) == expected(6_000 + count)
    assert store.problem() is None
    # Each event has a place of its own, as the export walks them.
    places = [place for place, _ in store.stored_events(0, 100_000)]
    assert len(places) == len(set(places)) == 6_000 + count
    assert store.last_place() == max(places)


def test_a_health_check_finds_a_failure_nothing_else_has_met_and_opens_the_database_again(
    store: DuckDBStore,
) -> None:
    fail_next_checkpoint(store, at_commit=False)
    with pytest.raises(duckdb.FatalException):
        store._con.execute("CHECKPOINT")  # as the roller's checkpoint would fail
    assert store.problem() is None
    assert totals(store) == expected(5_000)  # no 503 for the first read after it


def test_what_a_failed_store_acknowledged_is_in_the_file_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "usage.duckdb"
    store = DuckDBStore(path)
    try:
        store.append(rows(events(2_000)))
        fail_next_checkpoint(store, at_commit=True)
        with store._maintenance_lock, pytest.raises(WriteUnfinished, match=DURABLE):
            store.append(rows(events(100, first=2_000)))
        assert store.append(rows(events(900, first=2_100))).inserted == 900
    finally:
        store.close()
    reopened = DuckDBStore(path)
    try:
        assert totals(reopened) == totals(reopened, using=None) == expected(3_000)
        assert reopened.append(rows(events(3_000))).duplicates == 3_000
    finally:
        reopened.close()


def test_the_server_answers_503_to_send_again_then_carries_on(store: DuckDBStore, tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "usage.duckdb", admin_key=ADMIN_KEY, lookback_days=None)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    day = {"start_time": DAY0, "end_time": DAY0 + DAY}

    def total(http: TestClient) -> int:
        page = http.get(EMBEDDINGS, params=day, headers=headers)
        assert page.status_code == 200, page.text
        return sum(r["input_tokens"] for b in page.json()["data"] for r in b["results"])

    with TestClient(create_app(settings, store=store), base_url="http://test/v1") as http:
        # A checkpoint fails where no request sees it (the roller's): the next read meets
        # the invalidated database.
        fail_next_checkpoint(store, at_commit=False)
        with pytest.raises(duckdb.FatalException):
            store._con.execute("CHECKPOINT")
        refused = http.get(EMBEDDINGS, params=day, headers=headers)
        error = check_error(refused, 503, None)
        assert error["type"] == "server_error"
        assert refused.headers["retry-after"] == "1"
        assert "opened again" in error["message"]
        assert "Checkpoint aborted" in error["message"]  # DuckDB's own reason
        assert total(http) == tokens(5_000)
        # A batch whose commit's checkpoint fails: a 503 to send it again, and once sent
        # again it counts once.
        fail_next_checkpoint(store, at_commit=True)
        body = {"events": events(100, first=5_000)}  # durable, as above
        with store._maintenance_lock:
            unfinished = http.post("/organization/usage/events", json=body, headers=headers)
        error = check_error(unfinished, 503, None)
        assert unfinished.headers["retry-after"] == "1"
        assert "Send it again" in error["message"] and DURABLE in error["message"]
        health = http.get("http://test/health")
        assert health.json()["status"] == "ok"  # opened again by the health check itself
        sent_again = http.post("/organization/usage/events", json=body, headers=headers)
        assert sent_again.status_code == 200
        assert (sent_again.json()["inserted"], sent_again.json()["duplicates"]) == (0, 100)
        assert total(http) == tokens(5_100)


def test_the_store_says_why_while_the_database_cannot_be_opened_again(
    store: DuckDBStore, tmp_path: Path
) -> None:
    fail_next_checkpoint(store, at_commit=False)
    with pytest.raises(duckdb.FatalException):
        store._con.execute("CHECKPOINT")
    # The file cannot be written (immutable: even root may not), so opening it fails.
    path = tmp_path / "usage.duckdb"
    locked = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if locked.returncode != 0:
        pytest.skip(f"cannot make a file immutable here (needs root and ext4): {locked.stderr.strip()}")
    try:
        problem = store.problem()
        assert problem is not None and "could not be opened again" in problem
        with pytest.raises(StoreRestarting, match="could not be opened again"):
            totals(store)
        with pytest.raises(WriteUnfinished, match="could not be opened again"):
            store.append(rows(events(10, first=5_000)))
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    # Tried again at most once a second: once it opens, everything acknowledged is there.
    deadline = time.monotonic() + 30
    while store.problem() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.problem() is None
    assert totals(store) == expected(5_000)
    assert store.append(rows(events(10, first=5_000))).inserted == 10


def test_writers_and_readers_at_once_ride_through_repeated_failures(store: DuckDBStore) -> None:
    """Four writers that send a refused batch again, and two readers, while the database
    fails three times: every batch counts once, and nothing waits forever."""
    stop = threading.Event()
    answered: list[int] = []

    def write(writer: int) -> None:
        for n in range(20):
            batch = rows(events(50, first=10_000 + (writer * 20 + n) * 50))
            while True:
                try:
                    store.append(batch)
                    break
                except WriteUnfinished:
                    continue

    def read() -> None:
        while not stop.is_set():
            with suppress(StoreRestarting):
                answered.append(sum(totals(store).values()))

    def fail() -> None:
        """DuckDB's next checkpoint, asked for now, fails (another transaction may hold it off)."""
        while True:
            try:
                with store._db.using():
                    store._cursor().execute("PRAGMA debug_checkpoint_abort = 'before_header'")
                    store._cursor().execute("CHECKPOINT")
            except StoreRestarting:
                return
            except duckdb.TransactionException:
                continue

    with ThreadPoolExecutor(6) as pool:
        readers = [pool.submit(read) for _ in range(2)]
        writers = [pool.submit(write, w) for w in range(4)]
        try:
            for _ in range(3):
                fail()
                time.sleep(0.05)
            for done in writers:
                done.result(timeout=120)
        finally:
            stop.set()
        for done in readers:
            done.result(timeout=120)
    everything = tokens(5_000) + tokens(4_000, first=10_000)
    assert totals(store) == totals(store, using=None)
    assert sum(totals(store).values()) == everything
    assert answered and all(tokens(5_000) <= total <= everything for total in answered)


def test_the_cursors_of_threads_that_ended_are_not_kept(store: DuckDBStore) -> None:
    """The server's worker threads come and go (anyio ends idle ones): each thread's cursor
    goes with it, so a long-running server does not gather them."""
    for _ in range(50):
        worker = threading.Thread(target=store.last_place)
        worker.start()
        worker.join()
    gc.collect()
    assert len(store._db._cursors) < 5
