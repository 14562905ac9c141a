"""SPEC §3 over HTTP: bucket layout, empty buckets, null groups, grouping, filters, encodings."""

from __future__ import annotations

import time
from typing import Any

import pytest

from openusage.catalogue import USAGE_ENDPOINTS

from .conftest import DAY, Server, event

COMPLETIONS = "/organization/usage/completions"


def totals(buckets: list[dict[str, Any]], metric: str) -> int:
    return sum(r[metric] for b in buckets for r in b["results"])


def test_partial_first_bucket_aligned_interior_and_cut_last(server: Server) -> None:
    day0 = server.window(5)
    start = day0 + 17 * 3600 + 31 * 60  # 17:31, like the cookbook capture
    end = day0 + 3 * DAY + 5 * 3600 + 7  # three midnights later, 05:00:07
    server.ingest_ok(
        [
            event("completions", start, input_tokens=10, output_tokens=1),
            event("completions", start - 1, input_tokens=1000, output_tokens=1),  # before the range
            event("completions", day0 + DAY + 60, input_tokens=20, output_tokens=2),
            event("completions", end - 1, input_tokens=30, output_tokens=3),
            event("completions", end, input_tokens=5000, output_tokens=5),  # end is exclusive
        ]
    )
    page = server.page(COMPLETIONS, {"start_time": start, "end_time": end, "bucket_width": "1d"})
    spans = [(b["start_time"], b["end_time"]) for b in page["data"]]
    assert spans == [
        (start, day0 + DAY),
        (day0 + DAY, day0 + 2 * DAY),
        (day0 + 2 * DAY, day0 + 3 * DAY),
        (day0 + 3 * DAY, end),
    ]
    assert [[r["input_tokens"] for r in b["results"]] for b in page["data"]] == [[10], [20], [], [30]]
    assert page["has_more"] is False and page["next_page"] is None
    assert page["object"] == "page" and all(b["object"] == "bucket" for b in page["data"])


@pytest.mark.parametrize(("width", "seconds"), [("1m", 60), ("1h", 3600)])
def test_minute_and_hour_buckets_follow_utc_boundaries(server: Server, width: str, seconds: int) -> None:
    day0 = server.window(1)
    start = day0 + 3 * seconds + 17
    end = start + 4 * seconds
    server.ingest_ok([event("embeddings", start + seconds, input_tokens=7)])
    page = server.page(
        "/organization/usage/embeddings", {"start_time": start, "end_time": end, "bucket_width": width}
    )
    starts = [b["start_time"] for b in page["data"]]
    assert starts[0] == start
    assert all(s % seconds == 0 for s in starts[1:])
    assert page["data"][-1]["end_time"] == end
    assert len(page["data"]) == 5
    assert [len(b["results"]) for b in page["data"]] == [0, 1, 0, 0, 0]


def test_without_group_by_every_dimension_is_null_and_every_metric_present(server: Server) -> None:
    day0 = server.window(1)
    server.ingest_ok(
        [
            event(
                "completions",
                day0 + 10,
                project_id="p1",
                model="m1",
                batch=True,
                input_tokens=100,
                output_tokens=10,
            ),
            event("completions", day0 + 20, project_id="p2", model="m2", input_tokens=50, output_tokens=5),
        ]
    )
    page = server.page(COMPLETIONS, {"start_time": day0, "end_time": day0 + DAY})
    (result,) = page["data"][0]["results"]
    endpoint = USAGE_ENDPOINTS[0]
    assert set(result) == {"object", *endpoint.metric_names, *endpoint.group_fields}
    assert all(result[d] is None for d in endpoint.group_fields)
    assert result["input_tokens"] == 150 and result["output_tokens"] == 15
    assert result["num_model_requests"] == 2
    assert result["input_audio_tokens"] == 0


