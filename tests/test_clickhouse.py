"""The ClickHouse store's own parts: the cluster DDL, and a real ClickHouse server when one
is given. Everything else about the store runs in the server's tests, on chDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from openusage.server import create_app
from openusage.server.events import EventRules, parse_events
from openusage.settings import Settings
from openusage.store.base import COLUMNS, Aggregation
from openusage.store.clickhouse import ClickHouseStore, schema_sql
from openusage.store.clickhouse_connections import ChdbConnection
from openusage.store.clickhouse_rollups import ALL_ROLLUPS

from .conftest import ADMIN_KEY
from .test_rollups import (
    RUN,
    answered,
    drawn_events,
    drawn_query,
    event_fields,
    expected,
    queries,
    rows,
    ways_of_answering,
)
from .test_server_errors import check_error

DAY0 = 1_700_006_400


@pytest.fixture(scope="module")
def chdb_connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbConnection]:
    """chDB in this process: one directory per process, so one for the whole module."""
    connection = ChdbConnection(tmp_path_factory.mktemp("chdb") / "store", memory_limit="2GB")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def chdb_store(chdb_connection: ChdbConnection) -> ClickHouseStore:
    return ClickHouseStore(chdb_connection, where="chdb test store")


def test_the_memory_limit_bounds_clickhouse_as_a_whole(chdb_connection: ChdbConnection) -> None:
    ((limit,),) = chdb_connection.rows(
        "SELECT value FROM system.server_settings WHERE name = 'max_server_memory_usage'"
    )
    assert int(limit) == 2_000_000_000


def test_the_cluster_schema_is_valid_clickhouse_and_replicated(chdb_connection: ChdbConnection) -> None:
    statements = schema_sql("usage_cluster")
    for statement in statements:
        # formatQuery parses a statement without running it: a typo fails here.
        chdb_connection.rows(f"SELECT formatQuery({_literal(statement)})")
    local, distributed, version, definitions, *rollups = statements
    assert "ON CLUSTER usage_cluster" in local and "ReplicatedMergeTree(" in local
    assert "Distributed(usage_cluster, currentDatabase(), events_local, cityHash64(id))" in distributed
    assert "ReplicatedMergeTree(" in version
    assert "ReplicatedReplacingMergeTree(" in definitions
    # Per rollup: each shard's replicated table, a Distributed table over them, the view
    # that fills the shard's table from the shard's events; then the definitions' rows.
    *made, filled = rollups
    assert len(made) == 3 * len(ALL_ROLLUPS) and filled.startswith("INSERT INTO rollup_definitions")
    for shard, spread, view in zip(made[::3], made[1::3], made[2::3], strict=True):
        assert "ON CLUSTER usage_cluster" in shard and "ReplicatedSummingMergeTree(" in shard
        assert "Distributed(usage_cluster, currentDatabase(), rollup_" in spread
        assert " TO rollup_" in view and "_local AS SELECT" in view and "FROM events_local" in view

    # The shard tables hold exactly the columns of the single-server table.
    def columns(ddl: str) -> str:
        return ddl.split("(", 1)[1].split(") ENGINE")[0]

    assert columns(local) == columns(schema_sql()[0])


def test_the_schema_command_prints_what_the_store_makes() -> None:
    assert printed_schema("--cluster", "c1") == "".join(s + ";\n\n" for s in schema_sql("c1"))


def printed_schema(*options: str) -> str:
    """What ``openusage clickhouse schema`` prints with these options."""
    return subprocess.run(
        [sys.executable, "-m", "openusage", "clickhouse", "schema", *options],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.fixture
def server_store() -> Iterator[ClickHouseStore]:
    url = os.environ.get("CLICKHOUSE_URL")
    if not url:
        pytest.skip("CLICKHOUSE_URL is not set: no ClickHouse server to test against (chDB runs the rest)")
    from openusage.store.clickhouse_connections import ServerConnection

    database = f"openusage_test_{uuid.uuid4().hex[:8]}"
    admin = ServerConnection(url)
    admin.command(f"CREATE DATABASE {database}")
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    store = ClickHouseStore(ServerConnection(f"{base}/{database}"), where=database)
    try:
        yield store
    finally:
        store.close()
        admin.command(f"DROP DATABASE {database}")
        admin.close()


def test_a_clickhouse_server_stores_once_and_sums(server_store: ClickHouseStore) -> None:
    events = [
        {"id": f"e{i}", "type": "embeddings", "timestamp": DAY0 + i, "model": "m", "input_tokens": 2**40}
        for i in range(10)
    ]
    rows = parse_events(events, EventRules(now=DAY0))
    assert server_store.append(rows).inserted == 10
    assert server_store.append(rows[:5]).duplicates == 5
    query = Aggregation(
        kind="embeddings",
        buckets=[(DAY0, DAY0 + 86_400)],
        width_seconds=86_400,
        group_by=("model",),
        filters={},
        metrics=("input_tokens",),
    )
    assert server_store.aggregate(query) == [(DAY0, ("m",), (10 * 2**40,))]


windows = iter(range(3000))


@settings(RUN, max_examples=20)  # each insert waits for its parts to be synced: slower than DuckDB
@given(batches=st.lists(st.lists(event_fields, min_size=1, max_size=30), min_size=1, max_size=4), q=queries)
def test_every_way_of_answering_gives_the_plain_sums_on_clickhouse(
    chdb_store: ClickHouseStore, batches: list[list[dict[str, Any]]], q: dict[str, Any]
) -> None:
    """As on the embedded store: raw events, each covering rollup (filled by its
    materialized view as events are inserted) and the deepest ladder all agree."""
    day0 = DAY0 + next(windows) * 3 * 86400  # each example in its own days of one store
    events: list[dict[str, Any]] = []
    for n, batch in enumerate(batches):
        drawn = drawn_events(day0, n, batch)
        chdb_store.append(rows(drawn))
        events += drawn
    chdb_store.append(rows(events[:3]))  # a retried batch changes nothing, in rollups too
    aggregation = drawn_query(day0, q)
    want = expected(events, aggregation)
    for plan in ways_of_answering(aggregation):
        assert answered(chdb_store.aggregate(aggregation, using=plan), aggregation) == want, plan


def test_both_stores_list_the_projects_their_events_name(chdb_store: ClickHouseStore, tmp_path: Path) -> None:
    """What the admin plane lists as projects seen in usage, on either store."""
    from openusage.store import DuckDBStore

    events = [
        {"id": f"named-{p}", "type": "embeddings", "timestamp": DAY0, "project_id": p, "input_tokens": 1}
        for p in ("proj_listed_a", "proj_listed_b")
    ]
    events += [
        {
            "id": "named-again",
            "type": "embeddings",
            "timestamp": DAY0,
            "project_id": "proj_listed_a",
            "input_tokens": 1,
        },
        {"id": "unnamed", "type": "embeddings", "timestamp": DAY0, "input_tokens": 1},
    ]
    duck = DuckDBStore(tmp_path / "listed.duckdb")
    try:
        for store in (duck, chdb_store):
            store.append(parse_events(events, EventRules(now=DAY0)))
        assert sorted(duck.project_ids()) == ["proj_listed_a", "proj_listed_b"]
        assert {"proj_listed_a", "proj_listed_b"} <= set(chdb_store.project_ids())
        assert None not in chdb_store.project_ids()
    finally:
        duck.close()


RETENTION_SCRIPT = """
import json, pathlib, sys, time
from openusage.server.events import EventRules, parse_events
from openusage.store.clickhouse import ClickHouseStore
from openusage.store.clickhouse_connections import ChdbConnection
from openusage.store.clickhouse_rollups import ALL_ROLLUPS

