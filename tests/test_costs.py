"""Costs over HTTP against figures worked out by hand, with a price file of our own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from itertools import combinations
from pathlib import Path
from typing import Any

import openai
import pytest

from .conftest import DAY, Server, event, start_server, stop_server
from .test_schemas import official_validator

DAY0 = 1_709_251_200  # 2024-03-01T00:00:00Z
COSTS = "/organization/costs"
GIB = 2**30

PRICES = """
source = "hand-computed test prices"

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
item = "cache write"
usd_per_million = 3
[[price]]
model = "m-test"
item = "output"
usd_per_million = 10
[[price]]
model = "m-test"
item = "output"
usd_per_million = 12
from = "2024-03-03"
[[price]]
model = "m-test"
item = "input"
batch = true
usd_per_million = 1
[[price]]
model = "m-test"
item = "output"
batch = true
usd_per_million = 5
[[price]]
model = "m-test"
item = "input"
service_tier = "priority"
usd_per_million = 4
[[price]]
model = "m-test"
item = "output"
service_tier = "priority"
usd_per_million = 20
[[price]]
model = "m-test"
item = "cache write 12h"
usd_per_million = 6
[[price]]
model = "m-test"
item = "cached image input"
usd_per_million = "0.5"
[[price]]
model = "m-test"
item = "cached audio input"
usd_per_million = 8
[[price]]
model = "r-test"
item = "input"
usd_per_million = "0.0123"
[[price]]
model = "r-test"
item = "output"
usd_per_million = 2
[[price]]
model = "r-test"
item = "input"
batch = true
usd_per_million = 3
[[price]]
model = "r-test"
item = "output"
batch = true
usd_per_million = "0.0123"
[[price]]
model = "m-test"
item = "audio input"
usd_per_million = 40
[[price]]
model = "m-test"
item = "audio output"
usd_per_million = 80
[[price]]
model = "m-test"
item = "web search tool calls"
usd = "0.01"
[[price]]
item = "file search tool calls"
usd = "0.005"
[[price]]
item = "code interpreter sessions"
usd = "0.05"
[[price]]
item = "vector store storage"
usd = "0.2"
[[price]]
model = "img-test"
item = "images"
variant = "1024x1024"
usd = "0.05"
[[price]]
model = "tts-test"
item = "characters"
usd = "0.00002"
[[price]]
model = "stt-test"
item = "audio seconds"
usd = "0.0001"
[[price]]
model = "m-test"
item = "image input"
usd_per_million = 5
[[price]]
model = "m-test"
item = "image output"
usd_per_million = 40
[[price]]
model = "mod-test"
item = "input"
usd_per_million = "0.5"
[[price]]
model = "m-test"
item = "web search tool calls"
variant = "high"
usd = "0.03"
"""

P1 = {"project_id": "p1", "api_key_id": "k1"}


def hand_events() -> list[dict[str, Any]]:
    t = DAY0 + 3600
    return [
        event("completions", t, "c1", model="m-test", input_tokens=1_000_000,
              input_cached_tokens=400_000, input_cache_write_tokens=100_000, output_tokens=200_000, **P1),
        event("completions", t, "c2", model="m-test", batch=True, input_tokens=2_000_000,
              output_tokens=1_000_000, project_id="p2", api_key_id="k1"),
        event("completions", t, "c3", model="m-test", service_tier="priority", input_tokens=100_000,
              output_tokens=50_000, project_id="p1", api_key_id="k2"),
        event("completions", t, "c4", model="m-test", input_tokens=300_000, input_audio_tokens=100_000,
              output_tokens=60_000, output_audio_tokens=10_000, project_id="p2", api_key_id="k2"),
        event("completions", t, "c5", model="no-price-model", input_tokens=1000, output_tokens=0, **P1),
        event("web_search_calls", t, "w1", model="m-test", num_requests=3, **P1),
        event("file_search_calls", t, "f1", vector_store_id="vs", num_requests=4, **P1),
        event("code_interpreter_sessions", t, "s1", num_sessions=2, project_id="p2"),
        event("vector_stores", t, "v1", vector_store_id="vs-cost", project_id="p1",
              usage_bytes=2 * GIB),
        event("images", t, "i1", model="img-test", size="1024x1024", images=3,
              project_id="p2", api_key_id="k1"),
        event("audio_speeches", t, "a1", model="tts-test", characters=1000, **P1),
        event("audio_transcriptions", t, "a2", model="stt-test", seconds=120, **P1),
        # Day three: output costs $12 a million from then on.
        event("completions", DAY0 + 2 * DAY + 60, "c6", model="m-test", input_tokens=0,
              output_tokens=100_000, **P1),
        *MODALITY_EVENTS,
        *TINY_EVENTS,
        *IMAGE_TOKEN_EVENTS,
    ]  # fmt: skip


MODALITY_DAY = DAY0 + 10 * DAY
# Shaped exactly like OpenAI's result fields (every count given). c7: all its images came
# from the cache (cached image tokens above the uncached image count of 0), cache writes of
# both retentions, attributed to the Agents API. c8: cached and uncached audio, no source.
MODALITY_EVENTS = [
    event("completions", MODALITY_DAY + 60, "c7", model="m-test", user_id="u1", api_source="agents_api",
          input_tokens=1_000_000, input_cached_tokens=600_000, input_cached_text_tokens=0,
          input_cached_audio_tokens=0, input_cached_image_tokens=600_000, input_cache_write_tokens=150_000,
          input_cache_write_30m_tokens=100_000, input_cache_write_12h_tokens=50_000,
          input_uncached_tokens=250_000, input_text_tokens=250_000, input_audio_tokens=0,
          input_image_tokens=0, output_tokens=100_000, output_text_tokens=100_000, output_audio_tokens=0,
          output_image_tokens=0, **P1),
    event("completions", MODALITY_DAY + 120, "c8", model="m-test", user_id="u2", input_tokens=500_000,
          input_cached_tokens=200_000, input_cached_audio_tokens=200_000, input_audio_tokens=100_000,
          output_tokens=100_000, output_audio_tokens=40_000, project_id="p2", api_key_id="k2"),
]  # fmt: skip
# By hand, output at $12/M (after 2024-03-03): c7 = 0.5 input + 0.3 cache write + 0.3 12-hour
# cache write + 0.3 cached image input + 1.2 output = 2.6; c8 = 0.4 input (200k text) + 1.6
# cached audio + 4 audio input + 0.72 output (60k text) + 3.2 audio output = 9.92.
MODALITY_ITEMS = {
    "m-test, input": ("0.9", 450_000),
    "m-test, cache write": ("0.3", 100_000),
    "m-test, cache write 12h": ("0.3", 50_000),
    "m-test, cached image input": ("0.3", 600_000),
    "m-test, cached audio input": ("1.6", 200_000),
    "m-test, audio input": ("4", 100_000),
    "m-test, output": ("1.92", 160_000),
    "m-test, audio output": ("3.2", 40_000),
    "vector store storage": ("0.4", 48),  # the store of day one, carried forward
}

TINY_DAY = DAY0 + 12 * DAY
# 5 tokens at $0.0123/M cost $0.0000000615 each, less than a billionth of a dollar apart
# from any rounding: every line costs its exact product, so two of them make $0.000000123,
# not the $0.000000124 of lines rounded to billionths first. Beside them, lines at round
# prices ($2/M output, $3/M batch input), and 7 batch output tokens at $0.0123/M.
TINY_EVENTS = [
    event("completions", TINY_DAY + 60, "r1", model="r-test", batch=False, input_tokens=5,
          output_tokens=1000, project_id="p3", user_id="u1"),
    event("completions", TINY_DAY + 60, "r2", model="r-test", batch=False, input_tokens=5,
          output_tokens=1000, project_id="p4", user_id="u2"),
    event("completions", TINY_DAY + 120, "r3", model="r-test", batch=True, input_tokens=1000,
          output_tokens=7, project_id="p3", user_id="u1"),
]  # fmt: skip
TINY_ITEMS = {
    "r-test, input": (Decimal("0.000000123"), 10),
    "r-test, output": (Decimal("0.004"), 2000),
    "r-test, input (batch)": (Decimal("0.003"), 1000),
    "r-test, output (batch)": (Decimal("0.0000000861"), 7),
}


IMAGE_TOKEN_DAY = DAY0 + 14 * DAY
# Uncached image input and image output at their own prices, a moderation, and web
# searches with a high context, priced apart by the price file: c9's 300k
# input is 200k text and 100k image, its 50k output 30k text and 20k image.
IMAGE_TOKEN_EVENTS = [
    event("completions", IMAGE_TOKEN_DAY + 60, "c9", model="m-test", input_tokens=300_000,
          input_image_tokens=100_000, output_tokens=50_000, output_image_tokens=20_000, **P1),
    event("moderations", IMAGE_TOKEN_DAY + 60, "mod1", model="mod-test", input_tokens=1_000_000, **P1),
    event("web_search_calls", IMAGE_TOKEN_DAY + 60, "w2", model="m-test", num_requests=2,
          context_level="high", **P1),
]  # fmt: skip
IMAGE_TOKEN_ITEMS = {
    "m-test, input": ("0.4", 200_000),  # $2/M
    "m-test, image input": ("0.5", 100_000),  # $5/M
    "m-test, output": ("0.36", 30_000),  # $12/M
    "m-test, image output": ("0.8", 20_000),  # $40/M
    "mod-test, input": ("0.5", 1_000_000),  # $0.5/M
    "web search tool calls": ("0.06", 2),  # at the high context's own price
    "vector store storage": ("0.4", 48),  # the store of day one, carried forward
}

# Worked out by hand: (amount, quantity, unit) per line item on day one.
DAY_ONE_ITEMS = {
    "m-test, input": ("1.4", 700_000, "tokens"),  # c1 500k + c4 200k text at $2/M
    "m-test, cached input": ("0.4", 400_000, "tokens"),
    "m-test, cache write": ("0.3", 100_000, "tokens"),
    "m-test, output": ("2.5", 250_000, "tokens"),  # c1 200k + c4 50k text at $10/M
    "m-test, input (batch)": ("2", 2_000_000, "tokens"),
    "m-test, output (batch)": ("5", 1_000_000, "tokens"),
    "m-test, input (priority)": ("0.4", 100_000, "tokens"),
    "m-test, output (priority)": ("1", 50_000, "tokens"),
    "m-test, audio input": ("4", 100_000, "tokens"),
    "m-test, audio output": ("0.8", 10_000, "tokens"),
    "no-price-model, input (unpriced)": ("0", 1000, "tokens"),
    "web search tool calls": ("0.03", 3, "calls"),
    "file search tool calls": ("0.02", 4, "calls"),
    "code interpreter sessions": ("0.1", 2, "sessions"),
    "vector store storage": ("0.4", 48, "gibibyte_hours"),
    "img-test, images (1024x1024)": ("0.15", 3, "images"),
    "tts-test, characters": ("0.02", 1000, "characters"),
    "stt-test, audio seconds": ("0.012", 120, "duration_seconds"),
}
DAY_TOTALS = [Decimal("18.532"), Decimal("0.4"), Decimal("1.6")]
PROJECT_TOTALS_DAY_ONE = {"p1": Decimal("5.582"), "p2": Decimal("12.95")}


@pytest.fixture(scope="module")
def costs_server(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("costs")
    prices = tmp / "prices.toml"
    prices.write_text(PRICES)
    running = start_server(tmp, "--lookback-days", "0", "--prices", str(prices), store=store_kind)
    running.ingest_ok(hand_events())
    yield running
    stop_server(running)


def exact(server: Server, params: dict[str, Any]) -> dict[str, Any]:
    """A page with every JSON number read as an exact decimal."""
    response = server.get(COSTS, params)
    assert response.status_code == 200, response.text
    official_validator("UsageResponse").validate(response.json())
    body: dict[str, Any] = json.loads(response.text, parse_float=Decimal, parse_int=Decimal)
    return body


def day_totals(page: dict[str, Any]) -> list[Decimal]:
    return [sum((r["amount"]["value"] for r in b["results"]), Decimal(0)) for b in page["data"]]


def test_every_line_item_matches_the_hand_computed_figure(costs_server: Server) -> None:
    page = exact(costs_server, {"start_time": DAY0, "end_time": DAY0 + DAY, "group_by": "line_item"})
    (bucket,) = page["data"]
    got = {
        r["line_item"]: (r["amount"]["value"], r["quantity"], r["quantity_unit"]) for r in bucket["results"]
    }
    assert got == {name: (Decimal(a), Decimal(q), u) for name, (a, q, u) in DAY_ONE_ITEMS.items()}
    assert all(r["amount"]["currency"] == "usd" for r in bucket["results"])
    # As OpenAI writes them (tests/data/fixtures/costs__*.json): the object, then the amount.
    assert all(list(r)[:2] == ["object", "amount"] for r in bucket["results"])
    assert [r["line_item"] for r in bucket["results"]] == sorted(got)


def test_day_totals_and_a_price_change_in_the_middle_of_the_period(costs_server: Server) -> None:
    page = exact(costs_server, {"start_time": DAY0, "end_time": DAY0 + 3 * DAY})
    assert day_totals(page) == DAY_TOTALS
    day_three = exact(
        costs_server, {"start_time": DAY0 + 2 * DAY, "end_time": DAY0 + 3 * DAY, "group_by": "line_item"}
    )
    items = {r["line_item"]: r["amount"]["value"] for r in day_three["data"][0]["results"]}
    assert items["m-test, output"] == Decimal("1.2")  # 100k at the new $12/M, not $10/M


COSTS_GROUPS = ["project_id", "user_id", "line_item", "api_key_id", "api_source"]


@pytest.mark.parametrize(
    "group_by",
    [list(c) for n in (1, 2, 3, 5) for c in combinations(COSTS_GROUPS, n)],
    ids=lambda g: "+".join(g),
)
def test_every_grouping_sums_to_the_same_total_exactly(costs_server: Server, group_by: list[str]) -> None:
    page = exact(costs_server, {"start_time": DAY0, "end_time": DAY0 + 3 * DAY, "group_by": group_by})
    assert day_totals(page) == DAY_TOTALS
    modality = exact(
        costs_server, {"start_time": MODALITY_DAY, "end_time": MODALITY_DAY + DAY, "group_by": group_by}
    )
    assert day_totals(modality) == [Decimal("12.92")]
    for bucket in page["data"]:
        keys = [tuple(r[g] for g in group_by) for r in bucket["results"]]
        assert len(keys) == len(set(keys))
        for r in bucket["results"]:
            assert (r["quantity"] is not None) == ("line_item" in group_by)


def test_projects_and_keys_filter_and_group(costs_server: Server) -> None:
    by_project = exact(costs_server, {"start_time": DAY0, "end_time": DAY0 + DAY, "group_by": "project_id"})
    got = {r["project_id"]: r["amount"]["value"] for r in by_project["data"][0]["results"]}
    assert got == PROJECT_TOTALS_DAY_ONE
    only_p2 = exact(costs_server, {"start_time": DAY0, "end_time": DAY0 + DAY, "project_ids": "p2"})
    assert day_totals(only_p2) == [Decimal("12.95")]
    # Vector storage and code interpreter sessions carry no key: a key filter leaves them out.
    k2 = exact(
        costs_server,
        {"start_time": DAY0, "end_time": DAY0 + DAY, "api_key_ids": "k2", "group_by": "line_item"},
    )
    assert {r["line_item"] for r in k2["data"][0]["results"]} == {
        "m-test, input (priority)",
        "m-test, output (priority)",
        "m-test, input",
        "m-test, output",
        "m-test, audio input",
        "m-test, audio output",
    }
    assert day_totals(k2) == [Decimal("1.4") + Decimal("5.7")]


def test_costs_buckets_are_whole_days_and_pages_walk(costs_server: Server) -> None:
    start = DAY0 + 17 * 3600 + 31 * 60  # mid-afternoon: the first bucket snaps to midnight
    buckets = costs_server.walk(COSTS, {"start_time": start, "end_time": DAY0 + 2 * DAY + 5, "limit": 1})
    assert [(b["start_time"], b["end_time"]) for b in buckets] == [
        (DAY0, DAY0 + DAY),
        (DAY0 + DAY, DAY0 + 2 * DAY),
        (DAY0 + 2 * DAY, DAY0 + 3 * DAY),
    ]


def test_empty_days_have_no_results(costs_server: Server) -> None:
    page = costs_server.page(COSTS, {"start_time": DAY0 - 3 * DAY, "end_time": DAY0})
    assert [b["results"] for b in page["data"]] == [[], [], []]


def test_costs_parameters_are_checked(costs_server: Server) -> None:
    for params, param in (
        ({"bucket_width": "1h"}, "bucket_width"),
        ({"limit": 181}, "limit"),
        ({"group_by": "model"}, "group_by"),
        ({"group_by": "size"}, "group_by"),
    ):
        response = costs_server.get(COSTS, {"start_time": DAY0, **params})
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert costs_server.get(COSTS, {"start_time": DAY0, "limit": 180}).status_code == 200


def test_the_official_client_parses_every_grouping(costs_server: Server) -> None:
    with openai.OpenAI(
        admin_api_key=costs_server.admin_key,
        api_key="x",
        base_url=costs_server.api,
        _strict_response_validation=True,
    ) as client:
        for n in (0, 1, 2, 3):
            for group_by in combinations(["project_id", "line_item", "api_key_id"], n):
                page = client.admin.organization.usage.costs(
                    start_time=DAY0,
                    end_time=DAY0 + 3 * DAY,
                    group_by=list(group_by),  # type: ignore[arg-type]
                )
                total = sum(Decimal(str(r.amount.value)) for b in page.data for r in b.results if r.amount)
                assert total == sum(DAY_TOTALS), group_by


def test_the_default_price_book_prices_real_models(server: Server) -> None:
    """No price file: the bundled dataset and supplement price the demo's models."""
    day0 = server.window(1)
    server.ingest_ok(
        [
            event(
                "completions", day0 + 5, model="gpt-4o-2024-08-06", input_tokens=1_000_000, output_tokens=0
            ),
            event(
                "completions", day0 + 6, model="gpt-4o", batch=True, input_tokens=1_000_000, output_tokens=0
            ),
            event("moderations", day0 + 7, model="omni-moderation-latest", input_tokens=5000),
            event("code_interpreter_sessions", day0 + 8, num_sessions=1),
        ]
    )
    page = server.page(COSTS, {"start_time": day0, "end_time": day0 + DAY, "group_by": "line_item"})
    items = {r["line_item"]: r["amount"]["value"] for r in page["data"][0]["results"]}
    assert items["gpt-4o-2024-08-06, input"] == pytest.approx(2.5)
    assert items["gpt-4o, input (batch)"] == pytest.approx(1.25)
    assert items["omni-moderation-latest, input"] == 0
    assert items["code interpreter sessions"] == pytest.approx(0.03)


