"""The client against our server: in-process and over a real socket, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from openusage.catalogue import USAGE_ENDPOINTS, Endpoint
from openusage.client import AsyncUsageApi, BadRequestError, UsageApi
from openusage.server import create_app
from openusage.settings import Settings
from openusage.store import DuckDBStore

from ..conftest import ADMIN_KEY, DAY, Server
from ..test_openai_client import sample_events


@pytest.fixture(scope="module")
def app_and_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, DuckDBStore]]:
    tmp: Path = tmp_path_factory.mktemp("inprocess")
    store = DuckDBStore(tmp / "usage.duckdb")
    settings = Settings(db_path=tmp / "usage.duckdb", admin_key=ADMIN_KEY, lookback_days=None)
    yield create_app(settings, store=store), store
    store.close()


@pytest.fixture(scope="module")
def in_process(app_and_store: tuple[Any, DuckDBStore]) -> Iterator[UsageApi]:
    app, _ = app_and_store
    with (
        TestClient(app, base_url="http://test") as http,
        UsageApi(ADMIN_KEY, base_url="http://test/v1", http_client=http) as api,
    ):
        yield api


@pytest.fixture(scope="module")
def over_socket(server: Server) -> Iterator[UsageApi]:
    with UsageApi(ADMIN_KEY, base_url=server.api) as api:
        yield api


def ingest_in_process(api: UsageApi, events: list[dict[str, Any]]) -> None:
    http: httpx.Client = api._client
    response = http.post(
        "/v1/organization/usage/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert response.status_code == 200, response.text


def check_endpoint(api: UsageApi, endpoint: Endpoint, day0: int, events: list[dict[str, Any]]) -> None:
    method = getattr(api, endpoint.method)
    metric = endpoint.metric_names[0]
    own = {"project_ids": sorted({e["project_id"] for e in events})} if endpoint.has_gauge else {}
    # Hour buckets over two days with 5 a page: ten pages walked by iterating.
    page = method(
        day0, day0 + 2 * DAY, bucket_width="1h", limit=5, group_by=list(endpoint.group_fields), **own
    )
    assert page.has_more is True and len(page.data) == 5
    buckets = list(page)
    assert [b.start_time for b in buckets] == [day0 + h * 3600 for h in range(48)]
    assert len(list(page.iter_pages())) == 10
    total = sum(getattr(r, metric) for b in buckets for r in b.results)
    if endpoint.has_gauge:  # each bucket holds the stores' sizes at its end
        assert total == sum(gauge_at(events, b.end_time) for b in buckets)
    else:
        assert total == sum(e[metric] for e in events)
    for param, dimension in endpoint.filters.items():
        value: Any = True if dimension.type == "boolean" else [events[0][dimension.name]]
        filtered = list(
            method(day0, day0 + 2 * DAY, **{param: value, **({} if param == "project_ids" else own)})
        )
        got = sum(getattr(r, metric) for b in filtered for r in b.results)
        wanted = value if dimension.type == "boolean" else value[0]
        if endpoint.has_gauge:
            expected = sum(gauge_at(events, b.end_time, **{dimension.name: wanted}) for b in filtered)
            assert got == expected, param
        else:
            assert got == sum(e[metric] for e in events if e.get(dimension.name) == wanted), param


def gauge_at(events: list[dict[str, Any]], end: int, **where: Any) -> int:
    """The sum of each vector store's last reported size before ``end``, over the stores
    whose last report matches ``where`` (a store's last report says its project)."""
    latest: dict[str, dict[str, Any]] = {}
    for e in sorted(events, key=lambda e: e["timestamp"]):
        if e["timestamp"] < end:
            latest[e["vector_store_id"]] = e
    return sum(e["usage_bytes"] for e in latest.values() if all(e.get(k) == v for k, v in where.items()))


@pytest.mark.parametrize("endpoint", USAGE_ENDPOINTS, ids=lambda e: e.name)
def test_every_method_in_process(in_process: UsageApi, endpoint: Endpoint) -> None:
    day0 = 1_600_000_000 - 1_600_000_000 % DAY + USAGE_ENDPOINTS.index(endpoint) * 3 * DAY
    events = sample_events(endpoint, day0)
    ingest_in_process(in_process, events)
    check_endpoint(in_process, endpoint, day0, events)


@pytest.mark.parametrize("endpoint", USAGE_ENDPOINTS, ids=lambda e: e.name)
def test_every_method_over_a_socket(server: Server, over_socket: UsageApi, endpoint: Endpoint) -> None:
    day0 = server.window(2)
    events = sample_events(endpoint, day0)
    server.ingest_ok(events)
    check_endpoint(over_socket, endpoint, day0, events)


def test_sync_and_async_give_identical_results(server: Server, over_socket: UsageApi) -> None:
    day0 = server.window(3)
    for endpoint in USAGE_ENDPOINTS:
        server.ingest_ok(sample_events(endpoint, day0))

    async def walk_async() -> list[Any]:
        async with AsyncUsageApi(ADMIN_KEY, base_url=server.api) as api:
            out = []
            for endpoint in USAGE_ENDPOINTS:
                page = await getattr(api, endpoint.method)(
                    day0, day0 + 3 * DAY, bucket_width="1h", limit=7, group_by=[endpoint.group_fields[0]]
                )
                out.append([b async for b in page])
                out.append(await page.to_rows())
            return out

    sync = []
    for endpoint in USAGE_ENDPOINTS:
        page = getattr(over_socket, endpoint.method)(
            day0, day0 + 3 * DAY, bucket_width="1h", limit=7, group_by=[endpoint.group_fields[0]]
        )
        sync.append(list(page))
        sync.append(page.to_rows())
    assert asyncio.run(walk_async()) == sync
    # Something to compare: completions, 72 hour buckets, with the events' numbers in them.
    assert len(sync[0]) == 72
    assert sum(r.input_tokens for b in sync[0] for r in b.results) == sum(
        e["input_tokens"] for e in sample_events(USAGE_ENDPOINTS[0], day0)
    )


def test_async_client_in_process(app_and_store: tuple[Any, DuckDBStore]) -> None:
    app, _ = app_and_store

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with AsyncUsageApi(ADMIN_KEY, base_url="http://test/v1", transport=transport) as api:
            page = await api.usage_embeddings(1_500_076_800, 1_500_076_800 + 3 * DAY, limit=1)
            return [b.start_time async for b in page]

    assert asyncio.run(run()) == [1_500_076_800 + d * DAY for d in range(3)]


def test_aware_datetimes_are_accepted_and_naive_ones_refused(over_socket: UsageApi, server: Server) -> None:
    day0 = server.window(1)
    start = datetime.fromtimestamp(day0, UTC)
    page = over_socket.usage_moderations(start, datetime.fromtimestamp(day0 + DAY, UTC))
    assert page.data[0].start_time == day0
    with pytest.raises(ValueError, match="naive"):
        over_socket.usage_moderations(datetime(2024, 1, 1))


def test_server_errors_surface_as_client_errors(over_socket: UsageApi) -> None:
    with pytest.raises(BadRequestError) as bad:
        over_socket.usage_completions(1_600_000_000, bucket_width="1w")
    assert bad.value.param == "bucket_width" and bad.value.status_code == 400
    assert bad.value.request_id and bad.value.request_id.startswith("req_")


def test_usage_costs_in_process_sync_and_async(
    app_and_store: tuple[Any, DuckDBStore], in_process: UsageApi
) -> None:
    day0 = 1_400_025_600  # 2014-05-14, a midnight no other test here uses
    ingest_in_process(
        in_process,
        [
            {"id": f"cost-{i}", "type": "completions", "timestamp": day0 + i * DAY + 5, "model": "gpt-4o",
             "project_id": f"p{i % 2}", "input_tokens": 1_000_000, "output_tokens": 0}
            for i in range(4)
        ],
    )  # fmt: skip
    page = in_process.usage_costs(day0, day0 + 4 * DAY, group_by=["project_id", "line_item"], limit=3)
    assert page.has_more is True
    sync_rows = page.to_rows()
    assert [(r["start_time"], r["project_id"], r["line_item"]) for r in sync_rows] == [
        (day0 + i * DAY, f"p{i % 2}", "gpt-4o, input") for i in range(4)
    ]
    assert all(r["amount_value"] == pytest.approx(2.5) and r["quantity"] == 1_000_000 for r in sync_rows)

    async def run() -> list[dict[str, Any]]:
        app, _ = app_and_store
        async with AsyncUsageApi(
            ADMIN_KEY, base_url="http://test/v1", transport=httpx.ASGITransport(app=app)
        ) as api:
            page = await api.usage_costs(day0, day0 + 4 * DAY, group_by=["project_id", "line_item"], limit=3)
            return await page.to_rows()

    assert asyncio.run(run()) == sync_rows