def test_group_by_makes_one_result_per_combination_and_absent_dimensions_form_a_null_group(
    server: Server,
) -> None:
    day0 = server.window(1)
    server.ingest_ok(
        [
            event("completions", day0 + 1, project_id="p1", model="m1", input_tokens=1, output_tokens=0),
            event("completions", day0 + 2, project_id="p1", model="m1", input_tokens=2, output_tokens=0),
            event("completions", day0 + 3, project_id="p1", model="m2", input_tokens=4, output_tokens=0),
            event("completions", day0 + 4, model="m1", input_tokens=8, output_tokens=0),
            event("completions", day0 + 5, project_id="p2", input_tokens=16, output_tokens=0),
        ]
    )
    page = server.page(
        COMPLETIONS, {"start_time": day0, "end_time": day0 + DAY, "group_by": ["project_id", "model"]}
    )
    rows = [
        (r["project_id"], r["model"], r["input_tokens"], r["user_id"]) for r in page["data"][0]["results"]
    ]
    # Ordered by the grouped fields, nulls first; fields not grouped stay null.
    assert rows == [
        (None, "m1", 8, None),
        ("p1", "m1", 3, None),
        ("p1", "m2", 4, None),
        ("p2", None, 16, None),
    ]


@pytest.fixture(scope="module")
def encoded_day(server: Server) -> int:
    day0 = server.window(1)
    server.ingest_ok(
        [
            event("completions", day0 + 1, project_id="p1", model="m1", input_tokens=1, output_tokens=0),
            event("completions", day0 + 2, project_id="p2", model="m2", input_tokens=2, output_tokens=0),
            event("completions", day0 + 3, project_id="p2", model="m3", input_tokens=4, output_tokens=0),
        ]
    )
    return day0


@pytest.mark.parametrize(
    "query",
    [
        "group_by=project_id&group_by=model&models=m1&models=m2",
        "group_by[]=project_id&group_by[]=model&models[]=m1&models[]=m2",
        "group_by=project_id,model&models=m1,m2",
        "group_by=model,project_id&models[]=m2&models=m1",
    ],
    ids=["repeated", "brackets", "comma", "mixed"],
)
def test_three_array_encodings_give_the_same_answer(server: Server, encoded_day: int, query: str) -> None:
    day0 = encoded_day
    response = server.get(f"{COMPLETIONS}?start_time={day0}&end_time={day0 + DAY}&{query}")
    assert response.status_code == 200, response.text
    rows = [(r["project_id"], r["model"], r["input_tokens"]) for r in response.json()["data"][0]["results"]]
    assert rows == [("p1", "m1", 1), ("p2", "m2", 2)]


def test_filters_restrict_and_batch_filter_takes_true_or_false(server: Server) -> None:
    day0 = server.window(1)
    server.ingest_ok(
        [
            event(
                "completions",
                day0 + 1,
                user_id="u1",
                api_key_id="k1",
                batch=True,
                input_tokens=1,
                output_tokens=0,
            ),
            event(
                "completions",
                day0 + 2,
                user_id="u2",
                api_key_id="k1",
                batch=False,
                input_tokens=2,
                output_tokens=0,
            ),
            event("completions", day0 + 3, user_id="u2", api_key_id="k2", input_tokens=4, output_tokens=0),
        ]
    )
    base = {"start_time": day0, "end_time": day0 + DAY}

    def total(**params: Any) -> int:
        return totals(server.page(COMPLETIONS, {**base, **params})["data"], "input_tokens")

    assert total() == 7
    assert total(batch="true") == 1
    assert total(batch="false") == 2
    assert total(user_ids=["u2"]) == 6
    assert total(user_ids=["u2"], api_key_ids=["k1"]) == 2
    assert total(user_ids=["nobody"]) == 0
    grouped = server.page(COMPLETIONS, {**base, "group_by": "batch"})["data"][0]["results"]
    assert [(r["batch"], r["input_tokens"]) for r in grouped] == [(None, 4), (False, 2), (True, 1)]


def test_images_web_search_and_file_search_dimensions(server: Server) -> None:
    day0 = server.window(1)
    server.ingest_ok(
        [
            event("images", day0 + 1, size="1024x1024", source="image.generation", images=2),
            event("images", day0 + 2, size="1024x1024", source="image.edit", images=1),
            event(
                "images", day0 + 3, size="256x256", source="image.generation", images=4, num_model_requests=2
            ),
            event("web_search_calls", day0 + 4, context_level="low", num_requests=3),
            event("web_search_calls", day0 + 5, context_level="high"),
            event("file_search_calls", day0 + 6, vector_store_id="vs_a", num_requests=2),
            event("file_search_calls", day0 + 7, vector_store_id="vs_b"),
        ]
    )
    base = {"start_time": day0, "end_time": day0 + DAY}
    images = server.page("/organization/usage/images", {**base, "group_by": "source", "sizes": "1024x1024"})
    assert [(r["source"], r["images"], r["size"]) for r in images["data"][0]["results"]] == [
        ("image.edit", 1, None),
        ("image.generation", 2, None),
    ]
    web = server.page("/organization/usage/web_search_calls", {**base, "group_by": "context_level"})
    assert [
        (r["context_level"], r["num_requests"], r["num_model_requests"]) for r in web["data"][0]["results"]
    ] == [
        ("high", 1, 1),
        ("low", 3, 1),
    ]
    files = server.page("/organization/usage/file_search_calls", {**base, "vector_store_ids": "vs_b"})
    assert [r["num_requests"] for r in files["data"][0]["results"]] == [1]


