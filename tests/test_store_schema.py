"""A database written by an older openusage is migrated when opened; a newer one is refused."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from openusage.server.events import EventRules, parse_events
from openusage.store import Aggregation, DuckDBStore
from openusage.store.base import METRIC_COLUMNS, StoreUnavailable
from openusage.store.rollup_tables import rollups_path
from openusage.store.schema import events_table_sql

NEW_IN_2 = ("api_source", "input_cache_write_30m_tokens", "input_cache_write_12h_tokens")
DAY0 = 1_700_006_400


def write_version_1(path: Path) -> None:
    """The events table as version 1 made it, with one event under its reading: audio and
    image input counted with their cached parts, text as the rest of all input."""
    metrics = [m for m in METRIC_COLUMNS if m not in NEW_IN_2]
    dims = "project_id VARCHAR, user_id VARCHAR, api_key_id VARCHAR, model VARCHAR, batch BOOLEAN, "
    dims += (
        "service_tier VARCHAR, size VARCHAR, source VARCHAR, vector_store_id VARCHAR, context_level VARCHAR"
    )
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE events (seq BIGINT NOT NULL, id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, "
        f"ts BIGINT NOT NULL, {dims}, {', '.join(f'{m} BIGINT NOT NULL DEFAULT 0' for m in metrics)})"
    )
    # 1000 input: 600 cached (100 of it audio, 200 image), 100 cache writes, 300 uncached of
    # which 50 audio and 20 image; version 1 stored audio 150, image 220, text 630.
    old = {
        "input_tokens": 1000, "input_cached_tokens": 600, "input_cache_write_tokens": 100,
        "input_uncached_tokens": 300, "input_text_tokens": 630, "input_cached_text_tokens": 300,
        "input_audio_tokens": 150, "input_cached_audio_tokens": 100, "input_image_tokens": 220,
        "input_cached_image_tokens": 200, "output_tokens": 10, "output_text_tokens": 10,
        "num_model_requests": 1,
    }  # fmt: skip
    con.execute(
        f"INSERT INTO events (seq, id, kind, ts, model, {', '.join(old)}) "
        f"VALUES (1, 'e1', 'completions', {DAY0 + 5}, 'gpt-5', {', '.join(map(str, old.values()))})"
    )
    con.execute(
        "INSERT INTO events (seq, id, kind, ts, num_requests) "
        f"VALUES (2, 'w1', 'web_search_calls', {DAY0}, 1)"
    )
    con.close()


def sums(
    store: DuckDBStore, kind: str, metrics: tuple[str, ...], group_by: tuple[str, ...] = ()
) -> list[tuple]:
    query = Aggregation(
        kind=kind,
        buckets=[(DAY0, DAY0 + 86400)],
        width_seconds=86400,
        group_by=group_by,
        filters={},
        metrics=metrics,
    )
    return [(values, totals) for _, values, totals in store.aggregate(query)]


def test_a_version_1_database_is_migrated_to_the_official_definitions(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    write_version_1(path)
    store = DuckDBStore(path)
    try:
        metrics = (
            "input_text_tokens", "input_audio_tokens", "input_image_tokens", "input_uncached_tokens",
            "input_cache_write_30m_tokens", "input_cache_write_12h_tokens", "input_cached_audio_tokens",
        )  # fmt: skip
        assert sums(store, "completions", metrics, ("api_source",)) == [
            (("unlabeled",), (230, 50, 20, 300, 100, 0, 100))
        ]
        assert sums(store, "web_search_calls", ("num_requests",), ("api_source",)) == [(("unlabeled",), (1,))]
    finally:
        store.close()
    # Migrated once: opening it again changes nothing.
    store = DuckDBStore(path)
    try:
        assert sums(store, "completions", ("input_text_tokens", "input_audio_tokens")) == [((), (230, 50))]
    finally:
        store.close()


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    DuckDBStore(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE store_version SET version = 99")
    con.close()
    with pytest.raises(StoreUnavailable, match="newer openusage"):
        DuckDBStore(path)


def test_a_version_2_database_loses_its_id_index_and_keeps_every_event(tmp_path: Path) -> None:
    """Version 2 kept a unique index on ids in memory; version 3 has none. Migrated on
    open, the events are all there, retries still count once, and the file checkpoints."""
    path = tmp_path / "v2.duckdb"
    DuckDBStore(path).close()  # today's layout, then made to look like version 2
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE events")
    con.execute(events_table_sql().replace("id VARCHAR NOT NULL", "id VARCHAR PRIMARY KEY"))
    con.execute(
        "INSERT INTO events (seq, id, kind, ts, input_tokens) VALUES (1, 'a', 'embeddings', ?, 5)", [DAY0]
    )
    con.execute("UPDATE store_version SET version = 2")
    con.close()
    store = DuckDBStore(path)
    try:
        constraints = store._con.execute(
            "SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 'events'"
        ).fetchall()
        assert ("PRIMARY KEY",) not in constraints and ("UNIQUE",) not in constraints
        rows = parse_events(
            [{"id": "a", "type": "embeddings", "timestamp": DAY0, "input_tokens": 5},
             {"id": "b", "type": "embeddings", "timestamp": DAY0 + 1, "input_tokens": 7}],
            EventRules(now=DAY0 + 86400),
        )  # fmt: skip
        result = store.append(rows)
        assert (result.inserted, result.duplicates) == (1, 1)
        assert sums(store, "embeddings", ("input_tokens",)) == [((), (12,))]
        cursor = store._con.cursor()
        cursor.execute("CHECKPOINT")  # DuckDB once refused this after a table was swapped
        cursor.close()
    finally:
        store.close()
    assert not Path(str(path) + ".wal").exists() or Path(str(path) + ".wal").stat().st_size == 0


def make_version_3(path: Path, *, copied: bool) -> None:
    """A store as version 3 left it: the rollups in the events' file, marked there by 1,000
    more input tokens (which a refill from the events would not have). ``copied``: as a
    crash between copying them to their own file and dropping them leaves it."""
    rollups = Path(rollups_path(str(path)))
    store = DuckDBStore(path)
    rows = parse_events(
        [{"id": f"e{i}", "type": "embeddings", "timestamp": DAY0 + i, "input_tokens": 5} for i in range(10)],
        EventRules(now=DAY0 + 86400),
    )
    store.append(rows)
    store.close()
    con = duckdb.connect(str(path))  # today's layout, then made to look like version 3
    con.execute(f"ATTACH '{rollups}' AS old_rollups")
    listed = con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'old_rollups'")
    tables = [t for (t,) in listed.fetchall()]
    con.execute("CREATE TABLE rollup_definitions (name VARCHAR PRIMARY KEY, definition VARCHAR)")
    for table in tables:
        if table == "rollup_latest":  # new in version 4
            continue
        if table == "rollup_definitions":
            con.execute("INSERT INTO rollup_definitions SELECT * FROM old_rollups.rollup_definitions")
        else:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM old_rollups.{table}")
    con.execute("UPDATE rollup_embeddings_day_model SET input_tokens = input_tokens + 1000")
    con.execute("UPDATE store_version SET version = 3")
    if copied:
        con.execute("UPDATE old_rollups.rollup_embeddings_day_model SET input_tokens = input_tokens + 1000")
    con.execute("DETACH old_rollups")
    con.close()
    if not copied:
        rollups.unlink()
        Path(f"{rollups}.wal").unlink(missing_ok=True)


@pytest.mark.parametrize("copied", [False, True], ids=["as-left", "crashed-after-copying"])
def test_a_version_3_database_has_its_rollups_moved_to_their_own_file(tmp_path: Path, copied: bool) -> None:
    """Version 3 kept the rollups in the events' file. Opened, they are moved to the
    rollups' file as they are (not filled again from every event, which takes minutes at
    100M events), and the events' file keeps the events alone. After a crash between the
    copy and the drop, the copy is kept and not made twice."""
    path = tmp_path / "v3.duckdb"
    rollups = Path(rollups_path(str(path)))
    make_version_3(path, copied=copied)

    store = DuckDBStore(path)
    try:
        assert sums(store, "embeddings", ("input_tokens",)) == [((), (50,))]  # the raw events' sum
        left = store._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        assert sorted(t for (t,) in left) == ["events", "store_version"]
    finally:
        store.close()
    con = duckdb.connect(str(rollups))
    try:
        moved = con.execute("SELECT sum(input_tokens) FROM rollup_embeddings_day_model").fetchall()
        assert moved == [(1050,)]
        # what version 3 did not keep: the latest event rolled up, per kind
        assert con.execute("SELECT * FROM rollup_latest").fetchall() == [("embeddings", DAY0 + 9)]
    finally:
        con.close()
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT version FROM store_version").fetchall() == [(4,)]
    finally:
        con.close()