def test_prices_file_errors_are_clear(tmp_path: Path) -> None:
    from openusage.costs import PriceBook, PriceFileError

    for text, message in (
        ("[[price]]\nusd = 1\n", "'item' is required"),
        ('[[price]]\nitem = "input"\n', "exactly one of"),
        ('[[price]]\nitem = "input"\nusd = -1\n', "non-negative"),
        ('[[price]]\nitem = "input"\nusd = 1\nfrom = "soon"\n', "not a date"),
        ('[[price]]\nitem = "input"\nusd = 1\ncolour = "red"\n', "unknown field"),
        ("not toml [", "not valid TOML"),
    ):
        path = tmp_path / "p.toml"
        path.write_text(text)
        with pytest.raises(PriceFileError, match=message):
            PriceBook.from_file(path)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openusage", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_prices_check_lists_unpriced_usage_and_fails(costs_server: Server) -> None:
    recent = int(time.time()) - 3600
    costs_server.ingest_ok(
        [event("embeddings", recent, "recent-unpriced", model="mystery-embedder", input_tokens=777)]
    )
    checked = run_cli("prices", "check", "--base-url", costs_server.api, "--days", "2",
                      env={"OPENAI_ADMIN_KEY": costs_server.admin_key})  # fmt: skip
    assert checked.returncode == 1, checked.stderr
    assert "mystery-embedder, input: 777 tokens" in checked.stdout


