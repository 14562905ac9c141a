"""Reliability: crashes, load, shutdown, backups, secrets and start-up, each against the
real server process."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from openusage.store import DuckDBStore

from .conftest import ADMIN_KEY, DAY, STORES, Server, event, start_server, stop_server

EMBEDDINGS = "/organization/usage/embeddings"


def count_events(server: Server, day0: int, days: int = 1) -> int:
    page = server.page(EMBEDDINGS, {"start_time": day0, "end_time": day0 + days * DAY, "limit": 31})
    return sum(r["num_model_requests"] for b in page["data"] for r in b["results"])


def batch_of(day0: int, client: int, number: int, size: int) -> list[dict[str, Any]]:
    return [
        event(
            "embeddings",
            day0 + (number * size + i) % DAY,
            f"load-{day0}-{client}-{number}-{i}",
            input_tokens=1,
        )
        for i in range(size)
    ]


def post(base: str, batch: list[dict[str, Any]]) -> bool:
    """One try at a batch: True when the server acknowledged it."""
    try:
        response = httpx.post(
            f"{base}/v1/organization/usage/events",
            json={"events": batch},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        )
    except httpx.TransportError:
        return False
    return response.status_code == 200


@pytest.mark.parametrize("store", STORES)
def test_sigkill_during_concurrent_ingestion_loses_nothing_acknowledged(tmp_path: Path, store: str) -> None:
    running = start_server(tmp_path, "--lookback-days", "0", store=store)
    day0 = running.window(1)
    clients, batches, size = 4, 30, 200
    acked: list[set[int]] = [set() for _ in range(clients)]
    killed = threading.Event()

    def ingest(client: int) -> None:
        for number in range(batches):
            if killed.is_set():
                return
            if post(running.base_url, batch_of(day0, client, number, size)):
                acked[client].add(number)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(ingest, c) for c in range(clients)]
        while sum(map(len, acked)) < clients * batches // 3:
            time.sleep(0.01)
        running.process.send_signal(signal.SIGKILL)
        killed.set()
        for future in futures:
            future.result()
    running.process.wait()
    acknowledged = sum(map(len, acked)) * size
    assert 0 < acknowledged < clients * batches * size

    restarted = start_server(tmp_path, "--lookback-days", "0", store=store)
    try:
        stored = count_events(restarted, day0)
        # Every acknowledged event survived; a batch in flight at the kill may have too.
        assert acknowledged <= stored <= acknowledged + clients * size
        # The clients retry everything they did not see acknowledged: exact totals.
        for client in range(clients):
            for number in range(batches):
                if number not in acked[client]:
                    assert post(restarted.base_url, batch_of(day0, client, number, size))
        assert count_events(restarted, day0) == clients * batches * size
    finally:
        stop_server(restarted)


def test_concurrent_ingest_and_queries_for_a_bounded_time(server: Server) -> None:
    day0 = server.window(1)
    deadline = time.monotonic() + 4
    sent = [0, 0, 0]
    failures: list[str] = []

    def ingest(client: int) -> None:
        number = 0
        while time.monotonic() < deadline:
            if post(server.base_url, batch_of(day0, client, number, 100)):
                sent[client] += 100
            else:
                failures.append(f"ingest {client}/{number}")
            number += 1

    def query() -> int:
        done = 0
        with server.client() as c:
            while time.monotonic() < deadline:
                for params in ({"bucket_width": "1h", "limit": 24}, {"group_by": "model"}):
                    response = c.get(
                        EMBEDDINGS, params={"start_time": day0, "end_time": day0 + DAY, **params}
                    )
                    if response.status_code != 200:
                        failures.append(f"query {response.status_code}")
                    done += 1
        return done

    with ThreadPoolExecutor(5) as pool:
        writers = [pool.submit(ingest, c) for c in range(3)]
        readers = [pool.submit(query) for _ in range(2)]
        for future in writers:
            future.result()
        queries = sum(f.result() for f in readers)
    assert failures == []
    assert queries > 10 and sum(sent) > 1000
    assert count_events(server, day0) == sum(sent)


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    running = start_server(tmp_path, "--lookback-days", "0")
    day0 = running.window(1)
    big = [
        event("embeddings", day0 + i % DAY, f"term-{i}", input_tokens=1, model="m" * 100)
        for i in range(10_000)
    ]
    body = json.dumps({"events": big}).encode()
    result: dict[str, Any] = {}
    half_sent, shutting_down = threading.Event(), threading.Event()

    def halves() -> Iterator[bytes]:
        """The body in two halves, the second once the server is shutting down: the
        request is surely in flight when the signal comes, however fast it is answered."""
        yield body[: len(body) // 2]
        half_sent.set()
        shutting_down.wait(30)
        yield body[len(body) // 2 :]

    def send() -> None:
        result["response"] = httpx.post(
            f"{running.api}/organization/usage/events",
            content=halves(),
            headers={
                "Authorization": f"Bearer {ADMIN_KEY}",
                "content-type": "application/json",
                "content-length": str(len(body)),
            },
            timeout=60,
        )

    sender = threading.Thread(target=send)
    sender.start()
    assert half_sent.wait(30)
    time.sleep(0.05)  # the first half reaches the server
    running.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while "Shutting down" not in running.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    shutting_down.set()
    sender.join()
    # Uvicorn ends with the signal it was given, after a graceful shutdown.
    assert running.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert result["response"].status_code == 200
    log = running.log_path.read_text()
    assert "Finished server process" in log
    # The signal came while the request was in flight: the server began shutting down
    # before it logged the answer to the batch.
    answered = next(
        i
        for i, line in enumerate(log.splitlines())
        if '"path":"/v1/organization/usage/events"' in line.replace(" ", "")
    )
    shutting = next(i for i, line in enumerate(log.splitlines()) if "Shutting down" in line)
    assert shutting < answered
    restarted = start_server(tmp_path, "--lookback-days", "0")
    try:
        assert count_events(restarted, day0) == 10_000
    finally:
        stop_server(restarted)


def test_backup_while_serving_and_ingesting(server: Server, tmp_path: Path) -> None:
    day0 = server.window(1)
    assert server.ingest_ok([event("embeddings", day0 + i, f"bk-{i}", input_tokens=3) for i in range(500)])
    stop = threading.Event()

    def keep_ingesting() -> None:
        number = 0
        while not stop.is_set():
            post(server.base_url, batch_of(day0, 9, number, 50))
            number += 1

    writer = threading.Thread(target=keep_ingesting)
    writer.start()
    try:
        target = tmp_path / "copy.duckdb"
        made = server.cli_plain(
            "backup", str(target), "--base-url", server.api, "--api-key", server.admin_key
        )
    finally:
        stop.set()
        writer.join()
    assert made.returncode == 0, made.stderr
    copied = int(made.stdout.split()[0])
    store = DuckDBStore(target)
    try:
        (rows,) = store._con.execute("SELECT count(*) FROM events").fetchone()  # type: ignore[misc]
        (mine,) = store._con.execute("SELECT sum(input_tokens) FROM events WHERE id LIKE 'bk-%'").fetchone()  # type: ignore[misc]
    finally:
        store.close()
    assert rows == copied and mine == 1500
    again = server.cli_plain("backup", str(target), "--base-url", server.api, "--api-key", server.admin_key)
    assert again.returncode == 1 and "exists" in again.stderr


def test_ingest_keys_cannot_take_a_backup(server: Server, tmp_path: Path) -> None:
    key = server.cli("keys", "create", "--scope", "ingest").stdout.strip()
    made = server.cli_plain("backup", str(tmp_path / "x.duckdb"), "--base-url", server.api, "--api-key", key)
    assert made.returncode == 3 and "403" in made.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_keys_are_stored_only_as_hashes_and_never_logged(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        secret = running.cli("keys", "create").stdout.strip()
        assert running.get(EMBEDDINGS, {"start_time": int(time.time()) - DAY}, key=secret).status_code == 200
        wrong = secret[:-4] + "abcd"
        response = running.get(EMBEDDINGS, {"start_time": 1}, key=wrong)
        assert response.status_code == 401 and wrong not in response.text
    finally:
        stop_server(running)
    keyring = (tmp_path / "usage.keys.sqlite").read_bytes()
    assert secret.encode() not in keyring and secret[12:].encode() not in keyring
    with sqlite3.connect(tmp_path / "usage.keys.sqlite") as db:
        assert all(len(h) == 64 for (h,) in db.execute("SELECT hash FROM api_keys"))
    log = running.log_path.read_text()
    assert secret not in log and wrong not in log and ADMIN_KEY not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["logger"] == "openusage.access"]
    assert [r["status"] for r in requests[-2:]] == [200, 401]
    assert all(re.fullmatch("req_[0-9a-f]{32}", r["request_id"]) for r in requests)
    assert len({r["request_id"] for r in requests}) == len(requests) >= 3, "each request its own id"
    assert all(r["path"] == "/v1" + EMBEDDINGS for r in requests[-2:])
    assert response.headers["x-request-id"] == requests[-1]["request_id"]


def test_the_server_refuses_to_start_on_a_database_it_cannot_open(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_text("this is not a database")
    (tmp_path / "duckdb").mkdir()
    (tmp_path / "chdb").mkdir()
    running = [start_server(tmp_path / "duckdb"), start_server(tmp_path / "chdb", store="chdb")]
    try:
        for store, reason in (
            (str(garbage), "is not a valid DuckDB database file"),
            (str(running[0].db_path), "is in use by another process"),
            (str(tmp_path / "missing" / "dir.duckdb"), "No such file or directory"),
            (f"duckdb://{tmp_path / 'missing' / 'dir.duckdb'}", "No such file or directory"),
            (f"chdb://{tmp_path / 'chdb' / 'usage.chdb'}", "is it in use by another process"),
            ("duckdb://host/x.duckdb", "is a local path"),
            ("postgres://host/db", "unknown store"),
        ):
            started = subprocess.run(
                [sys.executable, "-m", "openusage", "serve", "--store", store, "--port", "9"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert started.returncode == 1, store
            # chDB prints its own line ("Cannot lock file ...") before ours
            assert "Error: the server cannot start:" in started.stderr and reason in started.stderr
    finally:
        for server in running:
            stop_server(server)


@pytest.mark.parametrize(
    ("limit", "reason"),
    [("lots", "is not a size like 512MB"), ("-5MB", "is not a size"), ("1KB", "is too small")],
)
def test_the_server_refuses_a_memory_limit_it_cannot_keep(tmp_path: Path, limit: str, reason: str) -> None:
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "openusage",
            "serve",
            "--db",
            str(tmp_path / "m.duckdb"),
            "--memory-limit",
            limit,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 1
    assert started.stderr.startswith("Error: the server cannot start:") and reason in started.stderr
    assert not (tmp_path / "m.duckdb").exists(), "nothing was created"


@pytest.mark.parametrize(
    ("given", "shown"), [((), "memory limit 512MB"), (("--memory-limit", "300MB"), "memory limit 300MB")]
)
def test_the_server_says_how_much_memory_its_database_may_use(
    tmp_path: Path, given: tuple[str, ...], shown: str
) -> None:
    running = start_server(tmp_path, *given)
    stop_server(running)
    assert shown in running.log_path.read_text()


@pytest.mark.parametrize(("limit", "shown"), [("300MB", "286.1 MiB"), (None, "488.2 MiB")])
def test_the_memory_limit_reaches_the_database(tmp_path: Path, limit: str | None, shown: str) -> None:
    """Given or by default (512MB: DuckDB's own default, 80% of RAM, let the cache grow with
    the file)."""
    store = DuckDBStore(tmp_path / "limited.duckdb", memory_limit=limit)
    try:
        (setting,) = store._con.execute("SELECT current_setting('memory_limit')").fetchone()  # type: ignore[misc]
    finally:
        store.close()
    assert setting == shown  # DuckDB shows sizes in binary units


def test_health_says_ok_without_a_key(server: Server) -> None:
    response = httpx.get(server.base_url + "/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_a_cursor_survives_a_restart(tmp_path: Path) -> None:
    running = start_server(tmp_path, "--lookback-days", "0")
    day0 = running.window(3)
    path = "/organization/usage/embeddings"
    params = {"start_time": day0, "end_time": day0 + 3 * DAY, "limit": 1}
    try:
        running.ingest_ok([event("embeddings", day0 + d * DAY, input_tokens=d + 1) for d in range(3)])
        first = running.page(path, params)
    finally:
        stop_server(running)
    restarted = start_server(tmp_path, "--lookback-days", "0")
    try:
        second = restarted.page(path, {**params, "page": first["next_page"]})
        assert second["data"][0]["start_time"] == day0 + DAY
        assert second["data"][0]["results"][0]["input_tokens"] == 2
    finally:
        stop_server(restarted)
