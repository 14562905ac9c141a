"""What an attacker with an HTTP client tries: weak keys, guessing, locked files, forged
cursors, oversized or slow requests, compressed bombs, and files others can read."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import re
import resource
import select
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openusage.catalogue import BY_PATH
from openusage.server import create_app
from openusage.server.cursor import Cursor, CursorSigner
from openusage.server.params import parse_query
from openusage.settings import Settings
from openusage.store import DuckDBStore

from .conftest import ADMIN_KEY, DAY, Server, event, free_port, proxy_key, start_server, stop_server

COMPLETIONS = "/organization/usage/completions"


def serve(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``openusage serve`` expected to refuse to start (so it returns)."""
    return subprocess.run(
        [sys.executable, "-m", "openusage", "serve", "--db", str(tmp / "u.duckdb"), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("x", "32 or more"),
        ("sk-admin-" + "é" * 30, "printable ASCII"),
        ("sk-admin-" + "a" * 30 + " ", "ASCII"),
    ],
)
def test_a_weak_or_unsendable_admin_key_is_refused_at_start(tmp_path: Path, key: str, why: str) -> None:
    done = serve(tmp_path, "--port", str(free_port()), env={"OPENUSAGE_ADMIN_KEY": key})
    assert done.returncode != 0
    assert why in done.stderr and "secrets.token_urlsafe" in done.stderr
    assert "Usage API on" not in done.stdout


