"""Shared fixtures: a real server process on a free port, over a real database file."""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

DAY = 86400
ADMIN_KEY = "sk-admin-test-" + "x" * 24
# Test data lives in its own windows of time, one per test, so that tests sharing a
# server never see each other's events. Windows start in 2001, on UTC midnights, and
# stay clear of 2025, the year of the captured responses that golden tests replay.
FIRST_WINDOW = 978_307_200
GOLDEN_YEAR = (1_735_689_600, 1_767_225_600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running ``openusage serve`` process and helpers to talk to it."""

    base_url: str
    db_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    admin_key: str = ADMIN_KEY
    _next_window: int = FIRST_WINDOW

    @property
    def api(self) -> str:
        return self.base_url + "/v1"

    def window(self, days: int = 10) -> int:
        """A UTC midnight with ``days`` days after it (and one spare) that no other test uses."""
        start = self._next_window
        self._next_window += (days + 1) * DAY
        assert self._next_window < GOLDEN_YEAR[0], "test windows ran into the golden year"
        return start

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.api, headers=headers, timeout=30)

    def get(self, path: str, params: Any = None, key: str | None = None) -> httpx.Response:
        with self.client(key) as c:
            return c.get(path, params=params)

    def ingest(self, events: list[dict[str, Any]], key: str | None = None) -> httpx.Response:
        with self.client(key) as c:
            return c.post("/organization/usage/events", json={"events": events})

    def ingest_ok(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.ingest(events)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def page(self, path: str, params: Any) -> dict[str, Any]:
        response = self.get(path, params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def walk(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every bucket of every page, following ``next_page``."""
        buckets: list[dict[str, Any]] = []
        page = self.page(path, params)
        buckets += page["data"]
        while page["has_more"]:
            page = self.page(path, {**params, "page": page["next_page"]})
            buckets += page["data"]
        return buckets

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """An ``openusage`` command on this server's database."""
        return self.cli_plain(*args, "--db", str(self.db_path))

    def cli_plain(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args)


#: the stores the server's tests run against: the embedded default, and ClickHouse in process
STORES = ("duckdb", "chdb")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """An ``openusage`` command in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "openusage", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )


def start_server(
    tmp: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    guess_limit: bool = False,
    store: str = "duckdb",
) -> Server:
    """A server process; the suite sends many wrong keys on purpose from one address, so the
    limit on failed authentications is off unless ``guess_limit`` asks for the default.
    ``store`` is one of ``STORES`` (the keys stay in a file beside ``usage.duckdb``)."""
    port = free_port()
    if not guess_limit:
        extra = ("--auth-failures-per-minute", "0", *extra)
    if store == "chdb":
        extra = ("--store", f"chdb://{tmp / 'usage.chdb'}", *extra)
    db_path = tmp / "usage.duckdb"
    process_env = {**os.environ, "OPENUSAGE_ADMIN_KEY": ADMIN_KEY, **(env or {})}
    # The log goes to a file: a pipe nobody reads would fill up and stall the server.
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "openusage", "serve", "--db", str(db_path), "--port", str(port), *extra],
            env=process_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
        time.sleep(0.05)
    return Server(base_url=base_url, db_path=db_path, process=process, log_path=log_path)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session", params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each store in turn: the tests of the shared server run against every one."""
    kind: str = request.param
    return kind


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> Iterator[Server]:
    """The shared server, with the look-back check off so that tests may use any past window."""
    running = start_server(tmp_path_factory.mktemp("server"), "--lookback-days", "0", store=store_kind)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[openai.OpenAI]:
    """The official client, validating every answer strictly against its own types."""
    with openai.OpenAI(
        admin_api_key=server.admin_key,
        api_key="unused",
        base_url=server.api,
        _strict_response_validation=True,
        max_retries=0,
    ) as c:
        yield c


def event(kind: str, ts: int, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": event_id or f"{kind}-{ts}-{next(_ids)}", "type": kind, "timestamp": ts, **fields}


_ids = itertools.count()


#: the project and user of the gateway tests' proxy keys
PROJECT, USER = "proj_gateway", "user_gateway"


@pytest.fixture(scope="session")
def upstream() -> Iterator[str]:
    """The fake upstream as a process of its own; its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "openusage", "fake-upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/models", timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, "the fake upstream did not start"
            time.sleep(0.05)
    yield base
    process.kill()
    process.wait()


def proxy_key(server: Server, project: str = PROJECT, user: str | None = USER) -> tuple[str, str]:
    """A new proxy key's secret and id."""
    made = server.cli(
        "keys", "create", "--scope", "proxy", "--project", project, *(["--user", user] if user else [])
    )
    assert made.returncode == 0, made.stderr
    key_id = re.search(r"\((key_\w+),", made.stderr)
    assert key_id is not None, made.stderr
    return made.stdout.strip(), key_id[1]