def test_vector_store_bytes_are_a_gauge_carried_forward(server: Server) -> None:
    day0 = server.window(4)
    # Stored bytes carry forward for ever: this test's stores and projects are its own.
    p1, p2, vs1, vs2 = (f"{name}-{day0}" for name in ("p1", "p2", "vs1", "vs2"))
    server.ingest_ok(
        [
            event("vector_stores", day0 + 100, vector_store_id=vs1, project_id=p1, usage_bytes=1000),
            event("vector_stores", day0 + 200, vector_store_id=vs1, project_id=p1, usage_bytes=1500),
            event("vector_stores", day0 + 300, vector_store_id=vs2, project_id=p2, usage_bytes=70),
            # Day 2: vs2 is emptied and drops out; vs1 is not reported, so carried forward.
            event("vector_stores", day0 + 2 * DAY + 5, vector_store_id=vs2, project_id=p2, usage_bytes=0),
        ]
    )
    path = "/organization/usage/vector_stores"
    page = server.page(
        path,
        {"start_time": day0, "end_time": day0 + 4 * DAY, "group_by": "project_id", "project_ids": [p1, p2]},
    )
    assert [[(r["project_id"], r["usage_bytes"]) for r in b["results"]] for b in page["data"]] == [
        [(p1, 1500), (p2, 70)],
        [(p1, 1500), (p2, 70)],
        [(p1, 1500)],
        [(p1, 1500)],
    ]
    filtered = server.page(path, {"start_time": day0, "end_time": day0 + DAY, "project_ids": p2})
    assert [r["usage_bytes"] for r in filtered["data"][0]["results"]] == [70]
    before = server.page(path, {"start_time": day0 - DAY, "end_time": day0, "project_ids": [p1, p2]})
    assert before["data"][0]["results"] == [], "nothing is carried backwards"


def test_late_events_update_a_bucket_already_returned(server: Server) -> None:
    day0 = server.window(1)
    params = {"start_time": day0, "end_time": day0 + DAY}
    server.ingest_ok([event("moderations", day0 + 5, input_tokens=10)])
    assert totals(server.page("/organization/usage/moderations", params)["data"], "input_tokens") == 10
    server.ingest_ok([event("moderations", day0 + 6, input_tokens=5)])
    assert totals(server.page("/organization/usage/moderations", params)["data"], "input_tokens") == 15


def test_default_end_is_now_and_default_width_is_a_day(server: Server) -> None:
    start = int(time.time()) - 2 * DAY - 100
    page = server.page("/organization/usage/audio_speeches", {"start_time": start})
    assert page["data"][0]["start_time"] == start
    assert all(b["end_time"] - b["start_time"] <= DAY for b in page["data"])
    assert len(page["data"]) == 3
    assert abs(page["data"][-1]["end_time"] - time.time()) < 60


def test_pages_walk_the_whole_range_and_the_cursor_pins_the_end(server: Server) -> None:
    day0 = server.window(10)
    server.ingest_ok([event("audio_transcriptions", day0 + d * DAY + 7, seconds=d + 1) for d in range(10)])
    params = {"start_time": day0, "end_time": day0 + 10 * DAY, "limit": 3}
    first = server.page("/organization/usage/audio_transcriptions", params)
    assert len(first["data"]) == 3 and first["has_more"] is True
    assert first["next_page"].startswith("page_")
    buckets = server.walk("/organization/usage/audio_transcriptions", params)
    assert [b["start_time"] for b in buckets] == [day0 + d * DAY for d in range(10)]
    assert [b["results"][0]["seconds"] for b in buckets] == list(range(1, 11))


