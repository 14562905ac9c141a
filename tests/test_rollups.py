"""Rollups: every way of answering a query (raw events, each covering rollup, the router's
choice) gives the sums a plain reading of the events gives, before and after compaction,
with late and duplicate events, and while ingestion goes on."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openusage.buckets import iter_buckets
from openusage.catalogue import USAGE_KINDS, WIDTH_SECONDS
from openusage.server.batches import fast_rows
from openusage.server.events import EventRules, parse_events
from openusage.store import Aggregation, DuckDBStore, ResultShape, rollup_tables
from openusage.store.duckdb import QUIET_CHECKPOINT_WAL_BYTES
from openusage.store.rollups import ROLLUPS, Extent, Plan, choose, covering

DAY0 = 1_700_006_400  # a UTC midnight
COMPLETIONS = USAGE_KINDS["completions"]
IMAGES = USAGE_KINDS["images"]
SHAPE = ResultShape(COMPLETIONS.result_object, (*COMPLETIONS.metric_names, *COMPLETIONS.group_fields))


def rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return parse_events(events, EventRules(now=DAY0 + 10_000 * 86400))


def query(
    kind: str, start: int, end: int, width: str, group_by: tuple[str, ...] = (), **filters: Any
) -> Aggregation:
    return Aggregation(
        kind=kind,
        buckets=list(iter_buckets(start, end, width)),
        width_seconds=WIDTH_SECONDS[width],
        group_by=group_by,
        filters={k: tuple(v) for k, v in filters.items()},
        metrics=USAGE_KINDS[kind].metric_names,
    )


def by_hand(event: dict[str, Any]) -> dict[str, Any]:
    """A completions event of this file's datasets as the store should hold it, worked out
    here rather than by the ingestion code: only input and output tokens are drawn, so the
    uncached and text counts are those, and one request is counted."""
    given = {m: event.get(m, 0) for m in COMPLETIONS.metric_names}
    given |= {
        "num_model_requests": 1,
        "input_uncached_tokens": given["input_tokens"],
        "input_text_tokens": given["input_tokens"],
        "output_text_tokens": given["output_tokens"],
    }
    dims = {d.name: event.get(d.name, d.default) for d in COMPLETIONS.dimensions}
    return {"kind": event["type"], "ts": event["timestamp"], **dims, **given}


def expected(events: list[dict[str, Any]], q: Aggregation) -> dict[tuple[Any, ...], Counter[str]]:
    """The sums by plain reading: each event into the bucket that holds it."""
    out: dict[tuple[Any, ...], Counter[str]] = {}
    for e in map(by_hand, events):
        if e["kind"] != q.kind or any(e[k] not in v for k, v in q.filters.items()):
            continue
        for start, end in q.buckets:
            if start <= e["ts"] < end:
                key = (start, *(e[g] for g in q.group_by))
                sums = out.setdefault(key, Counter(dict.fromkeys(q.metrics, 0)))
                sums.update({m: e[m] for m in q.metrics})
    return out


def answered(rows_: list[tuple[int, tuple[Any, ...], tuple[int, ...]]], q: Aggregation) -> dict[Any, Any]:
    return {(b, *groups): Counter(dict(zip(q.metrics, values, strict=True))) for b, groups, values in rows_}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    opened = DuckDBStore(tmp_path / "rollups.duckdb")
    yield opened
    opened.close()


def stop_rolling(store: DuckDBStore) -> None:
    """Stop the store's background roller (``close`` still rolls up what is left)."""
    store._closing.set()
    store._roll_due.set()
    store._roller.join()