def test_a_busy_port_is_one_sentence_before_anything_is_announced(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve(tmp_path, "--port", str(port), env={"OPENUSAGE_ADMIN_KEY": ""})
    assert done.returncode == 1
    assert done.stdout == ""  # no banner, and no admin key made and shown
    (line,) = done.stderr.strip().splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line
    assert not (tmp_path / "u.keys.sqlite").exists()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default limit on failed authentications and short head and body
    deadlines."""
    tmp = tmp_path_factory.mktemp("guarded")
    running = start_server(
        tmp, "--lookback-days", "0", "--header-timeout", "1", "--body-timeout", "1", guess_limit=True
    )
    yield running
    stop_server(running)


def test_guessing_keys_is_limited_per_address_and_valid_keys_spend_nothing(guarded: Server) -> None:
    params = {"start_time": 1_700_000_000}
    # Many good requests first: they do not use up the allowance for failures.
    for _ in range(60):
        assert guarded.get(COMPLETIONS, params).status_code == 200
    statuses = [
        guarded.get(COMPLETIONS, params, key=f"sk-admin-guess-{i:040d}").status_code for i in range(36)
    ]
    assert statuses[:30] == [401] * 30
    # The allowance refills at one every two seconds: a slow machine may grant a guess or two more.
    assert 429 in statuses[30:]
    refused = guarded.get(COMPLETIONS, params, key="sk-admin-guess-again" + "x" * 20)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


def test_files_are_the_owners_alone_and_exposed_ones_are_warned_about(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a usual umask: files would be readable by everyone
    try:
        running = start_server(tmp_path)
        try:
            assert running.ingest_ok([event("embeddings", 1_790_000_000, input_tokens=1)])["inserted"] == 1
            made = [p for p in tmp_path.iterdir() if p.name.startswith("usage.")]
            assert {p.name for p in made} >= {"usage.duckdb", "usage.duckdb.rollups", "usage.keys.sqlite"}
            for path in made:
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        finally:
            stop_server(running)
        (tmp_path / "usage.keys.sqlite").chmod(0o644)
        again = start_server(tmp_path)
        stop_server(again)
        assert "usage.keys.sqlite can be read by other users" in again.log_path.read_text()
    finally:
        os.umask(old)


def test_a_locked_key_file_gives_503_and_holds_up_nothing_else(tmp_path: Path) -> None:
    running = start_server(tmp_path, "--lookback-days", "0")
    try:
        made = running.cli("keys", "create")
        stored_key = made.stdout.strip()
        lock = sqlite3.connect(str(tmp_path / "usage.keys.sqlite"), isolation_level=None)
        lock.execute("PRAGMA locking_mode=EXCLUSIVE")
        lock.execute("BEGIN EXCLUSIVE")
        lock.execute("INSERT INTO meta VALUES ('lock', x'00')")
        try:
            waiting: dict[str, Any] = {}

            def stored() -> None:
                waiting["response"] = running.get(COMPLETIONS, {"start_time": 1_700_000_000}, key=stored_key)

            thread = threading.Thread(target=stored)
            thread.start()
            # While that request waits on the locked file, others are answered.
            health = httpx.get(running.base_url + "/health", timeout=30)
            configured = running.get(COMPLETIONS, {"start_time": 1_700_000_000})
            assert thread.is_alive(), "the stored-key request should still be waiting on the lock"
            assert (health.status_code, configured.status_code) == (200, 200)
            thread.join(30)
            response = waiting["response"]
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert running.get(COMPLETIONS, {"start_time": 1_700_000_000}, key=stored_key).status_code == 200
    finally:
        stop_server(running)


def test_a_cursor_signed_with_a_stolen_secret_cannot_reach_past_its_first_request(server: Server) -> None:
    keys = sqlite3.connect(str(server.db_path.with_name("usage.keys.sqlite")))
    (secret,) = keys.execute("SELECT value FROM meta WHERE name = 'cursor_secret'").fetchone()
    keys.close()
    signer = CursorSigner(bytes(secret))
    day0 = server.window(2)

    def forged(
        params: dict[str, Any], effective_end: int, next_start: int = day0 + DAY, path: str = COMPLETIONS
    ) -> httpx.Response:
        query = parse_query(BY_PATH[path], httpx.QueryParams(params).multi_items(), max_array_values=1000)
        token = signer.encode(Cursor(effective_end=effective_end, next_start=next_start), query.canonical())
        return server.get(path, {**params, "page": token})

    ten_years = 1_790_000_000 + 3650 * DAY
    assert forged({"start_time": day0, "limit": 1}, ten_years).status_code == 400
    explicit = {"start_time": day0, "end_time": day0 + 2 * DAY, "limit": 1}
    assert forged(explicit, day0 + 3 * DAY).status_code == 400
    assert forged(explicit, day0 + 2 * DAY).status_code == 200  # what the server itself signs
    # Nor can it start before the query does: usage from start_time, costs from its midnight.
    assert forged(explicit, day0 + 2 * DAY, next_start=day0 - 60).status_code == 400
    assert forged(explicit, day0 + 2 * DAY, next_start=day0).status_code == 200
    assert forged(explicit, day0 + 2 * DAY, next_start=day0 + 2 * DAY).status_code == 400  # nothing left
    costs = {"start_time": day0 + 3600, "end_time": day0 + 2 * DAY, "limit": 1}
    assert forged(costs, day0 + 2 * DAY, next_start=day0 - DAY, path="/organization/costs").status_code == 400
    assert forged(costs, day0 + 2 * DAY, next_start=day0 - 1, path="/organization/costs").status_code == 400
    assert forged(costs, day0 + 2 * DAY, next_start=day0, path="/organization/costs").status_code == 200


def connect(server: Server) -> socket.socket:
    """A plain socket to the server, for what an HTTP client would not send."""
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def read_answer(sock: socket.socket, ending: bytes) -> bytes:
    """What the server sends until it has sent ``ending``; the connection must stay open."""
    answer = b""
    while not answer.endswith(ending):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {answer[:80]!r}"
        answer += chunk
    return answer


def raw_exchange(server: Server, request: bytes) -> bytes:
    with connect(server) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v1/organization/usage/completions?start_time=" + b"1" * 300_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n", 431),
        (b"GARBAGE\r\n\r\n", 400),
    ],
)
def test_oversized_or_malformed_requests_get_the_error_envelope(
    server: Server, request_bytes: bytes, status: int
) -> None:
    answer = raw_exchange(server, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    assert httpx.Response(status, content=body).json()["error"]["type"] == "invalid_request_error"


def test_a_head_that_grows_past_the_limit_in_small_pieces_is_refused(server: Server) -> None:
    """The limit counts a head across the chunks it arrives in, not per chunk."""
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for n in range(200):  # 200 headers of 1 KiB, sent one at a time
            try:
                sock.sendall(b"X-Header-%d: %s\r\n" % (n, b"a" * 1024))
            except OSError:  # refused and closed: the answer is waiting to be read
                break
            threading.Event().wait(0.002)
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]


def test_heads_under_the_limit_and_bodies_past_it_are_answered(server: Server) -> None:
    # A head of about 60 KB passes; the limit is on heads, never on bodies, even a body
    # that arrives in the same packets as its head.
    answer = raw_exchange(
        server,
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 60_000 + b"\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
    batch = {
        "events": [
            event(
                "completions",
                int(time.time()) - 3600,
                f"big-body-{i}",
                model="gpt-4o-mini",
                project_id="proj_big",
                input_tokens=i,
            )
            for i in range(1_500)
        ]
    }
    body = json.dumps(batch).encode()
    assert len(body) > 2 * 64 * 1024
    post = (
        b"POST /v1/organization/usage/events HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (server.admin_key.encode(), len(body), body)
    )
    with connect(server) as sock:
        sock.sendall(post)
        answer = read_answer(sock, b"}")
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        # The next head on the connection, in two parts: the body before it is no part of it.
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        threading.Event().wait(0.2)
        sock.sendall(b"Host: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_kept_alive_connection_answers_far_more_than_the_limit_in_heads(server: Server) -> None:
    """Each request's head counts alone: a connection's heads together pass the limit."""
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 900 + b"\r\n\r\n"
    with connect(server) as sock:
        for _ in range(3 * 64):  # about 180 KB of heads
            sock.sendall(request)
            answer = read_answer(sock, b'{"status":"ok"}')
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
        # Then a head in two parts: the first part alone is a head still arriving.
        sock.sendall(request[:40])
        threading.Event().wait(0.2)
        sock.sendall(request[40:])
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_pipelined_requests_are_each_answered_in_order(server: Server) -> None:
    requests = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2
    requests += b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    # Each answer's body runs straight into the next answer's status line.
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", raw_exchange(server, requests)) == [b"200", b"200", b"404"]


def test_idle_and_trickling_connections_are_closed(guarded: Server) -> None:
    # Nothing sent: closed without an answer once the head deadline passes.
    assert raw_exchange(guarded, b"") == b""
    # Half a request, then nothing: 408 in the envelope.
    answer = raw_exchange(guarded, b"GET /health HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ")
    # A kept-alive connection trickling a byte at a time is closed too.
    with connect(guarded) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in sock.recv(65536)
        closed = False
        for _ in range(100):
            try:
                sock.sendall(b"G")
                threading.Event().wait(0.1)
            except OSError:
                closed = True
                break
        if not closed:  # the answer (408) or the close arrives on the next read
            assert sock.recv(65536).startswith(b"HTTP/1.1 408") or sock.recv(65536) == b""


def ingest_head(length: int, *, key: str = ADMIN_KEY) -> bytes:
    """The line and headers of a batch of ``length`` bytes to the ingestion endpoint."""
    return (
        b"POST /v1/organization/usage/events HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % (key.encode(), length)
    )


def batch_of_one(ts: int) -> bytes:
    return json.dumps({"events": [event("embeddings", ts, input_tokens=7)]}).encode()


def test_a_trickled_body_gets_408_and_a_slow_steady_one_is_stored(guarded: Server) -> None:
    # A byte every quarter second of a 100 kB body: cut once the 1 s deadline (plus 1/500 s
    # for each byte) has passed, with 408 in the envelope.
    with connect(guarded) as sock:
        sock.sendall(ingest_head(100_000))
        for _ in range(80):  # 20 s at most
            sock.sendall(b" ")
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:
                break
        answer = read_answer(sock, b"}}")
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["message"] == (
            "The request's body did not arrive in time."
        )
        assert b"connection: close" in answer.lower()
    # The access log says what the client was told, not that it left.
    cut = logged(guarded, lambda line: line.get("status") in (408, 499))
    assert cut[-1]["status"] == 408 and cut[-1]["path"] == "/v1/organization/usage/events"
    # 2,400 bytes over about 2 s, past the 1 s deadline but well above 500 bytes a second.
    body = batch_of_one(1_790_000_000)
    body += b" " * (2400 - len(body))
    with connect(guarded) as sock:
        sock.sendall(ingest_head(len(body)))
        for start in range(0, len(body), 120):
            sock.sendall(body[start : start + 120])
            threading.Event().wait(0.1)
        answer = read_answer(sock, b"}")
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["inserted"] == 1


def log_lines(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]


def logged(server: Server, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The server's log lines ``wanted`` picks, once there is one (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        found = [line for line in log_lines(server) if wanted(line)]
        if found or time.monotonic() > deadline:
            return found
        threading.Event().wait(0.1)


def test_a_client_leaving_mid_body_is_logged_as_gone_not_as_a_fault(guarded: Server) -> None:
    with connect(guarded) as sock:
        sock.sendall(ingest_head(1000) + b'{"events": [')
    gone = logged(guarded, lambda line: line.get("status") == 499)
    assert gone and gone[-1]["path"] == "/v1/organization/usage/events"
    assert not [line for line in log_lines(guarded) if line["level"] == "error"]


def test_a_body_waiting_behind_a_slow_pipelined_call_is_not_cut(tmp_path: Path, upstream: str) -> None:
    # The gateway's call takes 3 s upstream; the batch pipelined behind it waits its turn,
    # and that wait is not the client's slowness.
    running = start_server(
        tmp_path, "--upstream", upstream, "--upstream-timeout", "10", "--body-timeout", "1"
    )
    try:
        secret, _ = proxy_key(running)
        call = json.dumps({"model": "slow-3", "messages": [{"role": "user", "content": "hi"}]}).encode()
        slow = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (secret.encode(), len(call), call)
        )
        body = batch_of_one(1_790_000_000)
        with connect(running) as sock:
            sock.sendall(slow)
            # Once the call's own body has been read, the batch's head makes the server stop
            # reading until the call is answered: its body waits unread.
            threading.Event().wait(0.5)
            sock.sendall(ingest_head(len(body)))
            threading.Event().wait(0.3)
            sock.sendall(body)
            answers = read_answer(sock, b'"duplicates":0}')
        assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answers) == [b"200", b"200"], answers[:300]
    finally:
        stop_server(running)


def test_a_body_held_back_for_100_continue_waits_for_the_server_not_against_it(tmp_path: Path) -> None:
    # A stored key's look-up waits 2 s on a locked key file before the server asks for the
    # body; the client, told to wait for "100 Continue", sends nothing meanwhile.
    running = start_server(tmp_path, "--lookback-days", "0", "--body-timeout", "1")
    try:
        stored_key = running.cli("keys", "create").stdout.strip()
        lock = sqlite3.connect(str(tmp_path / "usage.keys.sqlite"), isolation_level=None)
        lock.execute("PRAGMA locking_mode=EXCLUSIVE")
        lock.execute("BEGIN EXCLUSIVE")
        lock.execute("INSERT INTO meta VALUES ('lock', x'00')")
        try:
            body = batch_of_one(1_790_000_000)
            head = ingest_head(len(body), key=stored_key).replace(
                b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"
            )
            with connect(running) as sock:
                sock.sendall(head)
                answer = read_answer(sock, b"}}")
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:80]  # the key file's answer, not 408
    finally:
        stop_server(running)


def test_many_idle_connections_do_not_lock_others_out_under_a_low_open_files_limit(tmp_path: Path) -> None:
    # Started with a soft limit of 200 open files (1,024 is common), the server raises it to
    # its ceiling: 300 connections that send nothing leave room for a real request.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1000:
        pytest.fail(f"this machine's ceiling on open files ({hard}) is too low for the test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
    try:
        running = start_server(tmp_path, "--header-timeout", "60")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    idle: list[socket.socket] = []
    try:
        limits = Path(f"/proc/{running.process.pid}/limits").read_text()
        (line,) = [line for line in limits.splitlines() if line.startswith("Max open files")]
        assert line.split()[3] != "200", line
        for _ in range(300):
            idle.append(connect(running))
        assert httpx.get(running.base_url + "/health", timeout=10).status_code == 200
    finally:
        for sock in idle:
            sock.close()
        stop_server(running)


def test_two_of_the_largest_bodies_are_held_at_once_and_one_past_the_limit_is_refused_at_once(
    server: Server,
) -> None:
    limit = 16 * 1024 * 1024
    # Two batches declaring the largest body each, arriving slowly: the budget is theirs.
    holders = [connect(server) for _ in range(2)]
    for sock in holders:
        sock.sendall(ingest_head(limit) + b'{"events": [')
    threading.Event().wait(0.2)
    # A third batch, large enough to count, waits for its turn...
    body = batch_of_one(1_790_000_000)
    body += b" " * (10_000 - len(body))
    waiting = connect(server)
    waiting.sendall(ingest_head(len(body)) + body)
    # ...while one declaring more than the limit is refused without waiting.
    with connect(server) as over:
        over.sendall(ingest_head(limit + 1))
        assert read_answer(over, b"}}").startswith(b"HTTP/1.1 413 ")
    for sock in [*holders, waiting]:
        readable, _, _ = select.select([sock], [], [], 0.5)
        assert not readable, "answered before its turn"
    holders[0].close()  # a client gone: its share goes to the next
    answer = read_answer(waiting, b'"duplicates":0}')
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"inserted":1' in answer
    waiting.close()
    holders[1].close()


def slow_shares_give_way(server: Server, holder_head: bytes, waiter: bytes, waiter_ending: bytes) -> bytes:
    """Two requests declaring the largest body, at 20 kB/s each (well above the deadline's
    500 bytes a second, far below the pace wanted while others wait, 256 KiB/s), then
    ``waiter``, which needs room: the two get 408 and ``waiter`` its answer, returned."""
    holders = [connect(server) for _ in range(2)]
    for sock in holders:
        sock.sendall(holder_head + b"{")
    answers: dict[socket.socket, bytes] = {}

    def trickle(seconds: float) -> None:
        for _ in range(int(seconds * 10)):
            for sock in holders:
                if sock not in answers:
                    try:
                        refused = bool(select.select([sock], [], [], 0)[0])
                        if not refused:
                            sock.sendall(b" " * 2000)
                    except OSError:  # refused and closed since: the answer waits to be read
                        refused = True
                    if refused:
                        answers[sock] = read_answer(sock, b"}}")
            if len(answers) == len(holders):
                return
            threading.Event().wait(0.1)

    trickle(2.5)  # past the 1 s deadline, with nobody waiting: the budget is theirs
    assert not answers, answers
    with connect(server) as waiting:
        waiting.sendall(waiter)
        trickle(10)
        assert len(answers) == 2, "the slow holders kept the budget"
        for answer in answers.values():
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["message"] == (
                "The request's body arrived too slowly while others waited: send it again."
            )
        answer = read_answer(waiting, waiter_ending)
    for sock in holders:
        sock.close()
    return answer


def test_a_slow_batch_holding_a_share_gives_way_when_others_wait_for_it(guarded: Server) -> None:
    body = batch_of_one(1_790_000_000)
    body += b" " * (10_000 - len(body))  # large enough to need room
    stored = slow_shares_give_way(
        guarded, ingest_head(16 * 1024 * 1024), ingest_head(len(body)) + body, b'"duplicates":0}'
    )
    assert stored.startswith(b"HTTP/1.1 200 ") and b'"inserted":1' in stored


def test_a_slow_call_holding_a_share_gives_way_when_others_wait_for_it(tmp_path: Path, upstream: str) -> None:
    running = start_server(tmp_path, "--upstream", upstream, "--body-timeout", "1")
    try:
        secret, _ = proxy_key(running)

        def call_head(length: int) -> bytes:
            return (
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % (secret.encode(), length)
            )

        call = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
        answer = slow_shares_give_way(running, call_head(64 * 1024 * 1024), call_head(len(call)) + call, b"}")
        assert answer.startswith(b"HTTP/1.1 200 ") and b'"chat.completion"' in answer
    finally:
        stop_server(running)


def test_gzip_batches_are_accepted_and_bombs_refused(server: Server) -> None:
    day0 = server.window(1)
    body = httpx.Request("POST", "/", json={"events": [event("embeddings", day0 + 1, input_tokens=9)]}).read()
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    url = server.api + "/organization/usage/events"
    ok = httpx.post(url, content=gzip.compress(body), headers={**headers, "content-encoding": "gzip"})
    assert ok.status_code == 200 and ok.json()["inserted"] == 1
    bomb = gzip.compress(b" " * (17 * 2**20))  # 17 MB of spaces, about 17 kB sent
    refused = httpx.post(url, content=bomb, headers={**headers, "content-encoding": "gzip"})
    assert refused.status_code == 413 and "inflated" in refused.json()["error"]["message"]
    broken = httpx.post(url, content=b"not gzip", headers={**headers, "content-encoding": "gzip"})
    assert broken.status_code == 400
    two = httpx.post(
        url,
        content=gzip.compress(body) + gzip.compress(body),
        headers={**headers, "content-encoding": "gzip"},
    )
    assert two.status_code == 400 and "one gzip member" in two.json()["error"]["message"]
    other = httpx.post(url, content=body, headers={**headers, "content-encoding": "br"})
    assert other.status_code == 415


class FailingStore(DuckDBStore):
    """A real store whose reads fail, as a full or broken disk would make them."""

    def aggregate(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the disk is on fire")

    aggregate_json = aggregate


def test_a_fault_is_one_enveloped_500_that_does_not_escape_the_app(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingStore(tmp_path / "usage.duckdb")
    settings = Settings(db_path=tmp_path / "usage.duckdb", admin_key=ADMIN_KEY, lookback_days=None)
    try:
        # raise_app_exceptions: an exception that left the app (and made the server log it
        # again and close the connection) would fail this test.
        transport = httpx.ASGITransport(create_app(settings, store=store), raise_app_exceptions=True)

        async def ask() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.get(
                    "/v1" + COMPLETIONS,
                    params={"start_time": 1_700_000_000},
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                )

        with caplog.at_level(logging.ERROR, logger="openusage"):
            response = asyncio.run(ask())
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "server_error"
        assert "fire" not in response.text  # no internals in the answer
        assert [r.message for r in caplog.records if r.levelno >= logging.ERROR] == ["unhandled error"]
    finally:
        store.close()