now = int(time.time())
con = ChdbConnection(pathlib.Path(sys.argv[1]))
store = ClickHouseStore(con, where="retention test", retention_days=30)
events = [
    {"id": f"{age}-{i}", "type": "completions", "timestamp": now - age * 86400 + i, "input_tokens": age}
    for age in (40, 31, 29, 1)
    for i in range(3)
]
store.append(parse_events(events, EventRules(now=now)))
for table in ["events", *(r.table for r in ALL_ROLLUPS)]:
    con.command(f"OPTIMIZE TABLE {table} FINAL")  # a merge now: TTLs apply in merges
kept = {
    "events": [row[0] for row in con.rows("SELECT id FROM events ORDER BY id")],
    "day_model": con.rows("SELECT toString(sum(input_tokens)) FROM rollup_completions_day_model")[0][0],
}
ClickHouseStore(con, where="retention test")  # none given: the TTL stays
engine = "SELECT engine_full FROM system.tables WHERE name = '{}'"
kept["kept"] = con.rows(engine.format("events"))[0][0]
ClickHouseStore(con, where="retention test", retention_days=60)
kept["changed"] = con.rows(engine.format("rollup_completions_hour"))[0][0]
print(json.dumps(kept))
"""


def run_script(script: str, *args: str) -> Any:
    """What a script run in a process of its own (chDB opens one folder per process)
    printed last, read as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_retention_deletes_events_and_rollup_rows_past_their_days(tmp_path: Path) -> None:
    kept = run_script(RETENTION_SCRIPT, str(tmp_path / "store"))
    assert kept["events"] == ["1-0", "1-1", "1-2", "29-0", "29-1", "29-2"]
    assert kept["day_model"] == str(3 * 29 + 3 * 1)
    assert "TTL toDateTime(ts) + toIntervalDay(30)" in kept["kept"]
    assert "TTL toDateTime(b) + toIntervalDay(60)" in kept["changed"]


