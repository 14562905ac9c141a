"""SPEC §7 over HTTP: ingestion formats, idempotency, all-or-nothing batches, every bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from .conftest import DAY, Server, event
from .test_server_errors import check_error

EVENTS = "/organization/usage/events"


def total(server: Server, kind: str, day0: int, metric: str, **params: Any) -> int:
    page = server.page(f"/organization/usage/{kind}", {"start_time": day0, "end_time": day0 + DAY, **params})
    return sum(r[metric] for b in page["data"] for r in b["results"])


def test_json_batch_is_stored_and_counted(server: Server) -> None:
    day0 = server.window(1)
    body = server.ingest_ok([event("embeddings", day0 + i, input_tokens=10 * i) for i in range(1, 5)])
    assert body == {"object": "usage.ingest_result", "received": 4, "inserted": 4, "duplicates": 0}
    assert total(server, "embeddings", day0, "input_tokens") == 100
    assert total(server, "embeddings", day0, "num_model_requests") == 4


def test_ndjson_and_rfc3339_timestamps(server: Server) -> None:
    day0 = server.window(1)
    iso = datetime.fromtimestamp(day0 + 3600, UTC).isoformat()
    lines = [
        event("moderations", day0 + 1, input_tokens=5),
        {**event("moderations", 0, input_tokens=7), "timestamp": iso},
        {**event("moderations", 0, input_tokens=11), "timestamp": iso.replace("+00:00", "Z")},
    ]
    payload = b"\n".join(orjson.dumps(e) for e in lines) + b"\n\n"
    with server.client() as c:
        response = c.post(EVENTS, content=payload, headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 3
    page = server.page(
        "/organization/usage/moderations", {"start_time": day0, "end_time": day0 + DAY, "bucket_width": "1h"}
    )
    assert [sum(r["input_tokens"] for r in b["results"]) for b in page["data"][:2]] == [5, 18]


def test_resending_a_batch_changes_nothing(server: Server) -> None:
    day0 = server.window(1)
    batch = [event("completions", day0 + i, input_tokens=100, output_tokens=3) for i in range(5)]
    assert server.ingest_ok(batch)["inserted"] == 5
    again = server.ingest_ok([*batch, event("completions", day0 + 9, input_tokens=1, output_tokens=0)])
    assert (again["inserted"], again["duplicates"]) == (1, 5)
    alone = server.ingest_ok([batch[-1]])  # one event, the way a gateway resends it
    assert (alone["inserted"], alone["duplicates"]) == (0, 1)
    assert total(server, "completions", day0, "input_tokens") == 501


def test_an_id_twice_in_one_batch_counts_once(server: Server) -> None:
    day0 = server.window(1)
    one = event("images", day0 + 5, images=3)
    body = server.ingest_ok([one, one])
    assert (body["inserted"], body["duplicates"]) == (1, 1)
    assert total(server, "images", day0, "images") == 3


def test_completions_token_identities_are_derived(server: Server) -> None:
    day0 = server.window(1)
    server.ingest_ok(
        [
            event(
                "completions",
                day0 + 1,
                input_tokens=1000,
                input_cached_tokens=600,
                input_cache_write_tokens=100,
                input_audio_tokens=50,
                input_cached_audio_tokens=20,
                output_tokens=300,
                output_audio_tokens=40,
            )
        ]
    )
    page = server.page("/organization/usage/completions", {"start_time": day0, "end_time": day0 + DAY})
    (r,) = page["data"][0]["results"]
    assert r["input_uncached_tokens"] == 300
    # Under the official definitions the 50 audio tokens are uncached audio input.
    assert r["input_text_tokens"] == 250
    assert r["input_cached_text_tokens"] == 580
    assert r["output_text_tokens"] == 260
    # Writes not split by retention are taken as 30-minute writes (ours).
    assert (r["input_cache_write_30m_tokens"], r["input_cache_write_12h_tokens"]) == (100, 0)


def test_ingest_only_key_writes_and_revoked_key_stops_at_once(server: Server) -> None:
    made = server.cli("keys", "create", "--scope", "ingest", "--name", "gateway")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("sk-ingest-")
    day0 = server.window(1)
    assert server.ingest([event("code_interpreter_sessions", day0 + 1)], key=key).status_code == 200
    listed = server.cli("keys", "list")
    assert key not in listed.stdout  # only the redacted form is ever shown
    key_id = next(line.split("\t")[0] for line in listed.stdout.splitlines() if "gateway" in line)
    assert server.cli("keys", "revoke", key_id).returncode == 0
    check_error(
        server.ingest([event("code_interpreter_sessions", day0 + 2)], key=key), 401, None, "invalid_api_key"
    )
    assert total(server, "code_interpreter_sessions", day0, "num_sessions") == 1


def test_ingestion_needs_a_key(server: Server) -> None:
    response = httpx.post(f"{server.api}{EVENTS}", json={"events": [event("embeddings", server.window(1))]})
    check_error(response, 401, None, "invalid_api_key")


MISSING = object()
GOOD = {"type": "completions", "input_tokens": 10, "output_tokens": 2}
INVALID_EVENTS: list[tuple[dict[str, Any] | Any, str]] = [
    ({**GOOD, "id": MISSING}, "id"),
    ({**GOOD, "id": ""}, "id"),
    ({**GOOD, "id": "x" * 257}, "id"),
    ({**GOOD, "id": 12}, "id"),
    ({**GOOD, "id": None}, "id"),
    ({"input_tokens": 1}, "type"),
    ({**GOOD, "type": "chat"}, "type"),
    ({**GOOD, "type": ["completions"]}, "type"),
    ({**GOOD, "timestamp": None}, "timestamp"),
    ({**GOOD, "timestamp": "yesterday"}, "timestamp"),
    ({**GOOD, "timestamp": "2024-01-01T00:00:00"}, "timestamp"),
    ({**GOOD, "timestamp": 12}, "timestamp"),
    ({**GOOD, "timestamp": 10**15}, "timestamp"),
    ({**GOOD, "timestamp": True}, "timestamp"),
    ({**GOOD, "timestamp": [1]}, "timestamp"),
    ({**GOOD, "model": 4}, "model"),
    ({**GOOD, "model": ""}, "model"),
    ({**GOOD, "model": "m" * 257}, "model"),
    ({**GOOD, "project_id": "p\x00"}, "project_id"),
    ({**GOOD, "batch": "true"}, "batch"),
    ({**GOOD, "input_tokens": -1}, "input_tokens"),
    ({**GOOD, "input_tokens": 1.5}, "input_tokens"),
    ({**GOOD, "input_tokens": "10"}, "input_tokens"),
    ({**GOOD, "input_tokens": True}, "input_tokens"),
    ({**GOOD, "input_tokens": 10**30}, "input_tokens"),
    ({**GOOD, "output_tokens": 10**13}, "output_tokens"),
    ({**GOOD, "input_cached_tokens": 11}, "input_cached_tokens"),
    ({**GOOD, "input_uncached_tokens": 3}, "input_tokens"),
    ({**GOOD, "output_audio_tokens": 3}, "output_audio_tokens"),
    # 6 of the 10 input tokens are cached, so at most 4 are uncached audio.
    (
        {**GOOD, "input_audio_tokens": 5, "input_cached_tokens": 6, "input_cached_audio_tokens": 6},
        "input_audio_tokens",
    ),
    ({**GOOD, "input_cached_tokens": 2, "input_cached_image_tokens": 3}, "input_cached_image_tokens"),
    (
        {**GOOD, "input_cache_write_tokens": 2, "input_cache_write_12h_tokens": 3},
        "input_cache_write_12h_tokens",
    ),
    (
        {
            **GOOD,
            "input_cache_write_tokens": 2,
            "input_cache_write_30m_tokens": 1,
            "input_cache_write_12h_tokens": 2,
        },
        "input_cache_write_tokens",
    ),
    ({**GOOD, "input_cache_write_30m_tokens": 11}, "input_cache_write_tokens"),
    ({**GOOD, "input_text_tokens": 4, "input_uncached_tokens": 5}, "input_uncached_tokens"),
    ({**GOOD, "api_source": "web"}, "api_source"),
    ({"type": "embeddings", "api_source": "agents_api"}, "api_source"),
    ({**GOOD, "input_cached_tokens": 8, "input_audio_tokens": 5}, "input_audio_tokens"),
    ({**GOOD, "input_token": 5}, "input_token"),
    ({**GOOD, "size": "1024x1024"}, "size"),
    ({**GOOD, "images": 1}, "images"),
    ({"type": "images", "size": "9x9"}, "size"),
    ({"type": "images", "source": "image.upscale"}, "source"),
    ({"type": "web_search_calls", "context_level": "max"}, "context_level"),
    ({"type": "vector_stores", "usage_bytes": 5}, "vector_store_id"),
    ({"type": "vector_stores", "vector_store_id": "vs", "usage_bytes": 2**60}, "usage_bytes"),
]


@pytest.mark.parametrize(
    ("bad", "field"), INVALID_EVENTS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(INVALID_EVENTS)]
)
def test_one_invalid_event_rejects_the_batch_and_stores_nothing(
    server: Server, bad: dict[str, Any], field: str
) -> None:
    day0 = server.window(1)
    good = [event("completions", day0 + i, input_tokens=1, output_tokens=1) for i in range(3)]
    invalid = {"id": f"bad-{day0}", "timestamp": day0 + 5, **bad}
    invalid = {k: v for k, v in invalid.items() if v is not MISSING}
    error = check_error(server.ingest([good[0], good[1], invalid, good[2]]), 400, f"events[2].{field}")
    assert "index 2" in error["message"]
    # Nothing of the batch was stored: all the good events are still new.
    assert server.ingest_ok(good)["inserted"] == 3


@pytest.mark.parametrize(
    ("body", "content_type", "status", "param"),
    [
        (b"{not json", "application/json", 400, None),
        (b'{"events": [{"id": "\xff\xfe"}]}', "application/json", 400, None),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, None),
        (b'{"events": {"id": "x"}}', "application/json", 400, "events"),
        (b'{"events": []}', "application/json", 400, "events"),
        (b'{"event": []}', "application/json", 400, "events"),
        (b"[]", "application/json", 400, "events"),
        (b'{"id": "a"}\n{oops\n', "application/x-ndjson", 400, "events[1]"),
        (b"\n\n", "application/x-ndjson", 400, "events"),
        (b'["not an object"]', "application/x-ndjson", 400, "events[0]"),
        (b"id,type\n1,completions\n", "text/csv", 415, None),
    ],
    ids=[
        "broken",
        "non-utf8",
        "deep",
        "not-a-list",
        "empty",
        "no-events",
        "array",
        "ndjson-line",
        "ndjson-empty",
        "ndjson-array",
        "csv",
    ],
)
def test_malformed_bodies_are_refused_clearly(
    server: Server, body: bytes, content_type: str, status: int, param: str | None
) -> None:
    with server.client() as c:
        response = c.post(EVENTS, content=body, headers={"content-type": content_type})
    check_error(response, status, param)


def test_too_many_events_in_one_batch_is_413(server: Server) -> None:
    day0 = server.window(1)
    batch = [event("embeddings", day0 + 1, input_tokens=1) for _ in range(10_001)]
    check_error(server.ingest(batch), 413, "events")
    assert server.ingest_ok(batch[:10])["inserted"] == 10


def test_oversized_body_is_413(server: Server) -> None:
    day0 = server.window(1)
    huge = {"events": [event("embeddings", day0, model="m" * 200) for _ in range(90_000)]}
    payload = orjson.dumps(huge)
    assert len(payload) > 16 * 1024 * 1024
    with server.client() as c:
        response = c.post(EVENTS, content=payload, headers={"content-type": "application/json"})
    check_error(response, 413, None)


def test_openai_shaped_events_are_stored_as_given(server: Server) -> None:
    """Every field of OpenAI's result, given at once: all images and audio came from the
    cache, so the cached counts exceed the uncached ones, which is legal."""
    day0 = server.window(1)
    fields = {
        "input_tokens": 1500, "input_cached_tokens": 1000, "input_cached_text_tokens": 100,
        "input_cached_audio_tokens": 300, "input_cached_image_tokens": 600,
        "input_cache_write_tokens": 200, "input_cache_write_30m_tokens": 150,
        "input_cache_write_12h_tokens": 50, "input_uncached_tokens": 300, "input_text_tokens": 300,
        "input_audio_tokens": 0, "input_image_tokens": 0,
        "output_tokens": 90, "output_text_tokens": 60, "output_audio_tokens": 20, "output_image_tokens": 10,
    }  # fmt: skip
    server.ingest_ok([event("completions", day0 + 1, **fields), event("decisions", day0 + 2, **fields)])
    for kind in ("completions", "decisions"):
        page = server.page(f"/organization/usage/{kind}", {"start_time": day0, "end_time": day0 + DAY})
        (r,) = page["data"][0]["results"]
        assert {k: r[k] for k in fields} == fields
        assert r["object"] == f"organization.usage.{kind}.result"


@pytest.mark.parametrize("value", ["team,a", " lead", "trail ", "a, b"])
def test_a_filter_value_with_commas_or_edge_spaces_matches_exactly(server: Server, value: str) -> None:
    day0 = server.window(1)
    server.ingest_ok(
        [
            event("embeddings", day0 + 1, project_id=value, input_tokens=7),
            event("embeddings", day0 + 2, input_tokens=1),
        ]
    )
    window = {"start_time": day0, "end_time": day0 + DAY}
    grouped = server.page("/organization/usage/embeddings", {**window, "group_by": "project_id"})
    assert value in {r["project_id"] for r in grouped["data"][0]["results"]}
    # Brackets, once or with another value, and the plain key repeated: all exact.
    for sent in ([("project_ids[]", value)], [("project_ids[]", value), ("project_ids[]", "other")],
                 [("project_ids", value), ("project_ids", "other")]):  # fmt: skip
        page = server.page("/organization/usage/embeddings", [*window.items(), *sent])
        assert [r["input_tokens"] for r in page["data"][0]["results"]] == [7], sent
    if "," not in value:  # a plain key given once is the comma-joined encoding when it has commas
        page = server.page("/organization/usage/embeddings", {**window, "project_ids": value})
        assert [r["input_tokens"] for r in page["data"][0]["results"]] == [7]


@pytest.mark.parametrize(
    "joined", ["a,%20b", "a%2C%20b"]
)  # commas as typed, or as a client library writes them
def test_comma_joined_filter_values_are_split(server: Server, joined: str) -> None:
    day0 = server.window(1)
    server.ingest_ok(
        [event("embeddings", day0 + i, project_id=p, input_tokens=1) for i, p in enumerate("abc")]
    )
    for group_by in ("", "&group_by=project_id%2Cmodel"):
        with server.client() as c:
            window = f"start_time={day0}&end_time={day0 + DAY}"
            response = c.get(f"/organization/usage/embeddings?{window}&project_ids={joined}{group_by}")
        assert response.status_code == 200, response.text
        assert sum(r["input_tokens"] for r in response.json()["data"][0]["results"]) == 2


def test_events_may_lie_at_most_a_day_ahead(server: Server) -> None:
    now = int(time.time())
    ahead = server.ingest([event("embeddings", now + DAY - 600, input_tokens=1)])
    assert ahead.status_code == 200, ahead.text  # clocks of gateways differ
    too_far = server.ingest([event("embeddings", now + DAY + 600, input_tokens=1)])
    check_error(too_far, 400, "events[0].timestamp")
