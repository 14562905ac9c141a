"""The ClickHouse store's rollups: the embedded store's rollups (``rollups.ROLLUPS``), each
a SummingMergeTree table filled by a materialized view as events are inserted.

The view sums each inserted block per bucket and group and appends the sums to its table
in the same INSERT; ClickHouse merges a table's rows of one key in the background, and a
query sums whatever rows are there, so it never depends on when merges happen. Rollups
made by an older definition are dropped, made again and filled from the raw events when
the store opens (before it takes any insert).
"""

from __future__ import annotations

from .base import DIMENSIONS
from .clickhouse_connections import Connection
from .rollups import ROLLUPS, Rollup

ALL_ROLLUPS: tuple[Rollup, ...] = tuple(r for rollups in ROLLUPS.values() for r in rollups)

#: a table setting: how many recent inserts' tokens a (not replicated) table remembers, so
#: that a repeated insert is dropped
DEDUP_WINDOW = "non_replicated_deduplication_window = 1000"


def dimension_type(name: str) -> str:
    """A dimension's ClickHouse type: every dimension may be null."""
    return "Nullable(Bool)" if DIMENSIONS[name] == "boolean" else "Nullable(String)"


def table_sql(rollup: Rollup) -> str:
    columns = ["b Int64", *(f"{d} {dimension_type(d)}" for d in rollup.dimensions)]
    columns += [f"{m} Int128" for m in rollup.metrics]
    key = ", ".join(["b", *rollup.dimensions])
    return (
        f"CREATE TABLE IF NOT EXISTS {rollup.table} ({', '.join(columns)}) ENGINE = SummingMergeTree "
        f"ORDER BY ({key}) SETTINGS allow_nullable_key = 1, fsync_after_insert = 1, {DEDUP_WINDOW}"
    )


def select_sql(rollup: Rollup) -> str:
    """The rollup's rows for the events of its kind in the ``events`` table."""
    sums = ", ".join(f"sum(toInt128({m})) AS {m}" for m in rollup.metrics)
    key = ", ".join(["b", *rollup.dimensions])
    dims = "".join(f"{d}, " for d in rollup.dimensions)
    return (
        f"SELECT ts - ts % {rollup.grain} AS b, {dims}{sums} FROM events "
        f"WHERE kind = '{rollup.kind}' GROUP BY {key}"
    )


def view_sql(rollup: Rollup) -> str:
    view = f"{rollup.table}_view"
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {rollup.table} AS {select_sql(rollup)}"


def prepare_rollups(con: Connection) -> int:
    """Make each rollup that is missing or was made by another definition, filled from
    the events stored so far; run while nothing is inserted. Returns how many were made."""
    con.command(
        "CREATE TABLE IF NOT EXISTS rollup_definitions (name String, definition String) "
        "ENGINE = ReplacingMergeTree ORDER BY name"
    )
    stored = dict(con.rows("SELECT name, definition FROM rollup_definitions FINAL"))
    existing = {
        name for (name,) in con.rows("SELECT name FROM system.tables WHERE database = currentDatabase()")
    }
    made = 0
    for rollup in ALL_ROLLUPS:
        if stored.get(rollup.table) == rollup.definition and rollup.table in existing:
            continue
        made += 1
        con.command(f"DROP VIEW IF EXISTS {rollup.table}_view")
        con.command(f"DROP TABLE IF EXISTS {rollup.table}")
        con.command(table_sql(rollup))
        con.command(f"INSERT INTO {rollup.table} {select_sql(rollup)}")
        con.command(view_sql(rollup))
        con.command(f"INSERT INTO rollup_definitions VALUES ('{rollup.table}', '{rollup.definition}')")
    return made


def rebuild_rollups(con: Connection) -> None:
    """Empty every rollup and fill it again from the raw events. Nothing may be inserted
    meanwhile: the views would add an event that the refill then counts again."""
    for rollup in ALL_ROLLUPS:
        con.command(f"TRUNCATE TABLE {rollup.table}")
        con.command(f"INSERT INTO {rollup.table} {select_sql(rollup)}")
