"""``UsageApi`` and ``AsyncUsageApi``: one method per endpoint, pages walked for you.

The methods are made from the catalogue by ``methods.py``; ``api.pyi`` (written by
``stubgen.py``) gives type checkers their exact signatures.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

import httpx

from ..catalogue import Endpoint
from .core import ClientConfig, parse_page, query_params, send, send_async
from .methods import async_method, install, sync_method
from .pages import AsyncUsagePage, UsagePage


class UsageApi:
    """A client of the organization Usage & Costs API (OpenAI's or openusage's).

    ``api_key`` falls back to ``OPENAI_ADMIN_KEY``; ``base_url`` to ``OPENAI_BASE_URL``,
    then ``https://api.openai.com/v1``. Pass ``transport`` (any httpx transport, such as
    ``httpx.MockTransport`` or ``httpx.WSGITransport``) or a whole ``http_client``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._config = ClientConfig.resolve(api_key, base_url, timeout, max_retries)
        self._owns_client = http_client is None
        self._client = http_client or httpx.Client(transport=transport, timeout=self._config.timeout)
        self._sleep = time.sleep

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def _page(self, endpoint: Endpoint, arguments: dict[str, Any]) -> UsagePage[Any]:
        response = send(self._client, self._config, endpoint, query_params(arguments), self._sleep)
        page = parse_page(UsagePage, endpoint, response)
        page._fetch = lambda cursor: self._page(endpoint, {**arguments, "page": cursor})
        return page

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> UsageApi:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncUsageApi:
    """The async twin of :class:`UsageApi`, with the same methods to ``await``."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = ClientConfig.resolve(api_key, base_url, timeout, max_retries)
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(transport=transport, timeout=self._config.timeout)
        self._sleep = asyncio.sleep

    @property
    def base_url(self) -> str:
        return self._config.base_url

    async def _page(self, endpoint: Endpoint, arguments: dict[str, Any]) -> AsyncUsagePage[Any]:
        response = await send_async(
            self._client, self._config, endpoint, query_params(arguments), self._sleep
        )
        page = parse_page(AsyncUsagePage, endpoint, response)
        page._fetch = lambda cursor: self._page(endpoint, {**arguments, "page": cursor})
        return page

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncUsageApi:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


install(UsageApi, sync_method)
install(AsyncUsageApi, async_method)
