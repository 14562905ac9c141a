"""The server's memory does not grow with the history it stores.

The same workload (batches of this month's events ingested over HTTP, then the
benchmark's kind of queries over this month, whose answers are the same size at both
sizes) runs against a database of 40,000 events, the last 30 days, and again once it also
holds the 540 days before them at the same rate: nineteen times as many events, as a store
grows in use. Anything kept in memory per stored event (an index of ids, a cache without
a bound) shows up as a higher peak in the second run. The peaks are read from the kernel
(``VmHWM``), never timed.

The second peak is 11 to 13 MiB above the first here, the same at 400,000 events as at
760,000 (a fixed cost, not one per event); once on CI it was 32 MiB (with the history
then packed into the same month). The tolerance is above
that and well under what a per-event structure costs.

What it catches: a Python structure per stored event (a set of ids loaded at start made
the second peak 109 MiB higher). What it cannot: DuckDB's index of unique ids (the cause
of the growth at 10M before store version 3) is loaded a little at a time and added only
15 MiB at 400,000 events; the benchmark at 10M (docs/performance.md) is where that shows.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from openusage.server.events import EventRules, parse_events
from openusage.store import DuckDBStore

from .conftest import DAY, Server, start_server, stop_server

DAY0 = 1_700_006_400
#: the month the workload writes and reads, and the history before it (at the same rate)
DAYS = 30
HISTORY_DAYS = 540
PROJECTS = [f"proj_{i}" for i in range(5)]
MODELS = ["model-a", "model-b"]
#: above the runs' own variation (see above); history must not add more
TOLERANCE_MIB = 48


def history_events(first: int, count: int, first_day: int = 0, days: int = DAYS) -> Iterator[dict[str, Any]]:
    """Completion events over ``days`` days from DAY0 + ``first_day`` days: so few groups that
    every project and model is in every hour, and every user and key in every day."""
    rng = random.Random(first)
    for number in range(first, first + count):
        input_tokens = rng.randrange(1, 5000)
        yield {
            "id": f"history-{number}",
            "type": "completions",
            "timestamp": DAY0 + first_day * DAY + rng.randrange(days * DAY),
            "project_id": rng.choice(PROJECTS),
            "user_id": f"user-{rng.randrange(20)}",
            "api_key_id": f"key_{rng.randrange(5)}",
            "model": rng.choice(MODELS),
            "input_tokens": input_tokens,
            "input_cached_tokens": input_tokens // 3,
            "output_tokens": rng.randrange(1, 900),
        }


def grow(db: Path, first: int, count: int, first_day: int, days: int) -> None:
    """Add ``count`` events straight to the store (HTTP would only make this slower)."""
    store = DuckDBStore(db)
    rules = EventRules(now=DAY0 + DAYS * DAY)
    events = history_events(first, count, first_day, days)
    try:
        for _ in range(count // 20_000):
            store.append(parse_events([next(events) for _ in range(20_000)], rules))
    finally:
        store.close()


def peak_mib(server: Server) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
    return int(kib) // 1024


def workload(server: Server, run: int) -> int:
    """The server's peak memory after ingesting and querying; the answers are checked too."""
    queries: list[tuple[str, dict[str, Any]]] = [
        ("usage/completions", {"start_time": DAY0, "limit": DAYS, "group_by": "model"}),
        ("usage/completions", {"start_time": DAY0, "bucket_width": "1m", "limit": 1440}),
        (
            "usage/completions",
            {"start_time": DAY0, "bucket_width": "1h", "limit": 168, "group_by": ["project_id", "model"]},
        ),
        ("usage/completions", {"start_time": DAY0, "limit": DAYS, "group_by": ["user_id", "api_key_id"]}),
        ("costs", {"start_time": DAY0, "limit": DAYS, "group_by": "line_item"}),
    ]
    new = history_events(10**9 + run * 10**6, 20_000)
    with server.client() as client:
        for _ in range(20):
            batch = [next(new) for _ in range(1000)]
            response = client.post("/organization/usage/events", json={"events": batch})
            assert response.json()["inserted"] == 1000
        for _ in range(3):
            for path, params in queries:
                page = client.get(f"/organization/{path}", params=params).json()
                assert any(bucket["results"] for bucket in page["data"]), (path, params)
    return peak_mib(server)