def test_a_size_reported_on_a_bucket_boundary_belongs_to_the_bucket_it_starts(server: Server) -> None:
    day0 = server.window(1)
    project, store = f"p-edge-{day0}", f"vs-edge-{day0}"
    boundary = day0 + 120  # the start of the third minute
    server.ingest_ok(
        [
            event("vector_stores", day0 + 10, vector_store_id=store, project_id=project, usage_bytes=100),
            event("vector_stores", boundary, vector_store_id=store, project_id=project, usage_bytes=500),
        ]
    )
    page = server.page(
        "/organization/usage/vector_stores",
        {"start_time": day0, "end_time": day0 + 240, "bucket_width": "1m", "project_ids": project},
    )
    sizes = [[r["usage_bytes"] for r in b["results"]] for b in page["data"]]
    assert sizes == [[100], [100], [500], [500]]  # a size at 12:02:00 is not the size of 12:01


def test_of_two_sizes_reported_at_the_same_second_the_later_ingested_wins(server: Server) -> None:
    day0 = server.window(1)
    project = f"p-tie-{day0}"
    at = day0 + 30
    for store, sizes in (("a", (100, 200)), ("b", (900, 300))):
        for size in sizes:  # two requests, so the order of ingestion is known
            server.ingest_ok(
                [
                    event(
                        "vector_stores",
                        at,
                        vector_store_id=f"vs-{store}-{day0}",
                        project_id=project,
                        usage_bytes=size,
                    )
                ]
            )
    page = server.page(
        "/organization/usage/vector_stores",
        {"start_time": day0, "end_time": day0 + 60, "bucket_width": "1m", "project_ids": project},
    )
    assert [r["usage_bytes"] for r in page["data"][0]["results"]] == [200 + 300]


def test_the_cursor_pins_now_for_the_whole_walk(server: Server) -> None:
    """Without end_time the first page's "now" is the end of every later page, however
    long the walk takes; a cursor that let "now" move would add buckets as it went."""
    start = int(time.time()) - 5 * 60
    path = "/organization/usage/embeddings"
    params = {"start_time": start, "bucket_width": "1m", "limit": 1}
    first = server.page(path, params)
    answered = int(time.time())
    buckets, page = list(first["data"]), first
    while page["has_more"]:
        time.sleep(0.5)  # the clock moves on by more than a second over the walk
        page = server.page(path, {**params, "page": page["next_page"]})
        buckets += page["data"]
    assert int(time.time()) > answered + 1
    assert buckets[-1]["end_time"] <= answered
    assert [b["start_time"] for b in buckets[1:]] == [b["end_time"] for b in buckets[:-1]]


def test_every_event_lands_in_the_bucket_the_server_says_holds_it(server: Server) -> None:
    """Bucket starts as the server computes them: the query's start for the first, UTC
    boundaries after it; checked value by value, not as a range."""
    day0 = server.window(1)
    start = day0 + 3600 + 17 * 60 + 23  # 01:17:23
    stamps = [start, start + 36, start + 37, day0 + 2 * 3600, day0 + 2 * 3600 + 59 * 60 + 59]
    project = f"p-land-{day0}"
    server.ingest_ok([event("embeddings", ts, project_id=project, input_tokens=1) for ts in stamps])
    for width, seconds in (("1m", 60), ("1h", 3600), ("1d", DAY)):
        page = server.page(
            "/organization/usage/embeddings",
            {
                "start_time": start,
                "end_time": day0 + 3 * 3600,
                "bucket_width": width,
                "limit": {"1m": 200, "1h": 5, "1d": 1}[width],
                "project_ids": project,
            },
        )
        got = {b["start_time"]: b["results"][0]["input_tokens"] for b in page["data"] if b["results"]}
        expected: dict[int, int] = {}
        for ts in stamps:
            bucket = max(start, ts - ts % seconds)
            expected[bucket] = expected.get(bucket, 0) + 1
        assert got == expected, width


def test_a_page_of_more_than_256_buckets_stops_at_its_limit(server: Server) -> None:
    """Past CPython's cached small integers: the limit is compared by value."""
    day0 = server.window(1)
    params = {"start_time": day0, "end_time": day0 + 400 * 60, "bucket_width": "1m", "limit": 300}
    page = server.page("/organization/usage/embeddings", params)
    assert len(page["data"]) == 300 and page["has_more"] is True
    rest = server.page("/organization/usage/embeddings", {**params, "page": page["next_page"]})
    assert len(rest["data"]) == 100 and rest["has_more"] is False
