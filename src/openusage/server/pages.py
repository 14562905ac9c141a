"""One page of a read endpoint: buckets from the clock and the cursor, results from the store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..buckets import DAY, page_of_buckets
from ..catalogue import WIDTH_SECONDS
from ..store import AggregateRow, Aggregation
from .cursor import Cursor, CursorSigner
from .errors import bad_request
from .params import UsageQuery


@dataclass(frozen=True)
class PageLimits:
    lookback_days: int | None
    max_page_rows: int


def check_lookback(query: UsageQuery, now: int, lookback_days: int | None) -> None:
    if lookback_days is None:
        return
    earliest = now - lookback_days * DAY
    if query.start_time < earliest - earliest % DAY:
        day = datetime.fromtimestamp(earliest, UTC).strftime("%Y-%m-%d")
        period = "the past year" if lookback_days == 365 else f"the past {lookback_days} days"
        raise bad_request(
            f"Usage and cost data are available for {period}. Earliest supported start date: {day} (UTC).",
            param="start_time",
            code="reporting_lookback_exceeded",
        )


def page_window(query: UsageQuery, signer: CursorSigner, now: int) -> tuple[int, int]:
    """The first bucket start of this page and the effective end of the whole walk."""
    if query.page is None:
        return query.start_time, query.end_time if query.end_time is not None else now
    cursor: Cursor = signer.decode(query.page, query.canonical())
    earliest = query.start_time - query.start_time % DAY if query.endpoint.is_costs else query.start_time
    # The first request's end was its end_time, or the clock then: a cursor may ask for
    # no more, even one signed with a stolen secret.
    first_end_ok = (
        cursor.effective_end == query.end_time if query.end_time is not None else cursor.effective_end <= now
    )
    if not (earliest <= cursor.next_start < cursor.effective_end and first_end_ok):
        raise bad_request("Invalid 'page' cursor for this time range.", param="page")
    return cursor.next_start, cursor.effective_end


def result_template(query: UsageQuery) -> dict[str, Any]:
    """A result with every field present: metrics at 0, dimensions null."""
    endpoint = query.endpoint
    template: dict[str, Any] = {"object": endpoint.result_object}
    template.update(dict.fromkeys(endpoint.metric_names, 0))
    template.update(dict.fromkeys(endpoint.group_fields))
    return template


ResultsFor = Callable[[list[tuple[int, int]]], dict[int, list[dict[str, Any]]]]


def usage_results(query: UsageQuery, aggregate: Callable[[Aggregation], list[AggregateRow]]) -> ResultsFor:
    """The results of a usage endpoint, per bucket start, from the store."""
    endpoint = query.endpoint

    def results_for(buckets: list[tuple[int, int]]) -> dict[int, list[dict[str, Any]]]:
        rows = aggregate(
            Aggregation(
                kind=endpoint.name,
                buckets=buckets,
                width_seconds=WIDTH_SECONDS[query.width],
                group_by=query.group_by,
                filters=query.filters,
                metrics=endpoint.metric_names,
                gauge=endpoint.has_gauge,
            )
        )
        template = result_template(query)
        fields = (*endpoint.metric_names, *query.group_by)
        by_bucket: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for start, groups, metrics in rows:
            # Filled in the template's order: metrics, then the groups asked for.
            result = template.copy()
            result.update(zip(fields, metrics + groups, strict=True))
            by_bucket[start].append(result)
        return by_bucket

    return results_for


def build_page(
    query: UsageQuery,
    *,
    results_for: ResultsFor,
    signer: CursorSigner,
    now: int,
    limits: PageLimits,
) -> dict[str, Any]:
    """The JSON body of one page of a read endpoint."""
    check_lookback(query, now, limits.lookback_days)
    page_start, end = page_window(query, signer, now)
    buckets, has_more = page_of_buckets(
        page_start, end, query.width, query.limit, whole_days=query.endpoint.is_costs
    )
    by_bucket = results_for(buckets)

    data: list[dict[str, Any]] = []
    row_count = 0
    for start, bucket_end in buckets:
        results = by_bucket.get(start, [])
        # Stop early, at a bucket boundary, rather than send an unbounded page.
        if data and row_count + len(results) > limits.max_page_rows:
            has_more = True
            break
        row_count += len(results)
        data.append({"object": "bucket", "start_time": start, "end_time": bucket_end, "results": results})

    next_page = None
    if has_more:
        next_start = buckets[len(data)][0] if len(data) < len(buckets) else buckets[-1][1]
        next_page = signer.encode(Cursor(effective_end=end, next_start=next_start), query.canonical())
    return {"object": "page", "data": data, "has_more": has_more, "next_page": next_page}