def test_retention_is_refused_where_it_cannot_be_kept(tmp_path: Path) -> None:
    from openusage.store import StoreUnavailable, open_store

    with pytest.raises(StoreUnavailable, match="ClickHouse stores only"):
        open_store(str(tmp_path / "usage.duckdb"), retention_days=30)
    assert not (tmp_path / "usage.duckdb").exists()
    printed = printed_schema("--retention-days", "30")
    assert printed == "".join(s + ";\n\n" for s in schema_sql(retention_days=30))
    assert "TTL toDateTime(ts) + INTERVAL 30 DAY" in printed


def test_events_two_writers_both_found_new_are_stored_once(
    chdb_store: ClickHouseStore, chdb_connection: ChdbConnection
) -> None:
    """Two `openusage serve` processes on one ClickHouse, each given the same retried batch
    at the same moment: both look its events up before either has inserted, both find them
    new, and both insert. The second insert carries the same token and is dropped, with
    what the rollups' views would have added."""
    day = DAY0 + 50 * 86400
    batch = parse_events(
        [
            {"id": f"race-{i}", "type": "embeddings", "timestamp": day + i, "input_tokens": 10 + i}
            for i in range(5)
        ],
        EventRules(now=day + 86400),
    )
    # Tables made before inserts carried tokens are given the setting when a store opens.
    for table in ("events", "rollup_embeddings_day_model"):
        chdb_connection.command(f"ALTER TABLE {table} RESET SETTING non_replicated_deduplication_window")
    other_process = ClickHouseStore(chdb_connection, where="a second writer")
    assert chdb_store.append(batch).inserted == 5
    other_process._write(list(batch))  # what the second process does after its lookup

    def stored() -> tuple[Any, ...]:
        ((count, tokens),) = chdb_connection.rows(
            f"SELECT count(), sum(input_tokens) FROM events WHERE id LIKE 'race-%' AND ts >= {day}"
        )
        ((rolled,),) = chdb_connection.rows(
            f"SELECT sum(input_tokens) FROM rollup_embeddings_day_model WHERE b = {day - day % 86400}"
        )
        return int(count), int(tokens), int(rolled)

    assert stored() == (5, 60, 60)
    # Events that differ are another insert: stored, however close in time.
    later = parse_events(
        [{"id": "race-5", "type": "embeddings", "timestamp": day + 5, "input_tokens": 15}],
        EventRules(now=day + 86400),
    )
    other_process._write(list(later))
    assert stored() == (6, 75, 75)


