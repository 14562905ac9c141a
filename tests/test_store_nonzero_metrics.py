"""A metric no stored event of a kind has above 0 is summed as 0 without being read; the
first event that has it makes it read, in usage and costs alike, and after a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openusage.buckets import iter_buckets
from openusage.catalogue import USAGE_KINDS, WIDTH_SECONDS
from openusage.server.events import EventRules, parse_events
from openusage.store import Aggregation, DuckDBStore, ResultShape
from openusage.store.base import Row

from .conftest import DAY, Server, event, start_server, stop_server

DAY0 = 1_709_251_200  # 2024-03-01T00:00:00Z
COMPLETIONS = USAGE_KINDS["completions"]
SHAPE = ResultShape(COMPLETIONS.result_object, (*COMPLETIONS.metric_names, *COMPLETIONS.group_fields))
PRICES = """
source = "test prices"

[[price]]
model = "m-test"
item = "input"
usd_per_million = 2

[[price]]
model = "m-test"
item = "cached input"
usd_per_million = 1

[[price]]
model = "m-test"
item = "output"
usd_per_million = 10
"""


def text_only(n: int) -> list[dict[str, Any]]:
    return [
        event("completions", DAY0 + 60 * i, f"text-{i}", model="m-test", input_tokens=1000, output_tokens=100)
        for i in range(n)
    ]


def with_cache_and_audio(n: int) -> list[dict[str, Any]]:
    return [
        event(
            "completions",
            DAY0 + 3600 + 60 * i,
            f"cached-{i}",
            model="m-test",
            input_tokens=1000,
            input_cached_tokens=400,
            input_audio_tokens=50,
            output_tokens=100,
        )
        for i in range(n)
    ]


def answers(server: Server) -> tuple[dict[str, Any], dict[str, Any]]:
    usage = server.page("/organization/usage/completions", {"start_time": DAY0, "end_time": DAY0 + DAY})
    costs = server.page(
        "/organization/costs", {"start_time": DAY0, "end_time": DAY0 + DAY, "group_by": "line_item"}
    )
    return usage, costs


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Path, list[Server]]]:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    running: list[Server] = []
    yield prices, running
    for server in running:
        stop_server(server)


def test_a_metric_first_sent_late_is_counted_in_usage_and_costs_and_after_a_restart(
    tmp_path: Path, servers: tuple[Path, list[Server]]
) -> None:
    prices, running = servers

    def serve(folder: str) -> Server:
        (tmp_path / folder).mkdir(exist_ok=True)
        server = start_server(tmp_path / folder, "--lookback-days", "0", "--prices", str(prices))
        running.append(server)
        return server

    late = serve("late")
    late.ingest_ok(text_only(3))
    usage, _ = answers(late)  # read while no event has cached or audio tokens
    (before,) = usage["data"][0]["results"]
    assert (before["input_tokens"], before["input_cached_tokens"], before["input_audio_tokens"]) == (
        3000,
        0,
        0,
    )
    late.ingest_ok(with_cache_and_audio(2))
    at_once = serve("at-once")
    at_once.ingest_ok(text_only(3) + with_cache_and_audio(2))

    usage, costs = answers(late)
    (result,) = usage["data"][0]["results"]
    assert (result["input_tokens"], result["input_cached_tokens"], result["input_audio_tokens"]) == (
        5000,
        800,
        100,
    )
    assert result["input_cached_text_tokens"] == 800
    lines = {r["line_item"]: (r["quantity"], r["amount"]["value"]) for r in costs["data"][0]["results"]}
    assert lines["m-test, cached input"] == (800, 0.0008)
    assert lines["m-test, audio input (unpriced)"] == (100, 0)
    assert (usage, costs) == answers(at_once)

    stop_server(late)
    running.remove(late)
    restarted = serve("late")
    assert (usage, costs) == answers(restarted)


def rows(events: list[dict[str, Any]]) -> list[Row]:
    return parse_events(events, EventRules(now=DAY0 + 10 * DAY))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    opened = DuckDBStore(tmp_path / "nonzero.duckdb")
    yield opened
    opened.close()


def test_a_read_made_before_a_metric_was_noted_is_made_again(store: DuckDBStore) -> None:
    """A commit notes its metrics, then its events become visible: a read whose SQL was
    made before the note, and which sees those events, is read again with the metric."""
    store.append(rows(text_only(2)))
    day = Aggregation(
        kind="completions",
        buckets=list(iter_buckets(DAY0, DAY0 + DAY, "1d")),
        width_seconds=WIDTH_SECONDS["1d"],
        group_by=(),
        filters={},
        metrics=COMPLETIONS.metric_names,
    )
    original = store._read_once
    reads = []

    def committed_meanwhile(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if not reads:  # between the making of the first read's SQL and its running
            store.append(rows(with_cache_and_audio(1)))
        reads.append(1)
        return original(*args, **kwargs)

    store._read_once = committed_meanwhile  # type: ignore[method-assign]
    ((_, _, text),) = store.aggregate_json(day, SHAPE)
    (result,) = json.loads(text)
    assert (result["input_cached_tokens"], result["input_audio_tokens"]) == (400, 50)
    assert len(reads) == 2
    reads.clear()
    ((_, _, sums),) = store.aggregate(day)
    assert dict(zip(day.metrics, sums, strict=True))["input_cached_tokens"] == 400
    assert len(reads) == 1, "read once when nothing new was noted"
