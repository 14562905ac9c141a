"""Property-based tests over HTTP: invariants of aggregation for random events."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openusage.catalogue import USAGE_KINDS
from openusage.catalogue import WIDTH_SECONDS as WIDTHS

from .conftest import DAY, Server

COMPLETIONS = USAGE_KINDS["completions"]
SPAN = 6 * 3600  # six hours: 360 minute buckets fit in one page

events_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "offset": st.integers(0, SPAN - 1),
            "project_id": st.sampled_from([None, "p1", "p2"]),
            "user_id": st.sampled_from([None, "u1"]),
            "api_key_id": st.sampled_from([None, "k1", "k2"]),
            "model": st.sampled_from([None, "m1", "m2"]),
            "batch": st.sampled_from([None, True, False]),
            "service_tier": st.sampled_from([None, "default", "flex"]),
            "input_tokens": st.integers(0, 10**6),
            "cached_share": st.integers(0, 100),
            "output_tokens": st.integers(0, 10**5),
            "num_model_requests": st.integers(0, 5),
        }
    ),
    min_size=1,
    max_size=40,
)
# The query starts anywhere in the first hour, so the first bucket is often partial.
start_offsets = st.integers(0, 3599)
RUN = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def ingest(server: Server, day0: int, drawn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    for i, d in enumerate(drawn):
        fields = {k: v for k, v in d.items() if k not in ("offset", "cached_share") and v is not None}
        fields["input_cached_tokens"] = d["input_tokens"] * d["cached_share"] // 100
        events.append(
            {"id": f"prop-{day0}-{i}", "type": "completions", "timestamp": day0 + d["offset"], **fields}
        )
    assert server.ingest_ok(events)["inserted"] == len(events)
    return events


def totals(buckets: list[dict[str, Any]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for bucket in buckets:
        for result in bucket["results"]:
            out.update({m: result[m] for m in COMPLETIONS.metric_names})
    return out


@RUN
@given(drawn=events_strategy, start_offset=start_offsets)
def test_totals_agree_across_widths(server: Server, drawn: list[dict[str, Any]], start_offset: int) -> None:
    day0 = server.window(1)
    events = ingest(server, day0, drawn)
    start, end = day0 + start_offset, day0 + SPAN
    inside = [e for e in events if start <= e["timestamp"] < end]
    sums = {
        width: totals(
            server.walk(
                COMPLETIONS.path,
                {"start_time": start, "end_time": end, "bucket_width": width, "limit": limit},
            )
        )
        for width, limit in (("1m", 1440), ("1h", 168), ("1d", 31))
    }
    assert sums["1m"] == sums["1h"] == sums["1d"]
    assert sums["1d"]["input_tokens"] == sum(e["input_tokens"] for e in inside)
    assert sums["1d"]["input_cached_tokens"] == sum(e["input_cached_tokens"] for e in inside)


@RUN
@given(
    drawn=events_strategy,
    group_by=st.lists(st.sampled_from(COMPLETIONS.group_fields), unique=True, min_size=1),
    width=st.sampled_from(["1h", "1m"]),
)
def test_group_by_partitions_the_ungrouped_totals(
    server: Server, drawn: list[dict[str, Any]], group_by: list[str], width: str
) -> None:
    day0 = server.window(1)
    ingest(server, day0, drawn)
    params = {
        "start_time": day0,
        "end_time": day0 + SPAN,
        "bucket_width": width,
        "limit": SPAN // WIDTHS[width],
    }
    whole = server.page(COMPLETIONS.path, params)["data"]
    parts = server.page(COMPLETIONS.path, {**params, "group_by": group_by})["data"]
    assert [b["start_time"] for b in whole] == [b["start_time"] for b in parts]
    for w, p in zip(whole, parts, strict=True):
        assert totals([w]) == totals([p])
        keys = [tuple(r[g] for g in group_by) for r in p["results"]]
        assert len(keys) == len(set(keys)), "one result per combination"


@RUN
@given(drawn=events_strategy, limit=st.integers(1, 30), start_offset=start_offsets)
def test_walking_pages_gives_the_buckets_of_one_large_page(
    server: Server, drawn: list[dict[str, Any]], limit: int, start_offset: int
) -> None:
    day0 = server.window(1)
    ingest(server, day0, drawn)
    params = {
        "start_time": day0 + start_offset,
        "end_time": day0 + SPAN,
        "bucket_width": "1h",
        "group_by": "model",
    }
    one = server.page(COMPLETIONS.path, {**params, "limit": 168})
    assert one["has_more"] is False
    assert server.walk(COMPLETIONS.path, {**params, "limit": limit}) == one["data"]


@RUN
@given(drawn=events_strategy)
def test_resending_a_batch_changes_nothing(server: Server, drawn: list[dict[str, Any]]) -> None:
    day0 = server.window(1)
    events = ingest(server, day0, drawn)
    params = {
        "start_time": day0,
        "end_time": day0 + DAY,
        "bucket_width": "1h",
        "group_by": ["project_id", "batch"],
    }
    before = server.page(COMPLETIONS.path, params)
    again = server.ingest_ok(events)
    assert (again["inserted"], again["duplicates"]) == (0, len(events))
    assert server.page(COMPLETIONS.path, params) == before