def test_events_alike_but_for_their_ids_are_each_counted_in_the_rollups(
    chdb_store: ClickHouseStore, chdb_connection: ChdbConnection
) -> None:
    """Tables that drop repeated inserts must not drop inserts that merely look alike: three
    events that differ only by id make three identical rollup blocks, each counted."""
    day = DAY0 + 60 * 86400
    for i in range(3):
        event = {"id": f"alike-{i}", "type": "embeddings", "timestamp": day + 5, "input_tokens": 7}
        assert chdb_store.append(parse_events([event], EventRules(now=day + 86400))).inserted == 1
    for table in ("events", "rollup_embeddings_minute", "rollup_embeddings_day_model"):
        column = "ts" if table == "events" else "b"
        ((tokens,),) = chdb_connection.rows(
            f"SELECT toString(sum(input_tokens)) FROM {table} WHERE {column} >= {day - day % 86400} "
            f"AND {column} < {day - day % 86400 + 86400}"
        )
        assert tokens == "21", table


def test_sums_past_64_bits_are_exact_on_clickhouse(chdb_store: ClickHouseStore) -> None:
    """Sums come back as 64-bit integers where they fit; one that does not is read again in
    128 bits, raw or from a rollup, beside buckets that fit."""
    day = DAY0 + 70 * 86400
    rows = parse_events(
        [{"id": f"big-{i}", "type": "embeddings", "timestamp": day + i, "input_tokens": 1} for i in range(5)],
        EventRules(now=day + 2 * 86400),
    )
    at = COLUMNS.index("input_tokens")
    rows = [(*row[:at], 2**62, *row[at + 1 :]) for row in rows[:4]] + [
        (*rows[4][:2], day + 86400 + 5, *rows[4][3:])  # the next day: a small sum
    ]
    chdb_store.append(rows)
    query = Aggregation(
        kind="embeddings",
        buckets=[(day, day + 86400), (day + 86400, day + 2 * 86400)],
        width_seconds=86400,
        group_by=(),
        filters={},
        metrics=("input_tokens",),
    )
    for using in (None, "auto"):
        sums = [values for _, _, values in chdb_store.aggregate(query, using=using)]
        assert sums == [(2**64,), (1,)], using


#: A cluster of one shard whose one replica is this process: ``tcp_port`` is the port of the
#: replica named, so ClickHouse reads and writes its Distributed tables here, with no network.
ONE_SHARD_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers>
    <one_shard><shard><replica><host>localhost</host><port>9000</port></replica></shard></one_shard>
  </remote_servers>
</clickhouse>
"""

CLUSTER_SCRIPT = """
import json, pathlib, re, sys
from openusage.server.events import EventRules, parse_events
from openusage.store import StoreUnavailable
from openusage.store.base import Aggregation
from openusage.store.clickhouse import ClickHouseStore, schema_sql
from openusage.store.clickhouse_connections import ChdbConnection

DAY0, HOUR, DAY = 1_700_006_400, 3600, 86400
folder, config = map(pathlib.Path, sys.argv[1:3])
con = ChdbConnection(folder, config_file=config)


def one_node(statement):
    # Without ClickHouse Keeper there is no replication and no DDL sent to every node.
    statement = re.sub(r" ON CLUSTER [a-z_]+", "", statement)
    return re.sub(r"Replicated([A-Za-z]*MergeTree)[(]'[^']*', '[^']*'[)]", r"\\1", statement)


statements = [one_node(s) for s in schema_sql("one_shard")]
out = {}
for statement in statements[:3]:  # the events' tables alone
    con.command(statement)
