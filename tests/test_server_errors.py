"""SPEC §6: every error the read endpoints answer, in one envelope."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.testclient import TestClient

from .conftest import ADMIN_KEY, DAY, Server, start_server, stop_server

DATA = Path(__file__).parent / "data"
OFFICIAL = json.loads((DATA / "openai-usage-openapi.json").read_text())
ERROR_SCHEMA = {
    **OFFICIAL["components"]["schemas"]["ErrorResponse"],
    "components": OFFICIAL["components"],
}
COMPLETIONS = "/organization/usage/completions"


def check_error(
    response: httpx.Response, status: int, param: str | None, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    jsonschema.validate(body, ERROR_SCHEMA)
    error: dict[str, Any] = body["error"]
    assert error["param"] == param
    assert error["code"] == code
    assert error["message"] and "Traceback" not in error["message"]
    return error


def test_missing_key_is_401(server: Server) -> None:
    response = httpx.get(f"{server.api}{COMPLETIONS}", params={"start_time": 1})
    error = check_error(response, 401, None, "invalid_api_key")
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "header", ["Basic abc", "Bearer", "bearer  x y", "sk-admin-nope", "Bearer sk-admin-unknown"]
)
def test_bad_or_unknown_key_is_401_and_never_echoed(server: Server, header: str) -> None:
    response = httpx.get(
        f"{server.api}{COMPLETIONS}", params={"start_time": 1}, headers={"Authorization": header}
    )
    error = check_error(response, 401, None, "invalid_api_key")
    assert "unknown" not in error["message"] and "nope" not in error["message"]


def test_ingest_only_key_cannot_read(server: Server) -> None:
    made = server.cli("keys", "create", "--scope", "ingest")
    assert made.returncode == 0, made.stderr
    ingest_key = made.stdout.strip()
    response = server.get(COMPLETIONS, {"start_time": server.window(1)}, key=ingest_key)
    error = check_error(response, 403, None)
    assert error["message"] == (
        "You have insufficient permissions for this operation. Missing scopes: api.usage.read."
    )


BAD_PARAMETERS = [
    ({}, "start_time"),
    ({"start_time": "yesterday"}, "start_time"),
    ({"start_time": "1.5"}, "start_time"),
    ({"start_time": "-5"}, "start_time"),
    ({"start_time": str(10**20)}, "start_time"),
    ({"start_time": ["1", "2"]}, "start_time"),
    # Only plain ASCII digits: no sign, no underscores, no other script's digits.
    ({"start_time": "+1795000000"}, "start_time"),
    ({"start_time": "1_795_000_000"}, "start_time"),
    ({"start_time": "١٧٩٥٠٠٠٠٠٠"}, "start_time"),
    ({"start_time": " 1795000000"}, "start_time"),
    ({"start_time": 1_600_000_000, "end_time": "+1700000000"}, "end_time"),
    ({"start_time": 1_600_000_000, "limit": "+5"}, "limit"),
    ({"start_time": 1_600_000_000, "limit": "٥"}, "limit"),
    ({"start_time": 1_600_000_000, "end_time": 1_600_000_000}, "end_time"),
    ({"start_time": 1_600_000_000, "end_time": 1_500_000_000}, "end_time"),
    ({"start_time": 1_600_000_000, "end_time": "soon"}, "end_time"),
    ({"start_time": 1_600_000_000, "bucket_width": "1w"}, "bucket_width"),
    ({"start_time": 1_600_000_000, "bucket_width": ""}, "bucket_width"),
    ({"start_time": 1_600_000_000, "limit": 0}, "limit"),
    ({"start_time": 1_600_000_000, "limit": 32}, "limit"),
    ({"start_time": 1_600_000_000, "limit": "ten"}, "limit"),
    ({"start_time": 1_600_000_000, "bucket_width": "1h", "limit": 169}, "limit"),
    ({"start_time": 1_600_000_000, "bucket_width": "1m", "limit": 1441}, "limit"),
    ({"start_time": 1_600_000_000, "group_by": "size"}, "group_by"),
    ({"start_time": 1_600_000_000, "group_by": ["model", "colour"]}, "group_by"),
    ({"start_time": 1_600_000_000, "batch": "yes"}, "batch"),
    ({"start_time": 1_600_000_000, "models": "m" * 300}, "models"),
    ({"start_time": 1_600_000_000, "page": "page_garbage"}, "page"),
    ({"start_time": 1_600_000_000, "page": "not-a-cursor"}, "page"),
]


@pytest.mark.parametrize(
    ("params", "param"), BAD_PARAMETERS, ids=[f"{p}-{i}" for i, (_, p) in enumerate(BAD_PARAMETERS)]
)
def test_bad_parameter_is_400_naming_it(server: Server, params: dict[str, Any], param: str) -> None:
    error = check_error(server.get(COMPLETIONS, params), 400, param)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/organization/usage/images", {"sources": "image.upscale"}, "sources"),
        ("/organization/usage/images", {"sizes": "9x9"}, "sizes"),
        ("/organization/usage/web_search_calls", {"context_levels": "max"}, "context_levels"),
        ("/organization/usage/vector_stores", {"group_by": "model"}, "group_by"),
        ("/organization/usage/embeddings", {"group_by": "batch"}, "group_by"),
        ("/organization/usage/code_interpreter_sessions", {"group_by": "user_id"}, "group_by"),
    ],
)
def test_values_an_endpoint_does_not_support_are_400(
    server: Server, path: str, params: dict[str, Any], param: str
) -> None:
    check_error(server.get(path, {"start_time": 1_600_000_000, **params}), 400, param)


def test_thousands_of_filter_values_are_refused_clearly(server: Server) -> None:
    response = server.get(
        COMPLETIONS, [("start_time", "1600000000"), *(("models", f"m{i}") for i in range(5000))]
    )
    check_error(response, 400, "models")


def test_an_array_takes_at_most_a_thousand_values(server: Server) -> None:
    def models(n: int) -> httpx.Response:
        return server.get(
            COMPLETIONS, [("start_time", "1600000000"), *(("models[]", f"m{i}") for i in range(n))]
        )

    assert models(1000).status_code == 200
    error = check_error(models(1001), 400, "models")
    assert "1000" in error["message"]


def test_unknown_parameters_are_ignored(server: Server) -> None:
    day0 = server.window(1)
    response = server.get(
        COMPLETIONS, {"start_time": day0, "end_time": day0 + DAY, "colour": "blue", "models[0]": "x"}
    )
    assert response.status_code == 200


def test_cursor_from_another_query_or_altered_is_400(server: Server) -> None:
    day0 = server.window(5)
    params = {"start_time": day0, "end_time": day0 + 5 * DAY, "limit": 2}
    cursor = server.page(COMPLETIONS, params)["next_page"]
    assert cursor
    # Same cursor, other parameters.
    for changed in (
        {"start_time": day0 + 1},
        {"end_time": day0 + 4 * DAY},
        {"group_by": "model"},
        {"models": "x"},
    ):
        check_error(server.get(COMPLETIONS, {**params, **changed, "page": cursor}), 400, "page")
    check_error(server.get("/organization/usage/embeddings", {**params, "page": cursor}), 400, "page")
    # One character changed anywhere in the cursor.
    for index in (5, len(cursor) // 2, len(cursor) - 3):
        flipped = cursor[:index] + ("A" if cursor[index] != "A" else "B") + cursor[index + 1 :]
        check_error(server.get(COMPLETIONS, {**params, "page": flipped}), 400, "page")
    # The untouched cursor still works, and the page size may change between pages.
    assert server.get(COMPLETIONS, {**params, "limit": 1, "page": cursor}).status_code == 200


def test_unknown_path_and_method_use_the_envelope(server: Server) -> None:
    with server.client() as c:
        check_error(c.get("/organization/usage/nothing"), 404, None)
        check_error(c.post(COMPLETIONS), 405, None)


@pytest.fixture(scope="module")
def year_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default look-back of one year, like OpenAI."""
    running = start_server(tmp_path_factory.mktemp("lookback"))
    yield running
    stop_server(running)


