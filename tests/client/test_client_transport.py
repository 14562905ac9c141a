"""Retries, timeouts and errors, with httpx's mock transport standing in for the network."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from openusage.client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncUsageApi,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    UsageApi,
    UsageApiError,
)

FIXTURES = Path(__file__).parent.parent / "data" / "fixtures"
EMPTY_PAGE = {"object": "page", "data": [], "has_more": False, "next_page": None}


def envelope(message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that gives these answers in turn, and the requests it saw."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def api_with(transport: httpx.MockTransport, max_retries: int = 2) -> tuple[UsageApi, list[float]]:
    api = UsageApi(
        "sk-test", base_url="https://example.test/v1", transport=transport, max_retries=max_retries
    )
    slept: list[float] = []
    api._sleep = slept.append  # record the waits instead of waiting
    return api, slept


def ok() -> httpx.Response:
    return httpx.Response(200, json=EMPTY_PAGE)


def test_429_waits_as_retry_after_says_then_succeeds() -> None:
    transport, seen = scripted(
        httpx.Response(429, json=envelope("slow down"), headers={"retry-after": "3"}), ok()
    )
    api, slept = api_with(transport)
    assert api.usage_completions(1).data == []
    assert len(seen) == 2 and slept == [3.0]


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503])
def test_retryable_statuses_back_off_exponentially(status: int) -> None:
    transport, seen = scripted(httpx.Response(status, json=envelope("busy")), httpx.Response(status), ok())
    api, slept = api_with(transport)
    api.usage_embeddings(1)
    assert len(seen) == 3
    assert 0.375 <= slept[0] <= 0.5 and 0.75 <= slept[1] <= 1.0, "backoff doubles, with jitter"


def test_connection_reset_is_retried() -> None:
    transport, seen = scripted(httpx.ReadError("connection reset by peer"), ok())
    api, _ = api_with(transport)
    api.usage_images(1)
    assert len(seen) == 2


def test_retries_are_bounded() -> None:
    transport, seen = scripted(*(httpx.Response(503) for _ in range(4)))
    api, slept = api_with(transport, max_retries=3)
    with pytest.raises(InternalServerError) as failed:
        api.usage_images(1)
    assert len(seen) == 4 and len(slept) == 3
    assert failed.value.status_code == 503


def test_an_absurd_retry_after_is_not_honoured() -> None:
    transport, _ = scripted(httpx.Response(429, headers={"retry-after": "86400"}), ok())
    api, slept = api_with(transport)
    api.usage_images(1)
    assert slept[0] <= 8


def test_400_is_never_retried() -> None:
    transport, seen = scripted(httpx.Response(400, json=envelope("bad limit", "limit")), ok())
    api, slept = api_with(transport)
    with pytest.raises(BadRequestError) as bad:
        api.usage_completions(1, limit=99)
    assert len(seen) == 1 and slept == []
    assert (bad.value.param, bad.value.message) == ("limit", "400 bad limit")


def test_timeouts_are_retried_then_raised_as_timeout_errors() -> None:
    transport, seen = scripted(*(httpx.ReadTimeout("slow") for _ in range(3)))
    api, _ = api_with(transport)
    with pytest.raises(APITimeoutError):
        api.usage_completions(1)
    assert len(seen) == 3
    assert issubclass(APITimeoutError, APIConnectionError)


def test_connection_errors_raise_connection_errors() -> None:
    transport, _ = scripted(*(httpx.ConnectError("refused") for _ in range(3)))
    api, _ = api_with(transport)
    with pytest.raises(APIConnectionError):
        api.usage_completions(1)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (418, APIStatusError),
    ],
)
def test_each_status_maps_to_its_error_class(status: int, error_class: type[APIStatusError]) -> None:
    response = httpx.Response(
        status, json=envelope("nope", "x", "some_code"), headers={"x-request-id": "req_1"}
    )
    transport, _ = scripted(*(response for _ in range(3)))
    api, _ = api_with(transport)
    with pytest.raises(error_class) as raised:
        api.usage_completions(1)
    error = raised.value
    assert type(error) is error_class and isinstance(error, UsageApiError)
    assert (error.status_code, error.param, error.code, error.request_id) == (
        status,
        "x",
        "some_code",
        "req_1",
    )


def test_a_bare_string_error_body_keeps_its_text() -> None:
    body = json.loads((FIXTURES / "errors__observed-bodies_2025-2026.json").read_text())["errors"][0]["body"]
    transport, _ = scripted(httpx.Response(403, json=body))
    api, _ = api_with(transport)
    with pytest.raises(PermissionDeniedError, match=r"Missing scopes: api\.usage\.read"):
        api.usage_costs(1)


def test_request_carries_key_params_and_bracketed_arrays() -> None:
    transport, seen = scripted(ok())
    api, _ = api_with(transport)
    api.usage_completions(
        10, 20, bucket_width="1h", group_by=["model", "batch"], models="gpt-5", batch=False, limit=3
    )
    request = seen[0]
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.url.path == "/v1/organization/usage/completions"
    assert request.url.params.multi_items() == [
        ("start_time", "10"),
        ("end_time", "20"),
        ("bucket_width", "1h"),
        ("models[]", "gpt-5"),
        ("batch", "false"),
        ("group_by[]", "model"),
        ("group_by[]", "batch"),
        ("limit", "3"),
    ]


def test_pages_are_followed_with_the_same_parameters() -> None:
    first = {**EMPTY_PAGE, "data": [{"object": "bucket", "start_time": 1, "end_time": 2, "results": []}]}
    first |= {"has_more": True, "next_page": "page_abc"}
    second = {**EMPTY_PAGE, "data": [{"object": "bucket", "start_time": 2, "end_time": 3, "results": []}]}
    transport, seen = scripted(httpx.Response(200, json=first), httpx.Response(200, json=second))
    api, _ = api_with(transport)
    assert [b.start_time for b in api.usage_embeddings(1, 3, group_by=["model"])] == [1, 2]
    assert seen[1].url.params["page"] == "page_abc" and seen[1].url.params["group_by[]"] == "model"


def test_async_client_retries_the_same_way() -> None:
    answers: list[Callable[[], httpx.Response]] = [lambda: httpx.Response(503), ok]

    async def handle(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)()

    async def run() -> list[float]:
        api = AsyncUsageApi(
            "sk-test", base_url="https://example.test/v1", transport=httpx.MockTransport(handle)
        )
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        api._sleep = sleep
        await api.usage_completions(1)
        await api.close()
        return slept

    assert len(asyncio.run(run())) == 1 and answers == []


def test_configuration_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://env.test/v1/")
    api = UsageApi()
    assert api.base_url == "https://env.test/v1"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert UsageApi().base_url == "https://api.openai.com/v1"
    monkeypatch.delenv("OPENAI_ADMIN_KEY")
    with pytest.raises(UsageApiError, match="OPENAI_ADMIN_KEY"):
        UsageApi()