def test_prices_check_passes_when_everything_is_priced(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        recent = int(time.time()) - 3600
        running.ingest_ok([event("completions", recent, model="gpt-4o", input_tokens=10, output_tokens=5)])
        checked = run_cli("prices", "check", "--base-url", running.api, "--api-key", running.admin_key)
    finally:
        stop_server(running)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Every line item of the last 30 days has a price." in checked.stdout


def test_prices_show_names_prices_and_sources(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    shown = run_cli("prices", "show", "m-test", "--prices", str(prices), "--day", "2024-03-04")
    assert shown.returncode == 0, shown.stderr
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]] for line in shown.stdout.splitlines() if "│" in line
    ]
    assert ["item", "variant", "price", "source"] in [
        [c.strip() for c in line.split("┃")[1:-1]] for line in shown.stdout.splitlines()
    ]
    assert ["output", "standard", "$12.0000 per million", "hand-computed test prices"] in rows
    bundled = run_cli("prices", "show", "gpt-4o")
    assert "$2.5000 per million" in bundled.stdout and "genai-prices" in bundled.stdout
    unknown = run_cli("prices", "show", "no-such-model")
    assert unknown.returncode == 1 and "no price known" in unknown.stderr


def test_our_client_walks_costs_pages(costs_server: Server) -> None:
    from openusage import UsageApi

    with UsageApi(costs_server.admin_key, base_url=costs_server.api) as api:
        page = api.usage_costs(DAY0, DAY0 + 3 * DAY, group_by=["line_item"], limit=1)
        rows = page.to_rows()
    assert len({r["start_time"] for r in rows}) == 3
    assert sum(Decimal(str(r["amount_value"])) for r in rows) == sum(DAY_TOTALS)


