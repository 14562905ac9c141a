"""One page of a read endpoint: buckets from the clock and the cursor, results from the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ..buckets import DAY, page_of_buckets
from ..catalogue import WIDTH_SECONDS
from ..store import Aggregation, EventStore, ResultShape
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


@dataclass(frozen=True)
class EncodedResults:
    """A bucket's results already written as one JSON array."""

    count: int
    json: str

    def __len__(self) -> int:
        return self.count


#: a bucket's results: dicts (costs) or already written as JSON (usage)
Results = list[dict[str, Any]] | EncodedResults
ResultsFor = Callable[[list[tuple[int, int]]], Mapping[int, Results]]


def usage_results(query: UsageQuery, store: EventStore) -> ResultsFor:
    """The results of a usage endpoint, per bucket start, from the store, written as JSON
    there: a result has every field, metrics then dimensions, null where not grouped by."""
    endpoint = query.endpoint
    shape = ResultShape(endpoint.result_object, (*endpoint.metric_names, *endpoint.group_fields))

    def results_for(buckets: list[tuple[int, int]]) -> dict[int, Results]:
        aggregation = Aggregation(
            kind=endpoint.name,
            buckets=buckets,
            width_seconds=WIDTH_SECONDS[query.width],
            group_by=query.group_by,
            filters=query.filters,
            metrics=endpoint.metric_names,
            gauge=endpoint.has_gauge,
        )
        return {start: EncodedResults(n, text) for start, n, text in store.aggregate_json(aggregation, shape)}

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
        written = orjson.Fragment(results.json) if isinstance(results, EncodedResults) else results
        data.append({"object": "bucket", "start_time": start, "end_time": bucket_end, "results": written})

    next_page = None
    if has_more:
        next_start = buckets[len(data)][0] if len(data) < len(buckets) else buckets[-1][1]
        next_page = signer.encode(Cursor(effective_end=end, next_start=next_start), query.canonical())
    return {"object": "page", "data": data, "has_more": has_more, "next_page": next_page}