try:
    ClickHouseStore(con, where="the cluster")
    out["refused"] = None
except StoreUnavailable as exc:
    out["refused"] = str(exc)
for statement in statements[3:]:
    con.command(statement)
store = ClickHouseStore(con, where="the cluster")
out["engines"] = dict(con.rows("SELECT name, engine FROM system.tables WHERE database = currentDatabase()"))
events = [
    {"id": f"c{i}", "type": "completions", "timestamp": DAY0 + (i * 37) % (3 * DAY),
     "input_tokens": i % 100, "model": f"m{i % 3}", "project_id": f"p{i % 4}"}
    for i in range(6000)
]
rows = parse_events(events, EventRules(now=DAY0 + 10 * DAY))
out["inserted"] = store.append(rows).inserted
out["duplicates"] = store.append(rows[:100]).duplicates
def buckets(width, count):
    return [(DAY0 + n * width, DAY0 + (n + 1) * width) for n in range(count)]


queries = {
    "day by model": Aggregation("completions", buckets(DAY, 3), DAY, ("model",), {}, ("input_tokens",)),
    "hour by project, filtered": Aggregation(
        "completions", buckets(HOUR, 72), HOUR, ("project_id",), {"project_id": ("p1", "p2")},
        ("input_tokens",),
    ),
}
for name, query in queries.items():
    routed = store.aggregate(query)
    out[name] = {
        "read from rollups": store.plan(query) is not None,
        "same as raw": routed == store.aggregate(query, using=None),
        "total": sum(values[0] for _, _, values in routed),
    }
out["rollup rows"] = store.rollup_rows()
con.command("DROP VIEW rollup_embeddings_hour_view")  # its table would be filled no more
try:
    ClickHouseStore(con, where="the cluster")
    out["refused without a view"] = None
except StoreUnavailable as exc:
    out["refused without a view"] = str(exc)