def test_openai_shaped_events_charge_every_token_once(costs_server: Server) -> None:
    page = exact(
        costs_server, {"start_time": MODALITY_DAY, "end_time": MODALITY_DAY + DAY, "group_by": "line_item"}
    )
    got = {r["line_item"]: (r["amount"]["value"], r["quantity"]) for r in page["data"][0]["results"]}
    assert got == {name: (Decimal(a), Decimal(q)) for name, (a, q) in MODALITY_ITEMS.items()}


def test_image_tokens_moderations_and_search_contexts_at_their_own_prices(costs_server: Server) -> None:
    page = exact(
        costs_server,
        {"start_time": IMAGE_TOKEN_DAY, "end_time": IMAGE_TOKEN_DAY + DAY, "group_by": "line_item"},
    )
    got = {r["line_item"]: (r["amount"]["value"], r["quantity"]) for r in page["data"][0]["results"]}
    assert got == {name: (Decimal(a), Decimal(q)) for name, (a, q) in IMAGE_TOKEN_ITEMS.items()}


@pytest.mark.parametrize(
    ("group", "wanted"),
    [
        # Vector storage has neither a user nor a source.
        ("user_id", {"u1": "2.6", "u2": "9.92", None: "0.4"}),
        ("api_source", {"agents_api": "2.6", "unlabeled": "9.92", None: "0.4"}),
    ],
)
def test_costs_by_user_and_by_source(costs_server: Server, group: str, wanted: dict[str | None, str]) -> None:
    page = exact(
        costs_server, {"start_time": MODALITY_DAY, "end_time": MODALITY_DAY + DAY, "group_by": group}
    )
    got = {r[group]: r["amount"]["value"] for r in page["data"][0]["results"]}
    assert got == {k: Decimal(v) for k, v in wanted.items()}
    assert all(
        r["user_id" if group == "api_source" else "api_source"] is None for r in page["data"][0]["results"]
    )