def test_start_older_than_the_lookback_is_refused(year_server: Server) -> None:
    now = int(time.time())
    error = check_error(
        year_server.get(COMPLETIONS, {"start_time": now - 400 * DAY}),
        400,
        "start_time",
        "reporting_lookback_exceeded",
    )
    assert error["message"].startswith("Usage and cost data are available for the past year.")
    assert year_server.get(COMPLETIONS, {"start_time": now - 300 * DAY}).status_code == 200


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("limited"), "--rate-limit", "3")
    yield running
    stop_server(running)


def test_too_many_requests_is_429_with_retry_after_per_key(limited_server: Server) -> None:
    params = {"start_time": int(time.time()) - DAY}
    assert [limited_server.get(COMPLETIONS, params).status_code for _ in range(3)] == [200, 200, 200]
    response = limited_server.get(COMPLETIONS, params)
    error = check_error(response, 429, None, "rate_limit_exceeded")
    assert error["type"] == "requests"
    assert int(response.headers["retry-after"]) >= 1
    # Another key has its own allowance.
    other = limited_server.cli("keys", "create").stdout.strip()
    assert limited_server.get(COMPLETIONS, params, key=other).status_code == 200


def test_server_fault_is_500_in_the_envelope_without_a_trace(tmp_path: Path) -> None:
    """A store that fails: the only way to make the real server fault on purpose."""

    from openusage.server import create_app
    from openusage.settings import Settings
    from openusage.store import DuckDBStore

    class BrokenStore(DuckDBStore):
        def aggregate(self, query: Any) -> Any:
            raise RuntimeError("disk on fire /secret/path")

        def aggregate_json(self, query: Any, shape: Any) -> Any:
            raise RuntimeError("disk on fire /secret/path")

    store = BrokenStore(tmp_path / "broken.duckdb")
    app = create_app(
        Settings(db_path=tmp_path / "broken.duckdb", admin_key=ADMIN_KEY, lookback_days=None), store=store
    )
    with TestClient(app, base_url="http://test/v1", raise_server_exceptions=False) as c:
        response = c.get(
            COMPLETIONS, params={"start_time": 1}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
    error = check_error(response, 500, None)
    assert error["type"] == "server_error"
    assert "fire" not in response.text and "secret" not in response.text
    store.close()


def test_our_client_meets_the_real_servers_429_and_honours_retry_after(tmp_path: Path) -> None:
    from openusage import UsageApi
    from openusage.client import RateLimitError

    running = start_server(tmp_path, "--rate-limit", "60", "--lookback-days", "0")
    try:
        start = 1_700_000_000
        with UsageApi(ADMIN_KEY, base_url=running.api, max_retries=0) as impatient:
            for _ in range(60):  # the whole allowance
                impatient.usage_embeddings(start)
            with pytest.raises(RateLimitError) as refused:
                impatient.usage_embeddings(start)
        assert refused.value.status_code == 429
        assert refused.value.response.headers["retry-after"] == "1"
        # A client that retries waits as told, and then gets its answer.
        with UsageApi(ADMIN_KEY, base_url=running.api, max_retries=3) as patient:
            assert patient.usage_embeddings(start).data is not None
    finally:
        stop_server(running)


def test_a_page_stops_at_a_bucket_boundary_before_50000_results(tmp_path: Path) -> None:
    """The documented default cap: 1,440 minute buckets of 35 groups each would be 50,400
    results; the page ends before the bucket that would pass 50,000, and the next page
    goes on from there."""
    from starlette.testclient import TestClient

    from openusage.server import create_app
    from openusage.server.events import EventRules, parse_events
    from openusage.settings import Settings
    from openusage.store import DuckDBStore

    day0 = 1_700_006_400
    store = DuckDBStore(tmp_path / "cap.duckdb")
    events = [
        {
            "id": f"e{m}-{g}",
            "type": "embeddings",
            "timestamp": day0 + 60 * m,
            "model": f"m{g}",
            "input_tokens": 1,
        }
        for m in range(1440)
        for g in range(35)
    ]
    store.append(parse_events(events, EventRules(now=day0 + 2 * DAY)))
    settings = Settings(db_path=tmp_path / "cap.duckdb", admin_key=ADMIN_KEY, lookback_days=None)
    assert settings.max_page_rows == 50_000
    try:
        with TestClient(create_app(settings, store=store)) as http:
            params = {
                "start_time": day0,
                "end_time": day0 + DAY,
                "bucket_width": "1m",
                "limit": 1440,
                "group_by": "model",
            }
            first = http.get(
                "/v1/organization/usage/embeddings",
                params=params,
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ).json()
            assert len(first["data"]) == 50_000 // 35 and first["has_more"] is True
            assert all(len(b["results"]) == 35 for b in first["data"])  # no bucket is split
            rest = http.get(
                "/v1/organization/usage/embeddings",
                params={**params, "page": first["next_page"]},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ).json()
            assert rest["data"][0]["start_time"] == first["data"][-1]["end_time"]
            assert len(first["data"]) + len(rest["data"]) == 1440 and rest["has_more"] is False
    finally:
        store.close()


def test_the_lookback_reaches_back_to_the_midnight_a_year_ago(tmp_path: Path) -> None:
    running = start_server(tmp_path)  # the default look-back: 365 days
    try:
        now = int(time.time())
        earliest = now - 365 * DAY
        midnight = earliest - earliest % DAY
        assert (
            running.get(COMPLETIONS, {"start_time": midnight, "end_time": midnight + DAY}).status_code == 200
        )
        check_error(
            running.get(COMPLETIONS, {"start_time": midnight - 1}),
            400,
            "start_time",
            "reporting_lookback_exceeded",
        )
    finally:
        stop_server(running)


def test_pages_followed_at_once_keep_working(server: Server) -> None:
    """A cursor made this very second pins an end equal to now: still valid."""
    start = int(time.time()) - 10 * 60
    params = {"start_time": start, "bucket_width": "1m", "limit": 1}
    page = server.page(COMPLETIONS, params)
    walked = 1
    while page["has_more"]:
        page = server.page(COMPLETIONS, {**params, "page": page["next_page"]})
        walked += 1
    assert walked >= 10


@pytest.mark.parametrize(
    ("groups", "first_page"),
    [
        ([4, 6, 1], [4, 6]),  # the cap reached exactly: allowed
        ([4, 7, 1], [4]),  # a bucket that would pass it ends the page, though a later one would fit
    ],
)
def test_a_page_holds_exactly_as_many_rows_as_its_cap_and_never_one_more(
    tmp_path: Path, groups: list[int], first_page: list[int]
) -> None:
    from openusage.server import create_app
    from openusage.server.events import EventRules, parse_events
    from openusage.settings import Settings
    from openusage.store import DuckDBStore

    day0 = 1_700_006_400
    store = DuckDBStore(tmp_path / "cap.duckdb")
    store.append(
        parse_events(
            [
                {"id": f"e{m}-{g}", "type": "embeddings", "timestamp": day0 + 60 * m, "model": f"m{g}"}
                for m, count in enumerate(groups)
                for g in range(count)
            ],
            EventRules(now=day0 + DAY),
        )
    )
    settings = Settings(
        db_path=tmp_path / "cap.duckdb", admin_key=ADMIN_KEY, lookback_days=None, max_page_rows=10
    )
    path = "/v1/organization/usage/embeddings"
    params = {"start_time": day0, "end_time": day0 + 180, "bucket_width": "1m", "group_by": "model"}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        with TestClient(create_app(settings, store=store)) as http:
            page = http.get(path, params=params, headers=headers).json()
            assert [len(b["results"]) for b in page["data"]] == first_page and page["has_more"] is True
            walked = list(page["data"])
            while page["has_more"]:
                page = http.get(path, params={**params, "page": page["next_page"]}, headers=headers).json()
                walked += page["data"]
            assert [len(b["results"]) for b in walked] == groups  # every bucket once, in order
    finally:
        store.close()
