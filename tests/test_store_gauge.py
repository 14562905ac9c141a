"""The vector-store gauge against a plain model: each store's last size before a bucket's
end, carried forward, later ingestion winning a tie, the store's last report naming its
project; over any reports, widths, groupings and filters."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from openusage.buckets import iter_buckets
from openusage.catalogue import WIDTH_SECONDS
from openusage.server.events import EventRules, parse_events
from openusage.store import Aggregation, DuckDBStore

DAY0 = 1_700_006_400

reports = st.lists(
    st.fixed_dictionaries(
        {
            "offset": st.integers(0, 3 * 3600),
            "store": st.sampled_from(["a", "b", "c"]),
            "project": st.sampled_from(["p1", "p2", None]),
            "size": st.sampled_from([0, 1, 7, 100, 2**50]),
        }
    ),
    min_size=1,
    max_size=25,
)


def model(
    events: list[dict[str, Any]], buckets: list[tuple[int, int]], group: bool, only: str | None
) -> dict[Any, int]:
    out: Counter[Any] = Counter()
    for start, end in buckets:
        last: dict[str, dict[str, Any]] = {}
        for e in events:  # in ingestion order: a later one wins a tie of timestamps
            if e["timestamp"] < end and (
                e["vector_store_id"] not in last or e["timestamp"] >= last[e["vector_store_id"]]["timestamp"]
            ):
                last[e["vector_store_id"]] = e
        for e in last.values():
            project = e.get("project_id")
            if only is not None and project != only:
                continue
            out[(start, project if group else None)] += e["usage_bytes"]
    return {k: v for k, v in out.items() if v > 0}


@settings(max_examples=60, deadline=None)
@given(
    drawn=reports,
    width=st.sampled_from(["1m", "1h"]),
    start=st.integers(0, 2 * 3600),
    group=st.booleans(),
    only=st.sampled_from([None, "p1", "p2"]),
)
def test_the_gauge_is_each_stores_last_size(
    drawn: list[dict[str, Any]], width: str, start: int, group: bool, only: str | None
) -> None:
    events = []
    for i, r in enumerate(drawn):
        e = {"id": f"r{i}", "type": "vector_stores", "timestamp": DAY0 + r["offset"],
             "vector_store_id": r["store"], "usage_bytes": r["size"]}  # fmt: skip
        if r["project"] is not None:
            e["project_id"] = r["project"]
        events.append(e)
    begin = DAY0 + start
    buckets = list(iter_buckets(begin, begin + 200 * WIDTH_SECONDS[width], width))
    query = Aggregation(
        kind="vector_stores",
        buckets=buckets,
        width_seconds=WIDTH_SECONDS[width],
        group_by=("project_id",) if group else (),
        filters={"project_id": (only,)} if only else {},
        metrics=("usage_bytes",),
        gauge=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        store = DuckDBStore(Path(folder) / "gauge.duckdb")
        try:
            for e in events:  # one append each: the order of ingestion is the order drawn
                store.append(parse_events([e], EventRules(now=DAY0 + 86400)))
            got = {
                (b, groups[0] if group else None): values[0] for b, groups, values in store.aggregate(query)
            }
        finally:
            store.close()
    assert got == model(events, buckets, group, only)


def gauge_cost(folder: Path, stores: int) -> tuple[int, int]:
    """The largest intermediate result (rows) and the answer's size of a 1m x 1440 gauge
    query by project, over ``stores`` vector stores reporting twice each, from DuckDB's
    own profile of the query."""
    store = DuckDBStore(folder / f"gauge-{stores}.duckdb")
    try:
        events = [
            {
                "id": f"r{i}-{k}",
                "type": "vector_stores",
                "timestamp": DAY0 + (i * 37 + k * 3600) % 86_400,
                "vector_store_id": f"vs{i}",
                "project_id": f"p{i % 50}",
                "usage_bytes": 1000 + i,
            }
            for i in range(stores)
            for k in range(2)
        ]
        store.append(parse_events(events, EventRules(now=DAY0 + 10 * 86_400)))
        profile = folder / f"profile-{stores}.json"
        cursor = store._cursor()  # the aggregate runs on this thread's cursor
        cursor.execute("PRAGMA enable_profiling='json'")
        cursor.execute(f"PRAGMA profiling_output='{profile}'")
        query = Aggregation(
            kind="vector_stores",
            buckets=list(iter_buckets(DAY0, DAY0 + 86_400, "1m")),
            width_seconds=60,
            group_by=("project_id",),
            filters={},
            metrics=("usage_bytes",),
            gauge=True,
        )
        answer = store.aggregate(query)
        cursor.execute("PRAGMA disable_profiling")
    finally:
        store.close()

    def largest(operators: list[dict[str, Any]]) -> int:
        return max(
            (max(o.get("intermediate_rows", 0), largest(o.get("children", []))) for o in operators), default=0
        )

    return largest(json.loads(profile.read_text())["operator"]), len(answer)


def test_the_gauge_costs_what_its_reports_and_buckets_make_not_their_product(tmp_path: Path) -> None:
    """Ten times the stores, the same buckets and projects: the largest intermediate stays
    the buckets x projects grid (72,000 rows), where a join of buckets and reports made
    1440 x 10,000 (the query that took seconds and gigabytes, issue #13)."""
    small, small_answer = gauge_cost(tmp_path, 500)
    large, large_answer = gauge_cost(tmp_path, 5000)
    assert 1440 * 49 < small_answer <= large_answer <= 1440 * 50  # nearly every project in every minute
    assert large <= 2 * small, (small, large)
    assert large <= 2 * (2 * 5000 * 2 + 1440 * 50)