def test_every_line_costs_its_exact_product_in_every_grouping(costs_server: Server) -> None:
    window = {"start_time": TINY_DAY, "end_time": TINY_DAY + DAY, "project_ids": ["p3", "p4"]}
    by_project = exact(costs_server, {**window, "group_by": "project_id"})
    assert {r["project_id"]: r["amount"]["value"] for r in by_project["data"][0]["results"]} == {
        "p3": Decimal("0.0050001476"),
        "p4": Decimal("0.0020000615"),
    }
    by_user = exact(costs_server, {**window, "group_by": "user_id"})
    assert {r["user_id"]: r["amount"]["value"] for r in by_user["data"][0]["results"]} == {
        "u1": Decimal("0.0050001476"),
        "u2": Decimal("0.0020000615"),
    }
    by_item = exact(costs_server, {**window, "group_by": "line_item"})
    assert {r["line_item"]: (r["amount"]["value"], r["quantity"]) for r in by_item["data"][0]["results"]} == (
        TINY_ITEMS
    )
    by_both = exact(costs_server, {**window, "group_by": ["project_id", "line_item"]})
    assert {
        (r["project_id"], r["line_item"]): r["amount"]["value"] for r in by_both["data"][0]["results"]
    } == {
        ("p3", "r-test, input"): Decimal("0.0000000615"),
        ("p4", "r-test, input"): Decimal("0.0000000615"),
        ("p3", "r-test, output"): Decimal("0.002"),
        ("p4", "r-test, output"): Decimal("0.002"),
        ("p3", "r-test, input (batch)"): Decimal("0.003"),
        ("p3", "r-test, output (batch)"): Decimal("0.0000000861"),
    }
    assert day_totals(exact(costs_server, window)) == [Decimal("0.0070002091")]


