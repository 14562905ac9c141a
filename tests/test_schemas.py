"""Responses against the official schemas, the catalogue against the official spec, and
captured OpenAI responses replayed as golden files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from openusage.catalogue import BY_PATH, USAGE_ENDPOINTS, Endpoint

from .conftest import DAY, Server, event
from .test_openai_client import sample_events

DATA = Path(__file__).parent / "data"
OFFICIAL = json.loads((DATA / "openai-usage-openapi.json").read_text())
FIXTURES = DATA / "fixtures"


def official_validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": OFFICIAL["components"]}
    return jsonschema.Draft202012Validator(schema)


def own_validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def official_parameters(path: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["schema"] for p in OFFICIAL["paths"][path]["get"]["parameters"]}


# What the official clients of late 2026 (openai-python 3.57 types) added to the bundled
# spec (2.3.0): per endpoint, new group_by fields, result fields and filters.
# ``test_official_client.py`` checks these against the installed client itself.
LATE_2026_GROUP_BY = {"completions": ["api_source"], "web_search_calls": ["api_source"]}
LATE_2026_FIELDS = {
    "completions": {"api_source", "input_cache_write_30m_tokens", "input_cache_write_12h_tokens"},
    "web_search_calls": {"api_source"},
}
# Not in the bundled spec at all; the official client's strict types check its answers.
SPEC_PREDATES = {"decisions"}
IN_SPEC = [e for e in USAGE_ENDPOINTS if e.name not in SPEC_PREDATES]


@pytest.mark.parametrize("endpoint", IN_SPEC, ids=lambda e: e.name)
def test_catalogue_matches_the_official_spec(endpoint: Endpoint) -> None:
    params = official_parameters(endpoint.path)
    official_group_by = params["group_by"]["items"]["enum"] + LATE_2026_GROUP_BY.get(endpoint.name, [])
    assert official_group_by == list(endpoint.group_fields)
    assert params["bucket_width"]["enum"] == list(endpoint.widths)
    official_filters = set(params) - {"start_time", "end_time", "bucket_width", "group_by", "limit", "page"}
    assert official_filters == set(endpoint.filters)
    for name, dimension in endpoint.filters.items():
        enum = params[name].get("items", {}).get("enum")
        if enum:
            # Ours may know more values (newer image sizes), never fewer.
            assert dimension.values is not None and set(enum) <= set(dimension.values)
    schema = OFFICIAL["components"]["schemas"][endpoint.schema_name]
    assert schema["properties"]["object"]["enum"] == [endpoint.result_object]
    official_fields = set(schema["properties"]) | LATE_2026_FIELDS.get(endpoint.name, set())
    assert official_fields == {"object", *endpoint.metric_names, *endpoint.group_fields}


def test_decisions_are_completions_shaped() -> None:
    completions, decisions = (
        BY_PATH["/organization/usage/completions"],
        BY_PATH["/organization/usage/decisions"],
    )
    assert decisions.result_object == "organization.usage.decisions.result"
    assert (decisions.metrics, decisions.dimensions) == (completions.metrics, completions.dimensions)


def test_costs_entry_matches_the_official_spec() -> None:
    costs = BY_PATH["/organization/costs"]
    params = official_parameters(costs.path)
    # Late 2026: user_id and api_source grouping, and the line_items filter.
    assert set(params["group_by"]["items"]["enum"]) | {"user_id", "api_source"} == set(costs.group_fields)
    assert set(costs.filters) == {"project_ids", "api_key_ids", "line_items"}
    assert costs.limits["1d"].maximum == 180 and costs.limits["1d"].default == 7


@pytest.mark.parametrize("endpoint", IN_SPEC, ids=lambda e: e.name)
def test_every_response_validates_against_the_official_and_our_own_schema(
    server: Server, endpoint: Endpoint
) -> None:
    document = httpx.get(server.base_url + "/openapi.json").json()
    assert endpoint.path in document["paths"]
    official = official_validator("UsageResponse")
    ours = own_validator(document, "UsageResponse")
    day0 = server.window(2)
    server.ingest_ok(sample_events(endpoint, day0))
    queries: list[dict[str, Any]] = [
        {},
        {"group_by": list(endpoint.group_fields)},
        {"bucket_width": "1h", "limit": 5, "group_by": endpoint.group_fields[0]},
        {"bucket_width": "1m", "limit": 3, "start_time": day0 + 59},
    ]
    for extra in queries:
        page = server.page(endpoint.path, {"start_time": day0, "end_time": day0 + 2 * DAY, **extra})
        official.validate(page)
        ours.validate(page)


def test_openapi_document_lists_ingestion_and_rejects_what_the_server_rejects(server: Server) -> None:
    document = httpx.get(server.base_url + "/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/organization/usage/events" in document["paths"]
    validator = own_validator(document, "CompletionsEvent".replace("Completions", "UsageCompletions"))
    validator.validate({"id": "a", "type": "completions", "timestamp": 1_700_000_000, "input_tokens": 3})
    assert not validator.is_valid({"id": "a", "type": "completions", "timestamp": 1, "input_token": 3})
    assert not validator.is_valid({"id": "a", "type": "completions", "timestamp": 1, "input_tokens": -3})


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def test_captured_cookbook_usage_is_reproduced_bucket_for_bucket(server: Server) -> None:
    """OpenAI's own output (Feb 2025): replay its totals as events, query it the same way,
    and get the same buckets and the same numbers back."""
    captured = load_fixture("usage_completions__openai-cookbook_2025-02_ungrouped_1d.json")
    buckets = captured["data"]
    start, end = buckets[0]["start_time"], buckets[-1]["end_time"]
    metrics = ("input_tokens", "output_tokens", "num_model_requests", "input_cached_tokens")
    audio = ("input_audio_tokens", "output_audio_tokens")
    events = []
    predating: set[int] = set()
    for bucket in buckets:
        for i, result in enumerate(bucket["results"]):
            fields = {m: result[m] for m in metrics + audio}
            if result["output_audio_tokens"] > result["output_tokens"]:
                # Early 2025 output_tokens left audio out; today's definition (SPEC §4)
                # counts it in, so this bucket's audio output cannot be replayed as is.
                del fields["output_audio_tokens"]
                predating.add(bucket["start_time"])
            events.append(
                event("completions", bucket["start_time"] + i, f"golden-{bucket['start_time']}", **fields)
            )
    assert len(predating) == 1
    server.ingest_ok(events)

    replayed = server.walk(
        "/organization/usage/completions",
        {"start_time": start, "end_time": end, "bucket_width": "1d", "limit": 7},
    )
    assert [(b["start_time"], b["end_time"]) for b in replayed] == [
        (b["start_time"], b["end_time"]) for b in buckets
    ]
    for ours, theirs in zip(replayed, buckets, strict=True):
        assert len(ours["results"]) == len(theirs["results"])
        for our_result, their_result in zip(ours["results"], theirs["results"], strict=True):
            # Every field OpenAI sent is there with the same value; newer fields are extra.
            compared = [
                k
                for k in their_result
                if not (k == "output_audio_tokens" and ours["start_time"] in predating)
            ]
            assert {k: our_result[k] for k in compared} == {k: their_result[k] for k in compared}


def test_result_fields_cover_the_late_2025_capture(server: Server) -> None:
    captured = load_fixture("usage_completions__genai-devbench_2025-10_1m-result.json")["result"]
    day0 = server.window(1)
    fields = {
        k: v for k, v in captured.items() if k not in ("object", "num_model_requests") and v is not None
    }
    server.ingest_ok([event("completions", day0 + 61, num_model_requests=4, **fields)])
    page = server.page(
        "/organization/usage/completions", {"start_time": day0, "end_time": day0 + 180, "bucket_width": "1m"}
    )
    (ours,) = page["data"][1]["results"]
    assert {k: ours[k] for k in captured} == captured
    # Newer fields: cache writes (none here) and the source, unlabeled when not grouped by.
    assert {k: ours[k] for k in set(ours) - set(captured)} == {
        "input_cache_write_tokens": 0,
        "input_cache_write_30m_tokens": 0,
        "input_cache_write_12h_tokens": 0,
        "api_source": None,
    }