event_fields = st.fixed_dictionaries(
    {
        "offset": st.integers(0, 2 * 86400 - 1),
        "project_id": st.sampled_from([None, "p1", "p2"]),
        "user_id": st.sampled_from([None, "u1", "u2"]),
        "api_key_id": st.sampled_from([None, "k1"]),
        "model": st.sampled_from([None, "m1", "m2"]),
        "batch": st.sampled_from([None, True, False]),
        "service_tier": st.sampled_from([None, "default", "flex"]),
        "input_tokens": st.integers(0, 10**6),
        "output_tokens": st.integers(0, 10**5),
    }
)
queries = st.fixed_dictionaries(
    {
        "start": st.integers(0, 86400),
        "length": st.integers(1, 2 * 86400),
        "width": st.sampled_from(["1m", "1h", "1d"]),
        "group_by": st.lists(st.sampled_from(COMPLETIONS.group_fields), unique=True, max_size=3),
        "filter": st.sampled_from([{}, {"project_id": ["p1"]}, {"model": ["m1", "m2"]}, {"batch": [True]}]),
    }
)
RUN = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


windows = iter(range(3000))


def drawn_events(day0: int, number: int, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch ``number`` of drawn fields as completion events of the day starting ``day0``."""
    return [
        {
            "id": f"{day0}-{number}-{i}",
            "type": "completions",
            "timestamp": day0 + d["offset"],
            **{k: v for k, v in d.items() if k != "offset" and v is not None},
        }
        for i, d in enumerate(batch)
    ]


def drawn_query(day0: int, q: dict[str, Any]) -> Aggregation:
    start = day0 + q["start"]
    width = q["width"]
    end = start + min(q["length"], {"1m": 1440 * 60, "1h": 168 * 3600, "1d": 31 * 86400}[width])
    return query("completions", start, end, width, tuple(q["group_by"]), **q["filter"])


def ways_of_answering(aggregation: Aggregation) -> list[Plan | str | None]:
    """Raw events, each covering rollup, the deepest ladder of grains (every coarser
    rollup made to look cheaper), and the router's own choice."""
    ladder = {r.table: Extent(rows=10**6 // r.grain, seconds=1) for r in ROLLUPS["completions"]}
    deepest = choose(aggregation, ROLLUPS["completions"], Extent(rows=10**6, seconds=1), ladder)
    return [None, *covering(aggregation, ROLLUPS["completions"]), deepest, "auto"]


@RUN
@given(batches=st.lists(st.lists(event_fields, min_size=1, max_size=30), min_size=1, max_size=4), q=queries)
def test_every_way_of_answering_gives_the_plain_sums(
    store: DuckDBStore, batches: list[list[dict[str, Any]]], q: dict[str, Any]
) -> None:
    day0 = DAY0 + next(windows) * 3 * 86400  # each example in its own days of one store
    events: list[dict[str, Any]] = []
    for n, batch in enumerate(batches):  # batches arrive in any time order: late events too
        drawn = drawn_events(day0, n, batch)
        store.append(rows(drawn))
        events += drawn
        if n == 0:
            store.roll()
        if n == 1:
            store.compact(force=True)  # some rows compacted, later ones rolled up after
    store.append(rows(events[:3]))  # a retried batch changes nothing
    aggregation = drawn_query(day0, q)
    want = expected(events, aggregation)
    ways = ways_of_answering(aggregation)
    for plan in ways:  # some events rolled up, the last ones maybe not
        assert answered(store.aggregate(aggregation, using=plan), aggregation) == want, plan
    store.roll()
    store.compact(force=True)
    for plan in ways:
        assert answered(store.aggregate(aggregation, using=plan), aggregation) == want, plan


def test_the_router_reads_the_smallest_rollup_that_holds_the_query(store: DuckDBStore) -> None:
    projects, users, models = ["p1", "p2"], [f"u{i}" for i in range(8)], ["m1", "m2", "m3"]
    events = [
        {
            "id": f"r{i}",
            "type": "completions",
            "timestamp": DAY0 + (i * 7919) % (10 * 86400) // 600 * 600,  # a few events a minute
            "project_id": projects[i % 2],
            "user_id": users[i % 8],
            "model": models[i % 3],
            "service_tier": "default",
            "input_tokens": i,
        }
        for i in range(40_000)  # enough that a rollup saves reading a few thousand rows
    ]
    store.append(rows(events))
    store.roll()
    end = DAY0 + 10 * 86400

    def used(q: Aggregation) -> str | None:
        plan = store.plan(q)
        return None if plan is None else "+".join(s.rollup.name for s in plan.segments)

    assert used(query("completions", DAY0, end, "1d", ("model",))) == "day_model"
    assert used(query("completions", DAY0, end, "1d", ("user_id",), project_id=["p1"])) == "day_people"
    assert used(query("completions", DAY0, end, "1d", ("project_id",), service_tier=["default"])) == "day"
    assert used(query("completions", DAY0, DAY0 + 86400, "1m")) == "minute"
    assert used(query("completions", DAY0, end - 86400, "1h", ("project_id", "model"))) == "hour"
    # Whole days from the daily rollup, the rest of the last day from the hourly one.
    assert used(query("completions", DAY0, end - 7200, "1d", ("model",))) == "day_model+hour"
    # Costs' grain keeps the user with the model; no hourly rollup keeps the user.
    assert used(query("completions", DAY0, end, "1d", ("user_id", "model"))) == "day_priced"
    assert used(query("completions", DAY0, end - 86400, "1h", ("user_id",))) is None
    # A range shorter than any grain it could use reads raw events.
    assert used(query("completions", DAY0 + 10, DAY0 + 50, "1m")) is None
    # A gauge is never summed ahead.
    assert ROLLUPS["vector_stores"] == ()


def test_coarse_rollups_answer_the_middle_finer_ones_the_edges_and_raw_events_the_rest() -> None:
    start, end = DAY0 + 1800, DAY0 + 3 * 86400 + 3600 + 600
    q = query("completions", start, end, "1d", ("model",))
    alone = {p.segments[0].rollup.name: p for p in covering(q, ROLLUPS["completions"])}
    assert set(alone) == {"hour", "day", "day_model", "day_priced"}  # the minute rollup keeps no model
    assert (alone["day_model"].start, alone["day_model"].end) == (DAY0 + 86400, DAY0 + 3 * 86400)
    assert (alone["hour"].start, alone["hour"].end) == (DAY0 + 3600, DAY0 + 3 * 86400 + 3600)

    raw = Extent(rows=100_000, seconds=10 * 86400)
    extents = {
        "rollup_completions_hour": Extent(rows=20_000, seconds=10 * 86400),
        "rollup_completions_day": Extent(rows=5_000, seconds=10 * 86400),
        "rollup_completions_day_model": Extent(rows=300, seconds=10 * 86400),
    }
    plan = choose(q, ROLLUPS["completions"], raw, extents)
    assert isinstance(plan, Plan)
    assert [(s.rollup.name, s.start - DAY0, s.end - DAY0) for s in plan.segments] == [
        ("day_model", 86400, 3 * 86400),  # the whole days; the denser day rollup is passed over
        ("hour", 3600, 86400),  # the hours before them
        ("hour", 3 * 86400, 3 * 86400 + 3600),  # and after them
    ]
    assert (plan.start, plan.end) == (DAY0 + 3600, DAY0 + 3 * 86400 + 3600)  # raw events: the rest

    # A rollup as dense as the raw events, or as a finer rollup kept, saves nothing.
    as_raw = {table: raw for table in extents}
    assert choose(q, ROLLUPS["completions"], raw, as_raw) is None
    as_hour = {**extents, "rollup_completions_day_model": extents["rollup_completions_hour"]}
    plan = choose(q, ROLLUPS["completions"], raw, as_hour)
    assert plan is not None and [s.rollup.name for s in plan.segments] == ["day", "hour", "hour"]
    # No rollup keeps the service tier at an hour's grain.
    tiers = query("completions", DAY0, DAY0 + 86400, "1h", ("service_tier",))
    assert covering(tiers, ROLLUPS["completions"]) == []
    assert choose(tiers, ROLLUPS["completions"], raw, extents) is None


def test_a_query_ending_now_reads_its_last_grain_from_the_rollups(store: DuckDBStore) -> None:
    """With no event at or after a query's end (it ends now), the grain the end falls in
    comes from the rollups too, instead of raw events; an event after the end makes the
    plan stop at its last whole grain again, and is never counted, even one the store's
    bookkeeping has not seen yet (the read looks for it in its own snapshot)."""
    end = DAY0 + 86400 + 13 * 3600 + 1234
    events = [
        {
            "id": f"n{i}",
            "type": "completions",
            "timestamp": DAY0 + i * 30,
            "model": ["m1", "m2"][i % 2],
            "input_tokens": i,
        }
        for i in range((end - DAY0) // 30)
    ]
    store.append(rows(events))
    store.roll()
    q = query("completions", DAY0, end, "1d", ("model",))
    plan = store.plan(q)
    assert plan is not None and plan.through == end
    assert [(s.rollup.grain, s.start, s.end) for s in plan.segments] == [
        (86400, DAY0, DAY0 + 2 * 86400)  # today's row too: no hours, no raw events
    ]
    assert answered(store.aggregate(q), q) == expected(events, q)

    later = {"id": "later", "type": "completions", "timestamp": end + 60, "input_tokens": 10**9}
    store.append(rows([later]))
    store.roll()  # the later event is in today's rollup rows now
    assert (plan := store.plan(q)) is not None and plan.through is None
    assert plan.end == DAY0 + 86400 + 13 * 3600  # the last whole hour, then raw events
    assert answered(store.aggregate(q), q) == expected(events, q)

    # As between a commit and the store's note of its times: the plan reads past the end,
    # the read finds the later event and reads raw events for the rest of the day instead.
    store._spans["completions"][2] = events[-1]["timestamp"]
    assert (plan := store.plan(q)) is not None and plan.through == end
    assert answered(store.aggregate(q), q) == expected(events, q)
    results = {start: json.loads(text) for start, _, text in store.aggregate_json(q, SHAPE)}
    assert sum(r["input_tokens"] for r in results[DAY0 + 86400]) == sum(
        e["input_tokens"] for e in events if e["timestamp"] >= DAY0 + 86400
    )


def test_kinds_with_fewer_dimensions_keep_distinct_rollups_only() -> None:
    names = {k: [r.name for r in rollups] for k, rollups in ROLLUPS.items()}
    assert names["completions"] == ["minute", "hour", "day", "day_model", "day_people", "day_priced"]
    # Code interpreter sessions carry only the project: the day shapes collapse into one.
    assert names["code_interpreter_sessions"] == ["minute", "hour", "day", "day_model"]
    image_day = next(r for r in ROLLUPS["images"] if r.name == "day")
    assert image_day.dimensions == ("project_id", "model", "size", "source")


def assert_one_row_per_bucket_and_group(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    for rollup in ROLLUPS[kind]:
        keys = ", ".join(["b", *rollup.dimensions])
        (rows_, groups) = con.execute(
            f"SELECT count(*), count(DISTINCT ({keys})) FROM {rollup.table}"
        ).fetchone()  # type: ignore[misc]
        assert rows_ == groups, rollup.name


def test_compaction_leaves_one_row_per_bucket_and_group(tmp_path: Path) -> None:
    path = tmp_path / "compact.duckdb"
    store = DuckDBStore(path)
    for n in range(5):  # the same hours again and again: many rows per group until compacted
        store.append(
            rows(
                [
                    {"id": f"c{n}-{i}", "type": "images", "timestamp": DAY0 + i * 60, "size": "256x256"}
                    for i in range(120)
                ]
            )
        )
    q = query("images", DAY0, DAY0 + 86400, "1h", ("size",))
    before = store.aggregate(q)
    store.roll()
    assert store.compact(force=True) == len(ROLLUPS["images"])
    assert store.aggregate(q) == before
    assert store.compact(force=True) == 0, "nothing new to compact"
    store.close()
    con = duckdb.connect(rollup_tables.rollups_path(str(path)))
    assert_one_row_per_bucket_and_group(con, "images")
    (hour,) = con.execute("SELECT count(*) FROM rollup_images_hour").fetchone()  # type: ignore[misc]
    assert hour == 2  # two hours of one size and no model or project
    con.close()


@pytest.mark.parametrize("span_rows", [1, 40, 10**6])
def test_compaction_in_runs_of_days_leaves_one_row_per_bucket_and_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, span_rows: int
) -> None:
    """Days with and without rows, touched and untouched, compacted one day per run, a few
    days per run, and all in one run: the same sums, one row per bucket and group."""
    monkeypatch.setattr(rollup_tables, "COMPACT_SPAN_ROWS", span_rows)
    path = tmp_path / "runs.duckdb"
    store = DuckDBStore(path)
    days = [0, 1, 2, 5, 6, 9, 30]  # gaps between them; day 30 far from the rest
    for n in range(3):  # three rolls: three rows per group until compacted
        store.append(
            rows(
                [
                    {
                        "id": f"r{n}-{d}-{i}",
                        "type": "images",
                        "timestamp": DAY0 + d * 86400 + i * 600,
                        "images": 2,
                    }
                    for d in days
                    for i in range(d % 4 * 3 + 1)  # days of 1 to 10 images
                ]
            )
        )
        store.roll()
    q = query("images", DAY0, DAY0 + 31 * 86400, "1h")
    before = store.aggregate(q)
    assert store.compact(force=True) == len(ROLLUPS["images"])
    assert store.aggregate(q) == before
    store.close()
    con = duckdb.connect(rollup_tables.rollups_path(str(path)))
    assert_one_row_per_bucket_and_group(con, "images")
    (images,) = con.execute("SELECT sum(images) FROM rollup_images_day").fetchone()  # type: ignore[misc]
    assert images == 2 * 3 * sum(d % 4 * 3 + 1 for d in days)
    con.close()


def append_minutes(store: DuckDBStore, prefix: str, first: int, count: int) -> None:
    """``count`` embeddings events of one token, one a minute from minute ``first`` after DAY0."""
    events = [
        {"id": f"{prefix}-{i}", "type": "embeddings", "input_tokens": 1, "timestamp": DAY0 + (first + i) * 60}
        for i in range(count)
    ]
    batch = fast_rows(json.dumps({"events": events}).encode(), EventRules(now=DAY0 + 10_000 * 86400), count)
    assert batch is not None
    store.append(batch)


def test_the_rows_compaction_deletes_are_given_back_at_a_checkpoint(tmp_path: Path) -> None:
    """DuckDB reclaims deleted rows only at a checkpoint no other transaction overlaps, and
    a result read with ``fetchone`` kept its connection's transaction open: the rollups
    then kept every row compaction ever deleted (91% of a 10M-event store's rollup rows)."""
    DuckDBStore(tmp_path / "reopened.duckdb").close()
    store = DuckDBStore(tmp_path / "reopened.duckdb")  # reopened: start-up's reads differ
    # The background roller's own transactions would overlap the checkpoint as well, and
    # rightly keep rows: the test counts only what the store's reads keep.
    stop_rolling(store)
    for n in range(3):  # the same 100,000 minutes three times: 300,000 minute rows
        for chunk in range(10):
            append_minutes(store, f"v{n}-{chunk}", chunk * 10_000, 10_000)
        store.roll()
    # The store's reads in a thread of their own that lives on, as a server's workers do.
    read, checked = threading.Event(), threading.Event()

    def reads() -> None:
        store.project_ids()
        store.last_place()  # the thread's last statement: nothing after it ends its result
        read.set()
        checked.wait()

    reader = threading.Thread(target=reads)
    reader.start()
    read.wait()
    try:
        assert store.compact(force=True) > 0
        cursor = store._cursor()
        cursor.execute(f"CHECKPOINT {rollup_tables.DATABASE}")
        table = f"{rollup_tables.DATABASE}.rollup_embeddings_minute"
        ((stored,),) = cursor.execute(
            f"SELECT sum(count) FROM pragma_storage_info('{table}') "
            "WHERE column_id = 0 AND segment_type <> 'VALIDITY'"
        ).fetchall()
        ((live,),) = cursor.execute(f"SELECT count(*) FROM {table}").fetchall()
    finally:  # the reader ends whatever happened, or the test run would never end
        checked.set()
        reader.join()
        store.close()
    assert live == 100_000
    assert stored == live, f"{stored - live} deleted rows kept"


def test_a_quiet_store_checkpoints_what_its_log_holds(tmp_path: Path) -> None:
    """Ingestion that stops leaves its last writes in the log, where scans step over
    deleted rows and read appended ones uncompressed: a store without commits for a while
    checkpoints by itself, and every event still counts once."""
    path = tmp_path / "quiet.duckdb"
    store = DuckDBStore(path)
    wal = Path(f"{path}.wal")
    try:
        for chunk in range(4):
            append_minutes(store, f"q{chunk}", chunk * 5_000, 5_000)
        assert wal.stat().st_size >= QUIET_CHECKPOINT_WAL_BYTES, "the test must leave enough in the log"
        waited = 0.0
        while wal.exists() and wal.stat().st_size >= QUIET_CHECKPOINT_WAL_BYTES and waited < 60:
            time.sleep(0.25)
            waited += 0.25
        assert not wal.exists() or wal.stat().st_size < QUIET_CHECKPOINT_WAL_BYTES
        q = query("embeddings", DAY0, DAY0 + 20 * 86400, "1d", ())
        assert sum(values[0] for _, _, values in store.aggregate(q)) == 20_000
        assert store.unrolled() == 0
    finally:
        store.close()


def test_compaction_while_ingesting_and_querying_loses_and_doubles_nothing(store: DuckDBStore) -> None:
    q = query("embeddings", DAY0, DAY0 + 86400, "1d", ("model",))
    seen: list[int] = []

    def requests_counted(plan: Plan | None) -> int:
        return sum(values[1] for _, _, values in store.aggregate(q, using=plan))

    def read() -> None:  # every answer counts each stored event once: never fewer later
        day = covering(q, ROLLUPS["embeddings"])[0]
        while any(w.is_alive() for w in workers):
            seen.append(requests_counted(day))

    def ingest(worker: int) -> None:
        for n in range(30):
            store.append(
                rows(
                    [
                        {
                            "id": f"w{worker}-{n}-{i}",
                            "type": "embeddings",
                            "timestamp": DAY0 + (i * 37 + n) % 86400,
                            "model": f"m{i % 3}",
                            "input_tokens": 2,
                        }
                        for i in range(100)
                    ]
                )
            )

    workers = [threading.Thread(target=ingest, args=(w,)) for w in range(3)]
    for w in workers:
        w.start()
    reader = threading.Thread(target=read)
    reader.start()
    compactions = 0
    while any(w.is_alive() for w in workers):
        store.roll()
        compactions += store.compact(force=True)
    for w in [*workers, reader]:
        w.join()
    assert compactions > 0
    assert len(seen) > 3 and seen == sorted(seen) and seen[-1] <= 9000
    for plan in [None, *covering(q, ROLLUPS["embeddings"])]:
        totals = {groups: values for _, groups, values in store.aggregate(q, using=plan)}
        # 90 batches of 100 events, models in turn: 34 of m0 and 33 each of m1 and m2 a batch
        assert totals == {("m0",): (6120, 3060), ("m1",): (5940, 2970), ("m2",): (5940, 2970)}, plan


def test_a_changed_or_damaged_rollup_is_rebuilt_from_raw_events(tmp_path: Path) -> None:
    path = tmp_path / "rebuild.duckdb"
    store = DuckDBStore(path)
    store.append(
        rows([{"id": f"x{i}", "type": "moderations", "timestamp": DAY0 + i, "model": "m"} for i in range(50)])
    )
    q = query("moderations", DAY0, DAY0 + 86400, "1d", ("model",))
    plan = next(p for p in covering(q, ROLLUPS["moderations"]) if p.segments[0].rollup.name == "day_model")
    store.close()

    con = duckdb.connect(rollup_tables.rollups_path(str(path)))
    con.execute("DELETE FROM rollup_moderations_day_model")  # damaged: the rollup lost its rows
    con.execute("UPDATE rollup_definitions SET definition = 'old' WHERE name = 'rollup_moderations_hour'")
    con.execute("CREATE TABLE rollup_retired_shape (b BIGINT)")  # a rollup no longer defined
    con.close()

    store = DuckDBStore(path)  # the changed definition is rebuilt on opening; damage is not seen
    assert store.aggregate(q, using=plan) == []
    hour = next(p for p in covering(q, ROLLUPS["moderations"]) if p.segments[0].rollup.name == "hour")
    assert store.aggregate(q, using=hour) == [(DAY0, ("m",), (0, 50))]
    store.rebuild_rollups()
    assert store.aggregate(q, using=plan) == [(DAY0, ("m",), (0, 50))]
    store.close()
    con = duckdb.connect(rollup_tables.rollups_path(str(path)))
    tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "rollup_retired_shape" not in tables
    con.close()


def test_a_rollup_made_again_on_opening_ends_compacted(tmp_path: Path) -> None:
    """A table made again on opening is filled a share of the events at a time, so a group
    gets a row per share; closing compacts it, as after rolling up."""
    path = tmp_path / "reopened.duckdb"
    store = DuckDBStore(path)
    count = 2 * rollup_tables.FILL_MOST_EVENTS + 1
    events = [
        {"id": f"o{i}", "type": "moderations", "timestamp": DAY0 + i % 86_400, "model": "m"}
        for i in range(count)
    ]
    for first in range(0, count, 10_000):
        store.append(rows(events[first : first + 10_000]))
    store.close()
    con = duckdb.connect(rollup_tables.rollups_path(str(path)))
    con.execute(
        "UPDATE rollup_definitions SET definition = 'old' WHERE name = 'rollup_moderations_day_model'"
    )
    con.close()

    store = DuckDBStore(path)  # made again from three shares of the events
    q = query("moderations", DAY0, DAY0 + 86400, "1d", ("model",))
    plan = next(p for p in covering(q, ROLLUPS["moderations"]) if p.segments[0].rollup.name == "day_model")
    assert store.aggregate(q, using=plan) == [(DAY0, ("m",), (0, count))]
    store.close()
    con = duckdb.connect(rollup_tables.rollups_path(str(path)))
    assert con.execute("SELECT count(*) FROM rollup_moderations_day_model").fetchall() == [(1,)]
    con.close()


def test_the_database_can_checkpoint_after_rolling_compacting_and_rebuilding(store: DuckDBStore) -> None:
    # DuckDB folds its write-ahead log into the file only when no write is under way; the
    # roller's own writes must not leave one behind, or the log grows without end.
    store.append(rows([{"id": f"k{i}", "type": "completions", "timestamp": DAY0 + i} for i in range(100)]))
    cursor = store._con.cursor()
    for maintain in (store.roll, lambda: store.compact(force=True), store.rebuild_rollups):
        maintain()
        cursor.execute("CHECKPOINT")
    cursor.close()


def test_a_rebuild_leaves_one_row_per_bucket_and_group(store: DuckDBStore) -> None:
    """A rebuild fills each rollup a share of the events at a time (bounded memory), so a
    group gets a row from every share; it must end compacted, as rolling up leaves it."""
    events = [
        {"id": f"r-{i}", "type": "embeddings", "timestamp": DAY0 + i % 86_400, "model": f"m{i % 2}",
         "input_tokens": 1}
        for i in range(3 * rollup_tables.FILL_MOST_EVENTS)
    ]  # fmt: skip
    for first in range(0, len(events), 10_000):
        store.append(rows(events[first : first + 10_000]))
    store.roll()
    store.compact(force=True)  # nothing left to compact but what the rebuild writes
    store.rebuild_rollups()
    for rollup in ROLLUPS["embeddings"]:
        groups = {
            (e["timestamp"] - e["timestamp"] % rollup.grain, *(e.get(d) for d in rollup.dimensions))
            for e in events
        }
        assert store.rollup_rows()[rollup.table] == len(groups), rollup.table
    q = query("embeddings", DAY0, DAY0 + 86400, "1d", ("model",))
    share = len(events) // 2  # each model's events, one input token each
    assert [(groups, values) for _, groups, values in store.aggregate(q)] == [
        (("m0",), (share, share)),
        (("m1",), (share, share)),
    ]