@pytest.mark.parametrize(
    ("line_items", "wanted"),
    [
        (["m-test, input"], {"m-test, input"}),
        (["m-test, input", "m-test, audio output"], {"m-test, input", "m-test, audio output"}),
        (["zz-no-such"], set()),
        (["m-test,input"], set()),  # exact names only: no trimming, no splitting
        (["m-test"], set()),
        ([" m-test, input"], set()),
    ],
)
def test_the_line_items_filter_keeps_exactly_the_named_lines(
    costs_server: Server, line_items: list[str], wanted: set[str]
) -> None:
    window = {"start_time": MODALITY_DAY, "end_time": MODALITY_DAY + DAY}
    for encoding in ("line_items[]", "line_items"):  # brackets, and the repeated key
        page = exact(costs_server, {**window, encoding: line_items, "group_by": "line_item"})
        results = page["data"][0]["results"]
        assert {r["line_item"] for r in results} == wanted
        ungrouped = exact(costs_server, {**window, encoding: line_items})
        assert day_totals(ungrouped) == [sum((Decimal(MODALITY_ITEMS[n][0]) for n in wanted), Decimal(0))]


def test_a_line_item_sent_unencoded_on_one_key_is_not_split(costs_server: Server) -> None:
    """Line item names hold a comma, so ``line_items=m-test, input`` is one name."""
    query = f"start_time={MODALITY_DAY}&end_time={MODALITY_DAY + DAY}&line_items=m-test, input"
    with costs_server.client() as c:
        response = c.get(f"{COSTS}?{query}")
    assert response.status_code == 200, response.text
    body = json.loads(response.text, parse_float=Decimal, parse_int=Decimal)
    assert day_totals(body) == [Decimal("0.9")]


def test_the_unpriced_line_can_be_filtered_on(costs_server: Server) -> None:
    page = exact(
        costs_server,
        {"start_time": DAY0, "end_time": DAY0 + DAY, "line_items[]": "no-price-model, input (unpriced)"},
    )
    assert day_totals(page) == [Decimal(0)] and len(page["data"][0]["results"]) == 1


