"""Every method of the installed official client's usage resource, driven by its own type hints.

Each ``group_by`` literal the client knows (singly and all at once), every filter it can
send (a value that matches and one that does not) and a page walk, in strict response
validation. A newer client with a new literal, filter or endpoint fails here, not in a
user's hands as a 400 or, worse, as a filter silently dropped.
"""

from __future__ import annotations

import inspect
import typing
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai.resources.admin.organization.usage import Usage

from openusage.catalogue import COSTS, USAGE_KINDS, Endpoint

from .conftest import DAY, Server
from .test_openai_client import sample_events

NOT_FILTERS = {"start_time", "end_time", "bucket_width", "group_by", "limit", "page"}
METHODS = sorted(
    name
    for name, member in inspect.getmembers(Usage, inspect.isfunction)
    if not name.startswith("_") and name not in ("with_raw_response", "with_streaming_response")
)


def literals(hint: Any) -> list[Any]:
    """Every ``Literal`` value inside a type hint (``List[Literal[...]] | Omit`` and the like)."""
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return [value for arg in typing.get_args(hint) for value in literals(arg)]


def parameters(method: str) -> dict[str, Any]:
    hints = typing.get_type_hints(getattr(Usage, method))
    return {
        name: hints[name]
        for name in inspect.signature(getattr(Usage, method)).parameters
        if name != "self" and not name.startswith("extra_") and name != "timeout"
    }


def is_bool(hint: Any) -> bool:
    return hint is bool or bool in typing.get_args(hint)


def test_the_installed_client_has_todays_surface() -> None:
    assert "decisions" in METHODS, f"openai {openai.__version__} predates the decisions endpoint"
    # Every method of the official client is an endpoint of ours.
    assert set(METHODS) == {*USAGE_KINDS, "costs"}


def total(page: Any, metric: str) -> Decimal:
    return sum((Decimal(str(metric_of(r, metric))) for b in page.data for r in b.results), start=Decimal(0))


def metric_of(result: Any, metric: str) -> Any:
    return result.amount.value if metric == "amount" else getattr(result, metric)


@pytest.mark.parametrize("method", METHODS)
def test_every_literal_filter_and_page_of_the_official_client(
    server: Server, client: openai.OpenAI, method: str
) -> None:
    day0 = server.window(2)
    window = {"start_time": day0, "end_time": day0 + 2 * DAY}
    is_costs = method == "costs"
    kinds = (
        [USAGE_KINDS["completions"], USAGE_KINDS["web_search_calls"]] if is_costs else [USAGE_KINDS[method]]
    )
    events = [e for kind in kinds for e in sample_events(kind, day0)]
    server.ingest_ok(events)
    endpoint: Endpoint = kinds[0]
    call = getattr(client.admin.organization.usage, method)
    params = parameters(method)
    metric = "amount" if is_costs else endpoint.metric_names[0]
    # A gauge's sum over buckets means nothing; its last bucket is what is checked.
    own: dict[str, Any] = {}
    if endpoint.has_gauge:
        own["project_ids"] = sorted({e["project_id"] for e in events})

    whole = total(call(**window, **own), metric)
    assert whole > 0

    fields = literals(params["group_by"])
    assert fields, f"{method}: no group_by literals in the client's hints"
    for group_by in [[f] for f in fields] + [fields]:
        page = call(**window, **own, group_by=group_by)
        assert total(page, metric) == pytest.approx(whole, abs=Decimal("1e-8")), group_by
        for bucket in page.data:
            for result in bucket.results:
                for field in fields:
                    if field not in group_by:
                        assert getattr(result, field) is None, (group_by, field)

    filters = {name: hint for name, hint in params.items() if name not in NOT_FILTERS}
    for name, hint in filters.items():
        if endpoint.has_gauge and name == "project_ids":
            continue  # checked through ``own`` above
        matching, missing = filter_values(method, name, hint, events, call, window)
        for value, should_match in [(v, True) for v in matching] + [(v, False) for v in missing]:
            page = call(**window, **own, **{name: value})
            got = total(page, metric)
            if should_match:
                assert got > 0, (name, value)
                if not is_costs and not endpoint.has_gauge:
                    dimension = name if is_bool(hint) else endpoint.filters[name].name
                    wanted = value if is_bool(hint) else value[0]
                    assert got == sum(e[metric] for e in events if e.get(dimension) == wanted), (name, value)
            else:
                assert all(b.results == [] for b in page.data), (name, value)

    # A page walk, one bucket a page, sees every bucket once and the same total.
    seen, walked = [], Decimal(0)
    page = call(**window, **own, limit=1)
    while True:
        seen += [b.start_time for b in page.data]
        walked += total(page, metric)
        if not page.has_more:
            break
        page = call(**window, **own, limit=1, page=page.next_page)
    assert seen == [day0, day0 + DAY]
    if not endpoint.has_gauge:
        assert walked == pytest.approx(whole, abs=Decimal("1e-8"))


def filter_values(
    method: str, name: str, hint: Any, events: list[dict[str, Any]], call: Any, window: dict[str, int]
) -> tuple[list[Any], list[Any]]:
    """Values of one filter that match some of the events, and values that match none."""
    if is_bool(hint):
        return [True, False], []
    if name == "line_items":
        page = call(**window, group_by=["line_item"])
        names = sorted({r.line_item for b in page.data for r in b.results})
        return [[names[0]], names[:2]], [["zz-no-such"], [names[0] + ","], [names[0].replace(", ", ",")]]
    enum = literals(hint)
    dimension = (COSTS if method == "costs" else USAGE_KINDS[method]).filters[name].name
    present = sorted({e[dimension] for e in events if e.get(dimension) is not None})
    if enum:
        return [[present[0]]], [[v] for v in enum if v not in present][:1]
    return [[present[0]]], [["zz-no-such"], [present[0] + " "], [f"{present[0]},{present[-1]}"]]
