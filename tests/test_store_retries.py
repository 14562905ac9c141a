"""Exactly-once counting with the newest keys held in memory: a retry is found whether its
key is held, older than those held, or stored before the store was reopened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from openusage.server.events import EventRules, parse_events
from openusage.store import DuckDBStore
from openusage.store import duckdb as duckdb_store
from openusage.store.recent_keys import HOUR, MAX_RUNS, NO_FLOOR, RecentKeys, floor_for, hour_ranges
from openusage.store.urls import open_store

from .conftest import DAY, start_server, stop_server

DAY0 = 1_700_006_400


def rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return parse_events(events, EventRules(now=DAY0 + 400 * 86400))


def hourly(hour: int, count: int, prefix: str = "e") -> list[tuple[Any, ...]]:
    """``count`` embeddings events in hour ``hour`` after DAY0."""
    return rows(
        [
            {"id": f"{prefix}-{hour}-{i}", "type": "embeddings", "timestamp": DAY0 + hour * HOUR + i,
             "input_tokens": 1}
            for i in range(count)
        ]
    )  # fmt: skip


def stored_tokens(store: DuckDBStore) -> int:
    [(total,)] = store._con.cursor().execute("SELECT sum(input_tokens) FROM events").fetchall()
    return int(total or 0)


def test_a_retry_after_reopening_counts_once(tmp_path: Path) -> None:
    """The held keys are read back from the file when it opens."""
    path = tmp_path / "store.duckdb"
    batch = hourly(0, 50)
    with_store = DuckDBStore(path)
    assert with_store.append(batch).inserted == 50
    with_store.close()
    store = DuckDBStore(path)
    try:
        assert store.append(batch).duplicates == 50
        assert store.append([*batch[:10], *hourly(1, 5)]).inserted == 5
        assert stored_tokens(store) == 55
    finally:
        store.close()


def test_a_retry_older_than_the_keys_held_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for 100 keys, the first hours' keys are dropped as later hours arrive: their
    retries are found in the table, before and after reopening (the held keys read back
    in two queries)."""
    monkeypatch.setattr(duckdb_store, "FILL_KEYS", 50)
    path = tmp_path / "store.duckdb"
    store = DuckDBStore(path, recent_keys=100)
    try:
        first = hourly(0, 30)
        assert store.append(first).inserted == 30
        for hour in range(1, 6):
            assert store.append(hourly(hour, 30)).inserted == 30
        assert store._recent.floor_hour == DAY0 // HOUR + 3  # hours 3, 4 and 5 held
        assert store.append(first).duplicates == 30
        assert store.append(hourly(5, 30)).duplicates == 30  # held
    finally:
        store.close()
    store = DuckDBStore(path, recent_keys=100)
    try:
        assert (store._recent.floor_hour, store._recent.size) == (DAY0 // HOUR + 3, 90)
        for hour in range(6):
            assert store.append(hourly(hour, 30)).duplicates == 30
        assert store.append(hourly(6, 30)).inserted == 30
        assert stored_tokens(store) == 210
    finally:
        store.close()


def test_an_id_with_another_timestamp_or_a_timestamp_with_another_id_is_new(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    try:
        original = hourly(0, 20)
        store.append(original)
        moved = hourly(2, 20)  # the same places in another hour, other ids
        renamed = hourly(0, 20, prefix="other")  # the same timestamps, other ids
        assert store.append(moved).inserted == 20
        assert store.append(renamed).inserted == 20
        same_ids_later = rows(
            [
                {"id": f"e-0-{i}", "type": "embeddings", "timestamp": DAY0 + 7 * HOUR + i, "input_tokens": 1}
                for i in range(20)
            ]
        )
        assert store.append(same_ids_later).inserted == 20
        assert stored_tokens(store) == 80
    finally:
        store.close()


def test_a_held_hash_is_only_a_hint_the_table_settles(tmp_path: Path) -> None:
    """Two keys may share a 64-bit hash: a new event whose hash is held (as if another
    key's) is still stored, since only the table says what is stored."""
    store = DuckDBStore(tmp_path / "store.duckdb")
    try:
        (new,) = hourly(3, 1)
        [(shared,)] = duckdb.execute("SELECT hash($1::VARCHAR, $2::BIGINT)", [new[0], new[2]]).fetchall()
        store._recent.add(np.array([shared], dtype=np.uint64), np.array([new[2]], dtype=np.int64))
        assert store.append([new]).inserted == 1
        assert store.append([new]).duplicates == 1
        assert stored_tokens(store) == 1
    finally:
        store.close()


def stamps_of(hours: list[int]) -> np.ndarray:
    return np.array([h * HOUR + 5 for h in hours], dtype=np.int64)


def test_the_held_keys_answer_for_every_key_they_hold() -> None:
    held = RecentKeys(capacity=1_000)
    hashes = np.arange(1, 401, dtype=np.uint64) * np.uint64(2**40 + 7)
    hours = [100 + i % 4 for i in range(400)]
    # One run per addition, more than are kept apart in an hour: merged ones must keep all.
    for i in range(0, 400, 5):
        held.add(hashes[i : i + 5], stamps_of(hours[i : i + 5]))
    assert held.size == 400
    assert all(len(runs) <= MAX_RUNS for runs in held._hours.values())
    assert held.unsure(hashes, stamps_of(hours)).all()
    others = hashes + np.uint64(1)
    assert not held.unsure(others, stamps_of(hours)).any()
    # The same hash in another hour is another key.
    assert not held.unsure(hashes[:4], stamps_of([200, 200, 200, 200])).any()


def test_over_capacity_the_oldest_hours_go_and_keys_before_them_are_unsure() -> None:
    held = RecentKeys(capacity=10)
    held.add(np.arange(1, 7, dtype=np.uint64), stamps_of([10] * 6))
    assert held.floor_hour == NO_FLOOR
    held.add(np.arange(7, 13, dtype=np.uint64), stamps_of([11] * 6))
    assert (held.floor_hour, held.size) == (11, 6)
    # Not held, but before the floor: it may be stored, so the table is asked.
    assert held.unsure(np.array([99], dtype=np.uint64), stamps_of([10])).all()
    assert not held.unsure(np.array([99], dtype=np.uint64), stamps_of([11])).any()
    # Keys for hours before the floor are not noted: the set holds only complete hours.
    held.add(np.array([5], dtype=np.uint64), stamps_of([3]))
    assert held.size == 6


def test_the_floor_keeps_the_newest_hours_that_fit() -> None:
    newest_first = [(30, 4), (29, 3), (27, 3), (20, 5)]
    assert floor_for(newest_first, 100) == NO_FLOOR
    assert floor_for(newest_first, 10) == 27
    assert floor_for(newest_first, 9) == 29
    assert floor_for(newest_first, 3) == 31
    assert floor_for([], 0) == NO_FLOOR


def test_keys_are_read_back_in_ranges_of_hours() -> None:
    oldest_first = [(20, 5), (27, 3), (29, 3), (30, 4)]
    assert hour_ranges(oldest_first, 100) == [(20, 31)]
    assert hour_ranges(oldest_first, 6) == [(20, 27), (27, 30), (30, 31)]
    assert hour_ranges(oldest_first, 2) == [(20, 27), (27, 29), (29, 30), (30, 31)]
    assert hour_ranges([], 10) == []


def test_serve_holds_as_many_keys_as_it_is_told(tmp_path: Path) -> None:
    """``serve --held-keys 0`` holds no key, so every commit asks the table: a retry still
    counts once, before and after a restart. A count the store cannot take is refused."""
    events = [
        {"id": f"held-{i}", "type": "completions", "timestamp": DAY0 + i, "input_tokens": 1}
        for i in range(40)
    ]
    for restart in (False, True):
        running = start_server(tmp_path, "--lookback-days", "0", "--held-keys", "0")
        try:
            assert "memory limit 512MB, 0 keys held)" in running.log_path.read_text()
            if not restart:
                assert running.ingest_ok(events[:30])["inserted"] == 30
            answer = running.ingest_ok(events)
            assert (answer["inserted"], answer["duplicates"]) == ((10, 30) if not restart else (0, 40))
            page = running.page(
                "/organization/usage/completions", {"start_time": DAY0, "end_time": DAY0 + DAY}
            )
            assert page["data"][0]["results"][0]["input_tokens"] == 40
        finally:
            stop_server(running)
    (tmp_path / "default").mkdir()
    default = start_server(tmp_path / "default")
    stop_server(default)
    assert f"memory limit 512MB, {duckdb_store.RECENT_KEYS:,} keys held)" in default.log_path.read_text()

    def refused(*args: str) -> subprocess.CompletedProcess[str]:
        # a server that starts instead would run until the timeout
        command = [sys.executable, "-m", "openusage", "serve", "--held-keys", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    negative = refused("-1", "--db", str(tmp_path / "usage.duckdb"))
    assert negative.returncode == 2
    assert "--held-keys" in negative.stderr
    on_chdb = refused("10", "--store", f"chdb://{tmp_path / 'usage.chdb'}")
    assert on_chdb.returncode == 1
    assert "held keys (--held-keys) are the embedded store's" in on_chdb.stderr


def test_a_store_opened_without_held_keys_finds_every_retry_in_the_table(tmp_path: Path) -> None:
    store = open_store(f"duckdb://{tmp_path / 'store.duckdb'}", held_keys=0)
    assert isinstance(store, DuckDBStore)
    try:
        first = hourly(0, 30)
        assert store.append(first).inserted == 30
        assert store._recent.size == 0  # nothing held: the table is asked
        assert store.append([*first, *hourly(1, 10)]).duplicates == 30
        assert stored_tokens(store) == 40
    finally:
        store.close()


def test_after_resent_events_commits_look_first_until_one_holds_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resends come in runs: a commit that met one makes the next look for stored keys
    before it inserts (no insert to roll back), until a commit of new events only. The
    count is the same either way; which commits inserted first is read from the store's
    own insert, watched as it runs."""
    store = DuckDBStore(tmp_path / "store.duckdb")
    inserted_first: list[bool] = []
    insert_hashed = DuckDBStore._insert_hashed

    def watched(*args: Any) -> Any:
        inserted_first[-1] = True
        return insert_hashed(*args)

    monkeypatch.setattr(DuckDBStore, "_insert_hashed", staticmethod(watched))

    def append(batch: list[tuple[Any, ...]]) -> Any:
        inserted_first.append(False)
        return store.append(batch)

    try:
        first = hourly(0, 30)
        assert append(first).inserted == 30
        assert append(first).duplicates == 30  # inserted, rolled back, looked up
        mixed = append([*first[:10], *hourly(1, 10)])
        assert (mixed.inserted, mixed.duplicates) == (10, 10)
        assert append(hourly(2, 10)).inserted == 10  # new events only: ends the run
        assert append(hourly(3, 10)).inserted == 10
        assert append(hourly(3, 10)).duplicates == 10
        assert inserted_first == [True, True, False, False, True, True]
        assert stored_tokens(store) == 60
    finally:
        store.close()
