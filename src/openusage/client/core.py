"""What the sync and async clients share: configuration, requests, answers, parameters."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from .. import __version__
from ..catalogue import Endpoint
from .errors import APIConnectionError, APITimeoutError, UsageApiError, error_for
from .models import RESULT_MODELS
from .retry import RetryPolicy

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
ENV_API_KEY = "OPENAI_ADMIN_KEY"
ENV_BASE_URL = "OPENAI_BASE_URL"

Params = list[tuple[str, Any]]
P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class ClientConfig:
    api_key: str
    base_url: str
    timeout: float
    retry: RetryPolicy

    @classmethod
    def resolve(
        cls, api_key: str | None, base_url: str | None, timeout: float | None, max_retries: int
    ) -> ClientConfig:
        """Explicit values first; the environment once, here, as the fallback."""
        key = api_key or os.environ.get(ENV_API_KEY)
        if not key:
            raise UsageApiError(f"No API key: pass api_key=... or set {ENV_API_KEY}.")
        url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        return cls(
            api_key=key,
            base_url=url.rstrip("/"),
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            retry=RetryPolicy(max_retries=max_retries),
        )

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"openusage/{__version__}",
        }


def unix_seconds(value: int | datetime, name: str) -> int:
    """Unix seconds from an int or a timezone-aware datetime; naive datetimes are refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} is a naive datetime: give it a time zone (e.g. tzinfo=UTC)")
        return int(value.timestamp() // 1)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be unix seconds (int) or an aware datetime, not {type(value).__name__}")
    return value


def _strings(value: str | Sequence[str], name: str) -> list[str]:
    values = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"{name} must be a string or a sequence of strings")
    return values


def query_params(arguments: Mapping[str, Any]) -> Params:
    """The query string of one call. Arrays go as ``name[]=``, the form the official SDK
    sends, which OpenAI's API and ours both accept."""
    params: Params = []
    for name, value in arguments.items():
        if value is None:
            continue
        if name in ("start_time", "end_time"):
            params.append((name, str(unix_seconds(value, name))))
        elif isinstance(value, bool):
            params.append((name, "true" if value else "false"))
        elif isinstance(value, int) or name in ("bucket_width", "page"):
            params.append((name, str(value)))
        else:
            params.extend((f"{name}[]", v) for v in _strings(value, name))
    return params


@cache
def page_model(page_class: type[P], endpoint_name: str) -> type[P]:
    """The page class parametrised with the endpoint's result model (made once)."""
    return page_class[RESULT_MODELS[endpoint_name]]  # type: ignore[index, no-any-return]


def parse_page(page_class: type[P], endpoint: Endpoint, response: httpx.Response) -> P:
    """The page in a response, or the error it stands for."""
    if response.status_code >= 400:
        raise error_for(response)
    page: P = page_model(page_class, endpoint.name).model_validate_json(response.content)
    return page


def transport_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"The request timed out: {exc}")
    return APIConnectionError(f"The connection failed: {exc}")


def send(
    client: httpx.Client, config: ClientConfig, endpoint: Endpoint, params: Params, sleep: Any
) -> httpx.Response:
    """GET one page, trying again as the retry policy says."""
    return request(client, config, "GET", endpoint.path, sleep, params=params)


def request(
    client: httpx.Client,
    config: ClientConfig,
    method: str,
    path: str,
    sleep: Any,
    *,
    params: Any = None,
    body: Any = None,
    retried: bool = True,
) -> httpx.Response:
    """One call, tried again as the retry policy says unless ``retried`` is false (a call
    that is not safe to repeat, such as one that creates something)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            response = client.request(
                method, config.base_url + path, params=params, json=body, headers=config.headers()
            )
        except httpx.TransportError as exc:
            if not (retried and config.retry.should_retry(attempt, None)):
                raise transport_error(exc) from exc
            sleep(config.retry.delay(attempt, None))
            continue
        if response.status_code >= 400 and retried and config.retry.should_retry(attempt, response):
            sleep(config.retry.delay(attempt, response))
            continue
        return response


async def send_async(
    client: httpx.AsyncClient, config: ClientConfig, endpoint: Endpoint, params: Params, sleep: Any
) -> httpx.Response:
    """The async twin of :func:`send`; the policy is the same object."""
    attempt = 0
    while True:
        attempt += 1
        try:
            response = await client.get(
                config.base_url + endpoint.path, params=params, headers=config.headers()
            )
        except httpx.TransportError as exc:
            if not config.retry.should_retry(attempt, None):
                raise transport_error(exc) from exc
            await sleep(config.retry.delay(attempt, None))
            continue
        if response.status_code >= 400 and config.retry.should_retry(attempt, response):
            await sleep(config.retry.delay(attempt, response))
            continue
        return response
