"""Models against the catalogue and real captured responses; export to rows, CSV, pandas;
the stub that shows the methods to type checkers."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pandas
import pytest
from mypy import api as mypy_api

from openusage.catalogue import ENDPOINTS
from openusage.client import CostsResult, UsageApi
from openusage.client.models import RESULT_MODELS
from openusage.client.stubgen import STUB_PATH, render_stub

FIXTURES = Path(__file__).parent.parent / "data" / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    data.pop("_provenance", None)
    return data


def client_answering(*pages: dict[str, Any]) -> UsageApi:
    queue = list(pages)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=queue.pop(0)))
    return UsageApi("sk-test", base_url="https://example.test/v1", transport=transport)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_models_have_the_catalogue_fields(endpoint: Any) -> None:
    fields = set(RESULT_MODELS[endpoint.name].model_fields)
    expected = {"object", *endpoint.metric_names, *endpoint.group_fields}
    if endpoint.is_costs:
        expected |= {"amount", "quantity", "quantity_unit"}
    assert fields == expected


def test_captured_usage_parses_with_every_field() -> None:
    captured = fixture("usage_completions__openai-cookbook_2025-02_ungrouped_1d.json")
    page = client_answering(
        {"object": "page", "has_more": False, "next_page": None, **captured}
    ).usage_completions(1)
    assert len(page.data) == len(captured["data"])
    first = page.data[0].results[0]
    assert (first.input_tokens, first.output_tokens, first.num_model_requests) == (141201, 9756, 470)
    assert first.model is None and first.batch is None


@pytest.mark.parametrize(
    "name",
    [
        "costs__jp-sample-script_2025-09_single-bucket.json",
        "costs__openai-cookbook_2025-02_ungrouped_1d.json",
        "costs__public-test-fixture_2026-08_empty-buckets-page.json",
    ],
)
def test_captured_costs_parse_and_keep_unknown_fields(name: str) -> None:
    captured = fixture(name)
    page = client_answering({"object": "page", "has_more": False, "next_page": None, **captured}).usage_costs(
        1
    )
    results = [r for b in page.data for r in b.results]
    assert all(isinstance(r, CostsResult) for r in results)
    if results:
        assert results[0].amount.currency == "usd" and results[0].amount.value > 0
        assert results[0].model_extra and "organization_id" in results[0].model_extra
    if "start_time_iso" in captured["data"][0]:
        assert page.data[0].model_extra == {"start_time_iso": captured["data"][0]["start_time_iso"]}


def test_single_result_capture_parses() -> None:
    captured = fixture("usage_completions__genai-devbench_2025-10_1m-result.json")["result"]
    bucket = {"object": "bucket", "start_time": 0, "end_time": 60, "results": [captured]}
    page = client_answering({"object": "page", "data": [bucket], "has_more": False, "next_page": None})
    (result,) = page.usage_completions(0).data[0].results
    assert result.input_uncached_tokens == 2883 and result.output_text_tokens == 1795


def two_pages() -> UsageApi:
    row = {
        "object": "organization.costs.result",
        "amount": {"value": 1.5, "currency": "usd"},
        "line_item": "x",
    }
    first = {
        "object": "page",
        "data": [{"object": "bucket", "start_time": 0, "end_time": 86400, "results": [row]}],
        "has_more": True,
        "next_page": "page_2",
    }
    second = {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": 86400,
                "end_time": 172800,
                "results": [{**row, "line_item": "y"}],
            }
        ],
        "has_more": False,
        "next_page": None,
    }
    return client_answering(first, second)


def test_rows_csv_and_pandas_cover_every_page() -> None:
    rows = two_pages().usage_costs(0).to_rows()
    assert [(r["start_time"], r["line_item"], r["amount_value"], r["amount_currency"]) for r in rows] == [
        (0, "x", 1.5, "usd"),
        (86400, "y", 1.5, "usd"),
    ]
    text = two_pages().usage_costs(0).to_csv()
    assert text is not None
    lines = text.splitlines()
    assert lines[0].startswith("start_time,end_time,object,amount_value,amount_currency,line_item")
    assert len(lines) == 3
    buffer = io.StringIO()
    assert two_pages().usage_costs(0).to_csv(buffer) is None and buffer.getvalue() == text
    frame = two_pages().usage_costs(0).to_pandas()
    assert list(frame["line_item"]) == ["x", "y"]
    assert frame["start_time"].iloc[1] == pandas.Timestamp("1970-01-02", tz="UTC")


def test_stub_is_what_the_generator_writes() -> None:
    assert STUB_PATH.read_text() == render_stub(), "run: python -m openusage.client.stubgen"


def test_type_checkers_see_exact_signatures(tmp_path: Path) -> None:
    snippet = tmp_path / "use.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from openusage.client import UsageApi

            api = UsageApi("k")
            page = api.usage_images(1, bucket_width="1h", sizes=["1024x1024"], group_by=["size"])
            reveal_type(page.data[0].results[0])
            api.usage_images(1, group_by=["batch"])
            api.usage_costs(1, bucket_width="1h")
            """
        )
    )
    out, _, _ = mypy_api.run([str(snippet), "--no-incremental", "--strict", "--no-error-summary"])
    assert 'Revealed type is "openusage.client.models.ImagesResult"' in out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 2, out
    assert "'batch'" in errors[0] and "'1h'" in errors[1]