print(json.dumps(out))
"""


def test_a_cluster_keeps_rollups_per_shard_and_answers_from_them(tmp_path: Path) -> None:
    """The cluster's DDL, run on a cluster of one shard in chDB (without replication, which
    needs ClickHouse Keeper): the store reads and writes through its Distributed tables."""
    config = tmp_path / "one_shard.xml"
    config.write_text(ONE_SHARD_CONFIG)
    out = run_script(CLUSTER_SCRIPT, str(tmp_path / "store"), str(config))
    assert "rollups are missing" in out["refused"] and "clickhouse schema --cluster" in out["refused"]
    engines = out["engines"]
    assert (engines["events"], engines["events_local"]) == ("Distributed", "MergeTree")
    for rollup in ("rollup_completions_day_model", "rollup_embeddings_hour"):
        assert engines[rollup] == "Distributed"
        assert engines[f"{rollup}_local"] == "SummingMergeTree"
        assert engines[f"{rollup}_view"] == "MaterializedView"
    assert (out["inserted"], out["duplicates"]) == (6000, 100)
    tokens = sum(i % 100 for i in range(6000))
    filtered = sum(i % 100 for i in range(6000) if i % 4 in (1, 2))
    answered = {"read from rollups": True, "same as raw": True}
    assert out["day by model"] == {**answered, "total": tokens}
    assert out["hour by project, filtered"] == {**answered, "total": filtered}
    assert out["rollup rows"]["rollup_completions_day_model"] > 0
    assert "made by another version (rollup_embeddings_hour):" in out["refused without a view"]


def test_a_query_past_clickhouses_memory_gets_a_503_naming_it(
    chdb_store: ClickHouseStore, chdb_connection: ChdbConnection, tmp_path: Path
) -> None:
    """As on DuckDB: the client is told the query needs more memory than the store has (a
    503, not a fault), and the server goes on answering the rest."""
    day0 = DAY0 + 2_000 * 86_400  # a day no other test of the module's store uses
    events = [
        {
            "id": f"wide-{n}",
            "type": "completions",
            "timestamp": day0 + n % 86_400,
            "model": "wide-model",
            "user_id": f"{n:u>120}",
            "api_key_id": f"{n:k>120}",
            "input_tokens": 1,
        }
        for n in range(20_000)
    ]
    chdb_store.append(parse_events(events, EventRules(now=day0 + 86_400)))
    settings = Settings(db_path=tmp_path / "unused.duckdb", admin_key=ADMIN_KEY, lookback_days=None)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    day = {"start_time": day0, "end_time": day0 + 86_400}
    with TestClient(create_app(settings, store=chdb_store), base_url="http://test/v1") as http:
        wide = {**day, "group_by": "user_id,api_key_id"}
        chdb_connection.command("SET max_memory_usage = 4000000")  # 4 MB a query
        try:
            refused = http.get("/organization/usage/completions", params=wide, headers=headers)
        finally:
            chdb_connection.command("SET max_memory_usage = 0")
        error = check_error(refused, 503, None)
        assert error["type"] == "server_error"
        assert "ClickHouse ran out of memory" in error["message"] and "--memory-limit" in error["message"]
        answered = http.get("/organization/usage/completions", params=wide, headers=headers)
        assert answered.status_code == 200, answered.text
        assert sum(len(b["results"]) for b in answered.json()["data"]) == 20_000


def test_batches_of_the_longest_ids_are_looked_up_and_stored_once(chdb_store: ClickHouseStore) -> None:
    """Two batches of the most events a batch may hold (10,000), each id of the most
    characters an id may have (256), quotes and four-byte characters among them: far more
    SQL than ClickHouse parses in one statement, so the look-up for stored ones is shared out."""
    day0 = DAY0 + 2_010 * 86_400  # a day of its own

    def batch(first: int) -> list[Any]:
        events = [
            {
                "id": f"{n}'\\𝄞".ljust(256, "𝄞"),
                "type": "embeddings",
                "timestamp": day0 + n % 86_400,
                "input_tokens": 1,
            }
            for n in range(first, first + 10_000)
        ]
        return parse_events(events, EventRules(now=day0 + 86_400))

    batches = [batch(0), batch(10_000)]
    stored = chdb_store.append_batches(batches)
    assert [(r.inserted, r.duplicates) for r in stored] == [(10_000, 0), (10_000, 0)]
    again = chdb_store.append_batches(batches)
    assert [(r.inserted, r.duplicates) for r in again] == [(0, 10_000), (0, 10_000)]
    day = Aggregation("embeddings", [(day0, day0 + 86_400)], 86_400, (), {}, ("input_tokens",))
    assert [sums for _, _, sums in chdb_store.aggregate(day)] == [(20_000,)]


def test_a_query_filtered_by_the_most_and_longest_values_is_answered(chdb_store: ClickHouseStore) -> None:
    """Two filters of 1,000 values (the most a parameter takes) of 256 four-byte characters
    (the longest): 2 MB of SQL, past ClickHouse's default of 256 KiB a statement."""
    day0 = DAY0 + 2_020 * 86_400  # a day of its own
    projects = tuple(f"{n}".ljust(256, "𝄞") for n in range(1_000))
    users = tuple(f"{n}".ljust(256, "ü") for n in range(1_000))
    events = [
        {
            "id": f"filtered-{n}",
            "type": "completions",
            "timestamp": day0 + n,
            "model": "m",
            "project_id": projects[n],
            "user_id": users[n],
            "input_tokens": n,
        }
        for n in (3, 500, 999)
    ]
    events.append({**events[0], "id": "filtered-other", "project_id": "elsewhere", "input_tokens": 10**6})
    chdb_store.append(parse_events(events, EventRules(now=day0 + 86_400)))
    filters = {"project_id": projects, "user_id": users}
    query = Aggregation("completions", [(day0, day0 + 86_400)], 86_400, (), filters, ("input_tokens",))
    assert [sums for _, _, sums in chdb_store.aggregate(query)] == [(3 + 500 + 999,)]
