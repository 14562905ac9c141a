"""The official ``openai`` client, in strict mode, against our server: every usage endpoint."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import openai
import pytest

from openusage.catalogue import USAGE_ENDPOINTS, Endpoint

from .conftest import DAY, Server, event


def sample_events(endpoint: Endpoint, day0: int) -> list[dict[str, Any]]:
    """A dozen events of one kind over two days, varied in every dimension."""
    values: dict[str, list[Any]] = {
        "project_id": ["proj_a", "proj_b", None],
        "user_id": ["user_a", "user_b"],
        "api_key_id": ["key_a", None],
        "model": ["gpt-5", "gpt-5-mini"],
        "batch": [True, False],
        "service_tier": ["default", "flex"],
        "vector_store_id": ["vs_a", "vs_b", "vs_c"],
    }
    for d in endpoint.dimensions:
        if d.values:
            values[d.name] = list(d.values[:2])
    if endpoint.has_gauge:
        # Stored bytes carry forward for ever, so a gauge test names its own stores and
        # projects (and queries only those), or it would see every earlier test's stores.
        values["project_id"] = [f"proj_a-{day0}", f"proj_b-{day0}"]
        values["vector_store_id"] = [f"vs_{c}-{day0}" for c in "abc"]
    events = []
    for i in range(12):
        fields: dict[str, Any] = {}
        for d in endpoint.dimensions:
            fields[d.name] = values[d.name][i % len(values[d.name])]
        for m in endpoint.metrics:
            fields[m.name] = (i + 1) * (100 if m.name != "num_model_requests" else 1)
        if "input_uncached_tokens" in endpoint.metric_names:  # completions, decisions
            fields["input_cached_tokens"] = (i + 1) * 10
            for name in (
                "input_uncached_tokens",
                "input_text_tokens",
                "output_text_tokens",
                "input_cached_text_tokens",
            ):
                del fields[name]
            for name in endpoint.metric_names:
                if "audio" in name or "image" in name or "cache_write" in name:
                    fields[name] = 0
        events.append(event(endpoint.name, day0 + (i % 2) * DAY + 3600 * i, **fields))
    return events


def expected(
    endpoint: Endpoint, events: list[dict[str, Any]], group_by: tuple[str, ...]
) -> Counter[tuple[Any, ...]]:
    """Sum of the first metric per (bucket, group), straight from the events."""
    metric = endpoint.metric_names[0]
    sums: Counter[tuple[Any, ...]] = Counter()
    if endpoint.has_gauge:
        # Every store's last size by the end of each day, summed per group.
        for day in range(2):
            latest: dict[str, dict[str, Any]] = {}
            for e in sorted(events, key=lambda e: e["timestamp"]):
                if e["timestamp"] < events[0]["timestamp"] - events[0]["timestamp"] % DAY + (day + 1) * DAY:
                    latest[e["vector_store_id"]] = e
            for e in latest.values():
                sums[(day, *(e.get(g) for g in group_by))] += e[metric]
        return sums
    for e in events:
        day = (e["timestamp"] - events[0]["timestamp"] + events[0]["timestamp"] % DAY) // DAY
        sums[(day, *(e.get(g) for g in group_by))] += e[metric]
    return sums


def group_by_options(endpoint: Endpoint) -> list[tuple[str, ...]]:
    fields = endpoint.group_fields
    options = [(), *((f,) for f in fields), fields]
    options += list(itertools.combinations(fields, 2))[:3]
    return list(dict.fromkeys(options))


@pytest.mark.parametrize("endpoint", USAGE_ENDPOINTS, ids=lambda e: e.name)
def test_every_endpoint_parses_and_returns_the_ingested_numbers(
    server: Server, client: openai.OpenAI, endpoint: Endpoint
) -> None:
    day0 = server.window(2)
    events = sample_events(endpoint, day0)
    server.ingest_ok(events)
    method = getattr(client.admin.organization.usage, endpoint.name)
    metric = endpoint.metric_names[0]
    own: dict[str, Any] = {}
    if endpoint.has_gauge:
        own["project_ids"] = sorted({e["project_id"] for e in events})
    for group_by in group_by_options(endpoint):
        page = method(start_time=day0, end_time=day0 + 2 * DAY, group_by=list(group_by), **own)
        assert page.object == "page" and page.has_more is False
        got: Counter[tuple[Any, ...]] = Counter()
        for day, bucket in enumerate(page.data):
            assert bucket.start_time == day0 + day * DAY
            for result in bucket.results:
                assert result.object == endpoint.result_object
                got[(day, *(getattr(result, g) for g in group_by))] += getattr(result, metric)
        assert got == expected(endpoint, events, group_by), group_by


@pytest.mark.parametrize("endpoint", USAGE_ENDPOINTS, ids=lambda e: e.name)
def test_every_filter_through_the_official_client(
    server: Server, client: openai.OpenAI, endpoint: Endpoint
) -> None:
    day0 = server.window(2)
    events = sample_events(endpoint, day0)
    server.ingest_ok(events)
    method = getattr(client.admin.organization.usage, endpoint.name)
    metric = endpoint.metric_names[0]
    for param, dimension in endpoint.filters.items():
        value: Any = True if dimension.type == "boolean" else [events[0][dimension.name]]
        page = method(start_time=day0, end_time=day0 + 2 * DAY, bucket_width="1h", limit=48, **{param: value})
        got = sum(getattr(r, metric) for b in page.data for r in b.results)
        wanted_value = value if dimension.type == "boolean" else value[0]
        if endpoint.has_gauge:
            by_time = sorted(events, key=lambda e: e["timestamp"])
            last = {e["vector_store_id"]: e for e in by_time if e["timestamp"] < day0 + 2 * DAY - 3600}
            assert sum(r.usage_bytes for r in page.data[-1].results) == sum(
                e[metric] for e in last.values() if e[dimension.name] == wanted_value
            )
            continue
        assert got == sum(e[metric] for e in events if e.get(dimension.name) == wanted_value), param


def test_pages_followed_with_the_official_client(server: Server, client: openai.OpenAI) -> None:
    day0 = server.window(3)
    server.ingest_ok([event("embeddings", day0 + h * 3600, input_tokens=h + 1) for h in range(72)])
    page = client.admin.organization.usage.embeddings(
        start_time=day0, end_time=day0 + 3 * DAY, bucket_width="1h", limit=10
    )
    seen = [b.start_time for b in page.data]
    while page.has_more:
        assert page.next_page
        page = client.admin.organization.usage.embeddings(
            start_time=day0, end_time=day0 + 3 * DAY, bucket_width="1h", limit=10, page=page.next_page
        )
        seen += [b.start_time for b in page.data]
    assert seen == [day0 + h * 3600 for h in range(72)]


def test_errors_map_to_the_official_exceptions(server: Server, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.admin.organization.usage.completions(start_time=1_600_000_000, limit=999)
    assert bad.value.param == "limit"  # type: ignore[attr-defined]
    with (
        openai.OpenAI(
            admin_api_key="sk-admin-wrong", api_key="x", base_url=server.api, max_retries=0
        ) as wrong,
        pytest.raises(openai.AuthenticationError) as denied,
    ):
        wrong.admin.organization.usage.completions(start_time=1_600_000_000)
    assert denied.value.code == "invalid_api_key"
