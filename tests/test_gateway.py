"""The gateway against a real upstream process (``openusage fake-upstream``), driven by the
official ``openai`` client and by plain HTTP: what the caller gets, and what is recorded."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import openai
import orjson
import pytest

from .conftest import PROJECT, USER, Server, free_port, proxy_key, start_server, stop_server

UPSTREAM_KEY = "sk-upstream-secret-" + "u" * 24


def start_gateway(tmp: Path, upstream: str, *extra: str) -> Server:
    return start_server(
        tmp,
        "--upstream",
        upstream,
        "--upstream-timeout",
        "2",
        *extra,
        env={"OPENUSAGE_UPSTREAM_API_KEY": UPSTREAM_KEY},
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Iterator[Server]:
    running = start_gateway(tmp_path_factory.mktemp("gateway"), upstream)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def key(gateway: Server) -> tuple[str, str]:
    return proxy_key(gateway)


@pytest.fixture(scope="module")
def model_client(gateway: Server, key: tuple[str, str]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=key[0], base_url=gateway.api, max_retries=0) as c:
        yield c


def recorded(server: Server, kind: str, model: str | None = None, *, expect: int = 1) -> list[dict[str, Any]]:
    """The results of the last hour for ``model`` by every group field, once ``expect`` requests
    (or sessions, or calls) are there; waits for the spool to reach the store."""
    from openusage.catalogue import USAGE_KINDS

    endpoint = USAGE_KINDS[kind]
    params: dict[str, Any] = {
        "start_time": int(time.time()) - 3000,
        "bucket_width": "1h",
        "group_by": ",".join(endpoint.group_fields),
    }
    if model is not None:
        params["models"] = model
    counted = next(
        m for m in ("num_model_requests", "num_sessions", "num_requests") if m in endpoint.metric_names
    )
    deadline = time.monotonic() + 10
    while True:
        page = server.page(f"/organization/usage/{kind}", params)
        results = [r for bucket in page["data"] for r in bucket["results"]]
        if sum(r[counted] for r in results) >= expect or time.monotonic() > deadline:
            return results


def settled(server: Server, key: str) -> None:
    """Wait until every call made so far is stored: the spool keeps order, so once a new call
    shows, any record of an earlier one would show too."""
    model = f"marker-{time.monotonic_ns()}"
    body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(
        server.api + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    assert only(recorded(server, "completions", model))["num_model_requests"] == 1


def only(results: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(results) == 1, results
    return results[0]


def test_a_chat_completion_is_answered_as_upstream_answered_and_recorded_once(
    gateway: Server, model_client: openai.OpenAI, key: tuple[str, str]
) -> None:
    completion = model_client.chat.completions.create(
        model="chat-plain", messages=[{"role": "user", "content": "one two three four"}]
    )
    assert completion.choices[0].message.content == "Hello from the fake upstream."
    assert completion.usage is not None and completion.usage.prompt_tokens == 7
    result = only(recorded(gateway, "completions", "chat-plain"))
    assert result == {
        **result,
        "object": "organization.usage.completions.result",
        "project_id": PROJECT,
        "user_id": USER,
        "api_key_id": key[1],
        "model": "chat-plain",
        "service_tier": "default",
        "batch": False,
        "input_tokens": 7,
        "output_tokens": 5,
        "input_cached_tokens": 0,
        "num_model_requests": 1,
    }


def test_an_answer_carries_the_upstreams_request_id_and_one_date_and_server(
    gateway: Server, model_client: openai.OpenAI
) -> None:
    raw = model_client.chat.completions.with_raw_response.create(
        model="chat-ids", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.status_code == 200
    (upstream_id,) = raw.headers.get_list("x-request-id")
    assert raw.request_id == upstream_id and re.fullmatch(r"req_[0-9a-f]{32}", upstream_id)
    assert len(raw.headers.get_list("date")) == 1 and raw.headers.get_list("server") == ["uvicorn"]
    # The gateway's log line names the upstream's id beside the gateway's own.
    deadline = time.monotonic() + 30
    while True:
        lines = [
            orjson.loads(line) for line in gateway.log_path.read_text().splitlines() if line.startswith("{")
        ]
        logged = [line for line in lines if line.get("upstream_request_id") == upstream_id]
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert logged and logged[0]["request_id"].startswith("req_") and logged[0]["request_id"] != upstream_id


def test_cached_tokens_and_the_tier_the_upstream_used_are_recorded(
    gateway: Server, model_client: openai.OpenAI
) -> None:
    model_client.chat.completions.create(
        model="chat-cached",
        messages=[{"role": "user", "content": "a b c d e f g"}],
        prompt_cache_key="k",
        service_tier="flex",
    )
    result = only(recorded(gateway, "completions", "chat-cached"))
    assert (result["input_tokens"], result["input_cached_tokens"], result["service_tier"]) == (10, 5, "flex")


def normalised(stream: bytes) -> bytes:
    """A stream with the parts that differ between two calls (ids, times) made equal."""
    stream = re.sub(rb"chatcmpl-[0-9a-f]+", b"chatcmpl-ID", stream)
    return re.sub(rb'"created":\d+', b'"created":0', stream)


def streamed(base: str, key: str, body: dict[str, Any]) -> bytes:
    with httpx.stream(
        "POST", base + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as response:
        assert response.status_code == 200
        return b"".join(response.iter_raw())


def test_a_stream_reaches_the_caller_as_the_upstream_sends_it_without_the_usage_it_did_not_ask_for(
    gateway: Server, upstream: str, key: tuple[str, str]
) -> None:
    body = {"model": "chat-stream", "stream": True, "messages": [{"role": "user", "content": "hi there"}]}
    through_gateway = streamed(gateway.api, key[0], body)
    direct = streamed(upstream, "unused", body)
    assert normalised(through_gateway) == normalised(direct)
    assert b"usage" not in through_gateway
    result = only(recorded(gateway, "completions", "chat-stream"))
    assert (result["input_tokens"], result["output_tokens"], result["num_model_requests"]) == (5, 5, 1)


def test_a_stream_that_asks_for_usage_gets_it_and_is_recorded_once(
    gateway: Server, upstream: str, model_client: openai.OpenAI, key: tuple[str, str]
) -> None:
    body = {
        "model": "chat-stream-usage",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert normalised(streamed(gateway.api, key[0], body)) == normalised(streamed(upstream, "unused", body))
    chunks = list(
        model_client.chat.completions.create(
            model="chat-stream-usage",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 4
    result = only(recorded(gateway, "completions", "chat-stream-usage", expect=2))
    assert (result["input_tokens"], result["num_model_requests"]) == (8, 2)


def test_a_responses_call_records_its_tokens_and_each_tool_it_used(
    gateway: Server, model_client: openai.OpenAI
) -> None:
    tools: Any = [
        {"type": "web_search", "search_context_size": "high"},
        {"type": "file_search", "vector_store_ids": ["vs_gateway"]},
        {"type": "code_interpreter", "container": "cntr_gateway_1"},
    ]
    for _ in range(2):  # the same container twice: one session
        answer = model_client.responses.create(model="resp-tools", input="find it please", tools=tools)
        assert answer.output_text == "Hello from the fake upstream."
    tokens = only(recorded(gateway, "completions", "resp-tools", expect=2))
    assert (tokens["input_tokens"], tokens["output_tokens"], tokens["num_model_requests"]) == (12, 10, 2)
    search = only(recorded(gateway, "web_search_calls", "resp-tools", expect=2))
    assert (search["context_level"], search["num_model_requests"], search["num_requests"]) == ("high", 2, 2)
    files = [
        r for r in recorded(gateway, "file_search_calls", expect=2) if r["vector_store_id"] == "vs_gateway"
    ]
    assert only(files)["num_requests"] == 2
    sessions = recorded(gateway, "code_interpreter_sessions")
    assert only([r for r in sessions if r["project_id"] == PROJECT])["num_sessions"] == 1


def test_a_responses_stream_is_recorded_from_its_completed_event(
    gateway: Server, model_client: openai.OpenAI
) -> None:
    with model_client.responses.stream(model="resp-stream", input="stream this") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.usage is not None and final.usage.input_tokens == 5
    result = only(recorded(gateway, "completions", "resp-stream"))
    assert (result["input_tokens"], result["output_tokens"]) == (5, 5)


def test_embeddings_and_moderations_are_recorded(gateway: Server, model_client: openai.OpenAI) -> None:
    vectors = model_client.embeddings.create(model="embed-gw", input=["one two", "three"])
    assert [list(map(float, d.embedding)) for d in vectors.data] == [[0.25, -0.5, 0.75]] * 2
    assert only(recorded(gateway, "embeddings", "embed-gw"))["input_tokens"] == 3
    model_client.moderations.create(model="moderate-gw", input="hello")
    result = only(recorded(gateway, "moderations", "moderate-gw"))
    assert (result["num_model_requests"], result["input_tokens"]) == (1, 0)


def test_images_are_counted_with_their_size_and_source(gateway: Server, model_client: openai.OpenAI) -> None:
    made = model_client.images.generate(model="image-gw", prompt="a cat", n=2, size="1024x1024")
    assert made.data is not None and len(made.data) == 2
    model_client.images.edit(
        model="image-gw", image=("cat.png", b"\x89PNG fake"), prompt="hat", size="512x512"
    )
    results = recorded(gateway, "images", "image-gw", expect=2)
    counted = {(r["source"], r["size"]): (r["images"], r["num_model_requests"]) for r in results}
    assert counted == {("image.generation", "1024x1024"): (2, 1), ("image.edit", "512x512"): (1, 1)}


def test_speech_is_counted_in_characters_and_transcriptions_in_started_seconds(
    gateway: Server, model_client: openai.OpenAI, key: tuple[str, str]
) -> None:
    sound = model_client.audio.speech.create(model="speech-gw", voice="alloy", input="Say this, please.")
    assert sound.content == b"ID3fake-audio:Say this, please."
    assert only(recorded(gateway, "audio_speeches", "speech-gw"))["characters"] == len("Say this, please.")
    audio = ("clip.mp3", b"x" * 2500)  # 2.5 seconds to the fake upstream
    text = model_client.audio.transcriptions.create(model="listen-gw", file=audio)
    assert text.text == "Hello from the fake upstream."
    # (translations are deprecated in the official client: sent as it sends them)
    translated = httpx.post(
        gateway.api + "/audio/translations",
        files={"file": audio},
        data={"model": "listen-gw", "response_format": "verbose_json"},
        headers={"Authorization": f"Bearer {key[0]}"},
    )
    assert translated.status_code == 200 and translated.json()["duration"] == 2.5
    result = only(recorded(gateway, "audio_transcriptions", "listen-gw", expect=2))
    assert (result["seconds"], result["num_model_requests"]) == (6, 2)


def test_other_paths_pass_through_with_the_upstreams_key_never_the_callers(
    gateway: Server, key: tuple[str, str]
) -> None:
    response = gateway.get("/models", key=key[0])
    assert response.status_code == 200 and response.json()["data"][0]["id"] == "fake-model"
    assert response.headers["x-fake-authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert UPSTREAM_KEY not in gateway.log_path.read_text()


def test_upstream_errors_pass_through_unchanged_and_unrecorded(
    gateway: Server, upstream: str, model_client: openai.OpenAI, key: tuple[str, str]
) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        model_client.chat.completions.create(model="error-429", messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    body = {"model": "error-400", "messages": []}
    through = httpx.post(
        gateway.api + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key[0]}"}
    )
    direct = httpx.post(upstream + "/chat/completions", json=body)
    assert (
        (through.status_code, through.content)
        == (direct.status_code, direct.content)
        == (400, direct.content)
    )
    settled(gateway, key[0])
    for model in ("error-429", "error-400"):
        assert recorded(gateway, "completions", model, expect=0) == []


def test_an_upstream_too_slow_gets_504_and_one_that_cuts_the_answer_502(
    gateway: Server, model_client: openai.OpenAI, key: tuple[str, str]
) -> None:
    with pytest.raises(openai.APIStatusError) as slow:
        model_client.chat.completions.create(model="slow-4", messages=[{"role": "user", "content": "x"}])
    assert slow.value.status_code == 504 and slow.value.body["type"] == "server_error"  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as cut:
        model_client.chat.completions.create(model="drop", messages=[{"role": "user", "content": "x"}])
    assert cut.value.status_code == 502
    settled(gateway, key[0])
    for model in ("slow-4", "drop"):
        assert recorded(gateway, "completions", model, expect=0) == []


def test_an_unreachable_upstream_gets_502_in_openais_envelope(tmp_path: Path) -> None:
    lonely = start_gateway(tmp_path, f"http://127.0.0.1:{free_port()}/v1")
    try:
        secret, _ = proxy_key(lonely)
        response = httpx.post(
            lonely.api + "/chat/completions",
            json={"model": "m"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status_code == 502
        assert response.json()["error"]["message"].startswith(
            "The upstream model server could not be reached"
        )
    finally:
        stop_server(lonely)


def test_a_stream_the_caller_leaves_is_read_to_its_end_and_recorded(
    gateway: Server, key: tuple[str, str]
) -> None:
    body = {"model": "trickle-0.3", "stream": True, "messages": [{"role": "user", "content": "slowly"}]}
    with httpx.stream(
        "POST", gateway.api + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key[0]}"}
    ) as response:
        first = next(response.iter_raw())
    assert first.startswith(b"data: ")
    # The caller has gone after one chunk; the upstream takes about 2 s more to finish.
    assert only(recorded(gateway, "completions", "trickle-0.3"))["input_tokens"] == 4


def test_a_stream_the_upstream_cuts_ends_early_and_records_nothing(
    gateway: Server, key: tuple[str, str]
) -> None:
    body = {"model": "drop-stream", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream(
        "POST", gateway.api + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key[0]}"}
    ) as response:
        received = b"".join(response.iter_raw())
    assert received.count(b"data: ") == 2 and b"[DONE]" not in received
    settled(gateway, key[0])
    assert recorded(gateway, "completions", "drop-stream", expect=0) == []


@pytest.mark.parametrize("who", ["none", "admin", "ingest", "revoked"])
def test_only_an_active_proxy_key_makes_model_calls(gateway: Server, who: str) -> None:
    secret = None
    if who == "admin":
        secret = gateway.admin_key
    elif who in ("ingest", "revoked"):
        made = gateway.cli("keys", "create", "--scope", "ingest" if who == "ingest" else "proxy",
                           *(["--project", PROJECT] if who == "revoked" else []))  # fmt: skip
        secret = made.stdout.strip()
        if who == "revoked":
            key_id = re.search(r"\((key_\w+),", made.stderr)
            assert key_id is not None and gateway.cli("keys", "revoke", key_id[1]).returncode == 0
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    response = httpx.post(
        gateway.api + "/chat/completions", json={"model": "m", "messages": []}, headers=headers
    )
    assert response.status_code == (403 if who in ("admin", "ingest") else 401), response.text


def test_a_proxy_key_cannot_read_usage_and_the_servers_own_paths_are_never_forwarded(
    gateway: Server, key: tuple[str, str]
) -> None:
    assert gateway.get("/organization/usage/completions", {"start_time": 0}, key=key[0]).status_code == 403
    unknown = gateway.get("/organization/nothing-here", key=key[0])
    assert unknown.status_code == 404 and unknown.json()["error"]["message"].startswith("Invalid URL")


def test_a_proxy_key_needs_a_project_and_lists_with_it(gateway: Server) -> None:
    refused = gateway.cli("keys", "create", "--scope", "proxy")
    assert refused.returncode != 0 and "--project is required" in refused.stderr
    assert gateway.cli("keys", "create", "--scope", "admin", "--project", "p").returncode != 0
    assert gateway.cli("keys", "create", "--scope", "proxy", "--project", "").returncode != 0
    secret, key_id = proxy_key(gateway, "proj_listed", "user_listed")
    assert secret.startswith("sk-proj-")
    listed = gateway.cli("keys", "list").stdout
    assert f"{key_id}\tproxy\tactive" in listed and "proj_listed/user_listed" in listed


def test_calls_answered_before_a_sigkill_are_counted_once_after_restart(
    tmp_path: Path, upstream: str
) -> None:
    server = start_gateway(tmp_path, upstream)
    secret, _ = proxy_key(server)
    answered = []
    response_ids = set()

    def call(number: int) -> None:
        body = {"model": "killed", "messages": [{"role": "user", "content": "x"}]}
        response = httpx.post(
            server.api + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
        if response.status_code == 200:
            answered.append(number)
            response_ids.add(response.json()["id"])

    threads = [threading.Thread(target=call, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    assert len(answered) == 40
    restarted = start_gateway(tmp_path, upstream)
    try:
        result = only(recorded(restarted, "completions", "killed", expect=40))
        assert result["num_model_requests"] == 40
    finally:
        stop_server(restarted)
    # Everything the spool holds replayed once more: the ids made from the upstream's
    # response ids let the store count each call once.
    (tmp_path / "usage.spool.ndjson.done").unlink()
    replayed = start_gateway(tmp_path, upstream)
    try:
        settled(replayed, secret)
        assert only(recorded(replayed, "completions", "killed", expect=40))["num_model_requests"] == 40
    finally:
        stop_server(replayed)
    # Each event is named after the answer it records, so it can be traced back to it.
    with duckdb.connect(str(tmp_path / "usage.duckdb"), read_only=True) as db:
        ids = {row[0] for row in db.execute("SELECT id FROM events WHERE model = 'killed'").fetchall()}
    assert ids == {f"gw-{response_id}" for response_id in response_ids}


def test_a_spooled_record_survives_a_store_that_refuses_it_for_a_while(tmp_path: Path) -> None:
    """The feeder keeps events until the store takes them, and a replay counts nothing twice."""
    import asyncio

    from openusage.gateway.spool import Spool

    stored: list[Any] = []
    refusals = [RuntimeError("store down")] * 2

    async def store_rows(rows: list[Any]) -> None:
        if refusals:
            raise refusals.pop()
        stored.extend(rows)

    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.ndjson", lambda events: events, store_rows)
        runner = asyncio.create_task(spool.run())
        spool.append([{"id": "a"}, {"id": "b"}])
        spool.append([{"id": "c"}])
        async with asyncio.timeout(10):
            while len(stored) < 3:
                await asyncio.sleep(0.05)
        runner.cancel()
        spool.close()
        reopened = Spool(tmp_path / "spool.ndjson", lambda events: events, store_rows)
        assert reopened.backlog_bytes() == 0 and await reopened.feed() == 0
        reopened.close()

    asyncio.run(scenario())
    assert [e["id"] for e in stored] == ["a", "b", "c"]
    assert orjson.loads((tmp_path / "spool.ndjson").read_bytes().splitlines()[0]) == {"id": "a"}


def test_a_key_file_from_before_proxy_keys_opens_and_its_keys_keep_working(tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    from openusage.keyring import Keyring

    path = tmp_path / "old.keys.sqlite"
    secret = "sk-admin-" + "o" * 40
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL, hash TEXT "
            "NOT NULL UNIQUE, redacted TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);"
        )
        db.execute(
            "INSERT INTO api_keys VALUES ('key_old', 'old', 'admin', ?, 'sk-admin-ooo…oooo', 1, NULL)",
            (hashlib.sha256(secret.encode()).hexdigest(),),
        )
    keyring = Keyring(path)
    found = keyring.find(secret)
    assert found is not None and (found.id, found.scope, found.project_id) == ("key_old", "admin", None)
    made, proxy_secret = keyring.create("proxy", project_id="proj_new", user_id="user_new")
    assert keyring.find(proxy_secret) == made
    assert [k.id for k in keyring.list()] == ["key_old", made.id]


def test_a_spooled_event_the_store_refuses_is_set_aside_and_the_rest_stored(tmp_path: Path) -> None:
    import asyncio

    from openusage.gateway.spool import Spool

    stored: list[Any] = []

    def rows_of(events: list[Any]) -> list[Any]:
        if any(e["id"] == "bad" for e in events):
            raise ValueError("not an event")
        return events

    async def store_rows(rows: list[Any]) -> None:
        stored.extend(rows)

    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.ndjson", rows_of, store_rows)
        spool.append([{"id": "a"}, {"id": "bad"}, {"id": "b"}])
        assert await spool.feed() == 3 and spool.backlog_bytes() == 0
        spool.close()

    asyncio.run(scenario())
    assert [e["id"] for e in stored] == ["a", "b"]
    assert orjson.loads((tmp_path / "spool.ndjson.rejected").read_bytes()) == {"id": "bad"}


def test_large_calls_sent_at_once_are_held_a_few_at_a_time(tmp_path: Path, upstream: str) -> None:
    """Eight 60 MB embeddings calls at once: held all together on their way upstream they
    took the gateway to 1.2 GiB; it holds two of the largest bodies' worth at a time."""
    running = start_gateway(tmp_path, upstream, "--upstream-timeout", "120")
    try:
        secret, _ = proxy_key(running)
        body = orjson.dumps({"model": "big-inputs", "input": ["word " * 1000] * 12_000})
        statuses: list[int] = []

        def call() -> None:
            answer = httpx.post(
                running.api + "/embeddings",
                content=body,
                headers={"Authorization": f"Bearer {secret}", "content-type": "application/json"},
                timeout=300,
            )
            statuses.append(answer.status_code)

        callers = [threading.Thread(target=call) for _ in range(8)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join()
        assert statuses == [200] * 8
        status = Path(f"/proc/{running.process.pid}/status").read_text()
        peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
        assert peak_kib < 1024 * 1024, f"peak {peak_kib // 1024} MiB"
    finally:
        stop_server(running)