def test_batch_and_flex_without_a_dataset_price_cost_half_and_priority_is_unpriced() -> None:
    from openusage.costs import PriceBook
    from openusage.costs.pricebook import _prices

    day = date(2026, 11, 1)
    model = "gpt-4o-audio-preview"
    standard = _prices(model, day, ())
    # The dataset has no batch, flex or priority variant for this model on this day: the
    # fallbacks are what is exercised (if it gains one, this says so).
    for context in ((("processing", "batch"),), (("service_tier", "flex"),), (("service_tier", "priority"),)):
        assert _prices(model, day, context) == standard, context
    book = PriceBook()
    full = book.quote(model, "input", day, batch=False, service_tier=None)
    assert full is not None and full.usd == Decimal("0.0000025")
    for batch, tier in ((True, None), (False, "flex")):
        half = book.quote(model, "input", day, batch=batch, service_tier=tier)
        assert half is not None and half.usd == full.usd / 2
    assert book.quote(model, "input", day, batch=False, service_tier="priority") is None


def test_every_day_of_a_run_without_price_changes_has_the_quote_of_its_first_day() -> None:
    """Costs price each (model, tier, ...) once per run of days with the same prices; a
    change the book does not see would price days after it at the old price."""
    from datetime import timedelta

    from openusage.costs import PriceBook
    from openusage.costs.pricebook import rules_from_toml

    rules, _ = rules_from_toml(
        '[[price]]\nmodel = "gpt-4o"\nitem = "output"\nusd = 1\nfrom = "2026-03-05"\nuntil = "2026-03-09"\n'
        '[[price]]\nmodel = "m-own"\nitem = "input"\nusd = 2\nfrom = "2026-01-20"\n',
        "test prices",
    )
    changed = 0
    for book in (PriceBook(), PriceBook(rules)):
        previous: dict[tuple[Any, ...], Any] = {}
        for offset in range(0, 420):
            day = date(2025, 12, 1) + timedelta(days=offset)
            start = book.period_start(day)
            assert start <= day
            for model in ("gpt-4o", "gpt-5", "o3", "gpt-4.1-mini", "m-own"):
                for item in ("input", "cached input", "output"):
                    for batch, tier in ((False, None), (True, None), (False, "flex"), (False, "priority")):
                        args = (model, item)
                        quote = book.quote(*args, day, batch=batch, service_tier=tier)
                        assert quote == book.quote(*args, start, batch=batch, service_tier=tier), (args, day)
                        key = (model, item, batch, tier)
                        changed += key in previous and previous[key] != quote
                        previous[key] = quote
    # The dataset's own changes (batch cached input on 2026-10-14, among others) and the
    # price file's both happen in these days: the check above saw prices change.
    assert changed >= 10


def test_flex_and_unpriced_priority_usage_get_their_own_line_items(tmp_path: Path) -> None:
    day = int(time.time()) - int(time.time()) % DAY - DAY
    running = start_server(tmp_path)
    try:
        running.ingest_ok(
            [
                event(
                    "completions", day + 60, model="gpt-5-mini", service_tier="flex", input_tokens=1_000_000
                ),
                event(
                    "completions",
                    day + 60,
                    model="gpt-4o-audio-preview",
                    service_tier="priority",
                    input_tokens=10,
                ),
            ]
        )
        page = exact(running, {"start_time": day, "end_time": day + DAY, "group_by": "line_item"})
    finally:
        stop_server(running)
    got = {r["line_item"]: r["amount"]["value"] for r in page["data"][0]["results"]}
    assert got == {
        "gpt-5-mini, input (flex)": Decimal("0.125"),  # the dataset's flex price, $0.125/M
        "gpt-4o-audio-preview, input (priority) (unpriced)": Decimal(0),
    }


def test_results_are_ordered_nulls_first_and_quantities_of_whole_units_are_integers(
    costs_server: Server,
) -> None:
    window = {"start_time": MODALITY_DAY, "end_time": MODALITY_DAY + DAY}
    by_user = costs_server.page(COSTS, {**window, "group_by": "user_id"})
    assert [r["user_id"] for r in by_user["data"][0]["results"]] == [None, "u1", "u2"]
    lines = costs_server.get(COSTS, {**window, "group_by": "line_item"}).text
    quantities = {r["line_item"]: r["quantity"] for r in json.loads(lines)["data"][0]["results"]}
    assert quantities["m-test, input"] == 450_000 and isinstance(quantities["m-test, input"], int)
    assert '"quantity":450000,' in lines  # a count of tokens is written as an integer


def test_a_key_filter_keeps_the_tool_calls_made_with_that_key(costs_server: Server) -> None:
    """Kinds without keys (vector storage, sessions) drop out of a key filter; the kinds
    after them in the catalogue must not."""
    page = exact(
        costs_server,
        {"start_time": DAY0, "end_time": DAY0 + DAY, "api_key_ids": "k1", "group_by": "line_item"},
    )
    names = {r["line_item"] for r in page["data"][0]["results"]}
    assert {"web search tool calls", "file search tool calls", "m-test, input"} <= names
    assert "vector store storage" not in names and "code interpreter sessions" not in names