def test_memory_does_not_grow_with_stored_events(tmp_path: Path) -> None:
    db = tmp_path / "usage.duckdb"
    peaks = []
    growth = [(0, 40_000, 0, DAYS), (40_000, 720_000, -HISTORY_DAYS, HISTORY_DAYS)]
    for run, (first, count, first_day, days) in enumerate(growth):
        grow(db, first, count, first_day, days)
        server = start_server(tmp_path, "--lookback-days", "0")
        try:
            peaks.append(workload(server, run))
        finally:
            stop_server(server)
    small, large = peaks
    assert large <= small + TOLERANCE_MIB, (
        f"peak memory grew from {small} MiB at 40,000 events to {large} MiB at 760,000"
    )


def duckdb_memory(store: DuckDBStore) -> tuple[int, str]:
    """DuckDB's memory in use, in bytes, and its limit as DuckDB shows it."""
    with store._own_cursor(None) as cursor:
        ((used,),) = cursor.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()
        ((limit,),) = cursor.execute("SELECT current_setting('memory_limit')").fetchall()
    return int(used), str(limit)


def test_the_roller_keeps_room_in_duckdbs_memory_and_its_limit_unchanged(tmp_path: Path) -> None:
    """Queries run faster with free memory than at DuckDB's limit (docs/performance.md): the
    roller evicts cached data down to half the limit once it passes three quarters. What
    it evicts stays readable (cached blocks are read again, temporary ones spilled)."""
    limit = 64 * 2**20
    store = DuckDBStore(tmp_path / "room.duckdb", memory_limit="64MiB")
    try:
        shown = duckdb_memory(store)[1]
        with store._own_cursor(None) as cursor:
            with store._write_lock:  # the roller evicts under it: not before this is seen
                cursor.execute(
                    "CREATE TEMP TABLE filler AS "
                    "SELECT range AS n, repeat('x', 200) || range AS s FROM range(300000)"
                )
                assert duckdb_memory(store)[0] > 0.75 * limit  # what a full cache looks like
            deadline = time.monotonic() + 30
            while duckdb_memory(store)[0] > 0.55 * limit:
                assert time.monotonic() < deadline, f"still {duckdb_memory(store)[0]:,} bytes in use"
                time.sleep(0.1)
            assert duckdb_memory(store)[1] == shown
            assert cursor.execute("SELECT count(*), sum(n) FROM filler").fetchall() == [
                (300_000, 300_000 * 299_999 // 2)
            ]
    finally:
        store.close()


def test_large_batches_sent_at_once_are_held_a_few_at_a_time(tmp_path: Path) -> None:
    """24 clients each send a batch of 10,000 events with the longest strings (14 MB, about
    90 MB in memory while it is checked and committed) at the same moment. Held all at once
    they took the server to about 1.6 GiB (2 GiB with 32 clients); the server holds two of
    the largest bodies' worth at a time and the rest wait, under the 1 GiB target."""
    server = start_server(tmp_path)
    try:
        start = peak_mib(server)

        def padded(text: str) -> str:
            return (text + "x" * 256)[:256]

        template = orjson.dumps(
            {
                "events": [
                    {
                        "id": padded(f"c00-{i}-"),
                        "type": "completions",
                        "timestamp": DAY0 + i,
                        "input_tokens": 1,
                        "project_id": padded(f"proj-{i % 7}-"),
                        "user_id": padded(f"user-{i % 13}-"),
                        "api_key_id": padded(f"key-{i % 5}-"),
                        "model": padded(f"model-{i % 3}-"),
                    }
                    for i in range(10_000)
                ]
            }
        )
        answers: list[dict[str, Any]] = []

        def send(client: int) -> None:
            body = template.replace(b'"c00-', b'"c%02d-' % client)  # ids of its own, same length
            answer = httpx.post(
                server.api + "/organization/usage/events",
                content=body,
                headers={"Authorization": f"Bearer {server.admin_key}", "content-type": "application/json"},
                timeout=300,
            )
            answers.append(answer.json())

        clients = [threading.Thread(target=send, args=(n,)) for n in range(24)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        assert [a.get("inserted") for a in answers] == [10_000] * 24, answers[:1]
        peak = peak_mib(server)
        assert peak < 1024, f"peak {peak} MiB (at start {start} MiB)"
    finally:
        stop_server(server)