def test_a_line_items_filter_reaches_every_kind(costs_server: Server) -> None:
    page = exact(
        costs_server,
        {
            "start_time": DAY0,
            "end_time": DAY0 + DAY,
            "line_items": ["web search tool calls", "tts-test, characters"],
        },
    )
    assert day_totals(page) == [Decimal("0.03") + Decimal("0.02")]


def test_lines_of_one_name_from_several_rows_add_their_quantities_and_amounts(tmp_path: Path) -> None:
    """Rows that price alike under one line's name (no tier and the default tier; a tool's
    calls from two models) are one result: each row's quantity and amount added in."""
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES + '[[price]]\nmodel = "r-test"\nitem = "web search tool calls"\nusd = "0.025"\n')
    running = start_server(tmp_path, "--lookback-days", "0", "--prices", str(prices))
    try:
        running.ingest_ok(
            [
                event("completions", DAY0 + 60, "n1", model="m-test", input_tokens=300_000, **P1),
                event("completions", DAY0 + 60, "n2", model="m-test", input_tokens=100_000,
                      service_tier="default", **P1),
                event("web_search_calls", DAY0 + 60, "n3", model="m-test", num_requests=3, **P1),
                event("web_search_calls", DAY0 + 60, "n4", model="r-test", num_requests=4, **P1),
            ]
        )  # fmt: skip
        page = exact(running, {"start_time": DAY0, "end_time": DAY0 + DAY, "group_by": "line_item"})
    finally:
        stop_server(running)
    got = {r["line_item"]: (r["amount"]["value"], r["quantity"]) for r in page["data"][0]["results"]}
    assert got == {
        "m-test, input": (Decimal("0.8"), 400_000),  # $2/M either way
        "web search tool calls": (Decimal("0.13"), 7),  # 3 at $0.01 and 4 at $0.025
    }


def test_a_fractional_quantity_is_written_as_it_is(tmp_path: Path) -> None:
    """7/64 GiB stored for a day is 2.625 GiB-hours: not rounded, not cut to 2."""
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    running = start_server(tmp_path, "--lookback-days", "0", "--prices", str(prices))
    try:
        running.ingest_ok(
            [
                event(
                    "vector_stores",
                    DAY0 + 60,
                    vector_store_id="vs-f",
                    project_id="p-f",
                    usage_bytes=7 * 2**24,
                )
            ]
        )
        page = exact(running, {"start_time": DAY0, "end_time": DAY0 + DAY, "group_by": "line_item"})
    finally:
        stop_server(running)
    ((line,),) = [b["results"] for b in page["data"]]
    assert (line["quantity"], line["amount"]["value"]) == (Decimal("2.625"), Decimal("0.021875"))


# A price of $10^9 a token makes 10^12 tokens (the most one event may carry) cost $10^21,
# past the 10^20 dollars DuckDB's DECIMAL(38,18) holds; a price of 19 decimal places is
# more than either engine's price column holds. Both are priced exactly all the same.
HUGE_PRICES = """
source = "prices past what the engines' decimals hold"

[[price]]
model = "h-test"
item = "input"
usd_per_million = "1000000000000000"
[[price]]
model = "t-test"
item = "output"
usd = "0.0000000000000000001"
"""


def test_costs_past_the_engines_decimals_are_exact(tmp_path: Path, store_kind: str) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(HUGE_PRICES)
    server = start_server(tmp_path, "--lookback-days", "0", "--prices", str(prices), store=store_kind)
    try:
        most = {"model": "h-test", "input_tokens": 10**12, "user_id": "u1"}
        huge_events = [
            event("completions", DAY0 + 60 * n, f"h{n}", project_id=f"p{n}", **most) for n in (1, 2)
        ]
        tiny_event = event("completions", DAY0 + 180, "t1", model="t-test", output_tokens=3, project_id="p3")
        server.ingest_ok([*huge_events, tiny_event])
        window = {"start_time": DAY0, "end_time": DAY0 + DAY}

        def amounts(params: dict[str, Any], group: str) -> dict[Any, Decimal]:
            page = exact(server, {**window, **params, "group_by": group})
            return {r[group]: r["amount"]["value"] for r in page["data"][0]["results"]}

        huge, tiny = Decimal("1e21"), Decimal("3e-19")
        assert amounts({"project_ids": ["p1", "p2"]}, "project_id") == {"p1": huge, "p2": huge}
        assert amounts({}, "project_id") == {"p1": huge, "p2": huge, "p3": tiny}
        assert amounts({}, "user_id") == {None: tiny, "u1": 2 * huge}
        assert amounts({}, "line_item") == {"h-test, input": 2 * huge, "t-test, output": tiny}
    finally:
        stop_server(server)
