"""The ClickHouse store's rollups: the embedded store's rollups (``rollups.ROLLUPS``), each
a SummingMergeTree table filled by a materialized view as events are inserted.

The view sums each inserted block per bucket and group and appends the sums to its table
in the same INSERT; ClickHouse merges a table's rows of one key in the background, and a
query sums whatever rows are there, so it never depends on when merges happen. Rollups
made by an older definition are dropped, made again and filled from the raw events when
the store opens (before it takes any insert).

On a cluster, each shard keeps the rollups of its own events: a replicated table per
rollup (``rollup_..._local``) filled by a view on the shard's ``events_local``, read
through a Distributed table of the rollup's own name, so the queries are the same. Those
come from the printed schema (``openusage clickhouse schema --cluster``), not the server.
"""

from __future__ import annotations

from .base import DIMENSIONS, StoreUnavailable
from .clickhouse_connections import Connection
from .rollups import ROLLUPS, Rollup

ALL_ROLLUPS: tuple[Rollup, ...] = tuple(r for rollups in ROLLUPS.values() for r in rollups)

#: a table setting: how many recent inserts' tokens a (not replicated) table remembers, so
#: that a repeated insert is dropped
DEDUP_WINDOW = "non_replicated_deduplication_window = 1000"


def dimension_type(name: str) -> str:
    """A dimension's ClickHouse type: every dimension may be null."""
    return "Nullable(Bool)" if DIMENSIONS[name] == "boolean" else "Nullable(String)"


def replicated(engine: str, path: str) -> str:
    """A replicated engine whose Keeper path is ``/clickhouse/tables/`` + ``path`` (with
    the server's macros, such as ``{shard}``, in it)."""
    return f"Replicated{engine}('/clickhouse/tables/{path}', '{{replica}}')"


def local_name(table: str) -> str:
    """The name of a shard's part of ``table`` on a cluster."""
    return f"{table}_local"


def table_sql(rollup: Rollup, cluster: str | None = None, ttl: str = "") -> str:
    """The rollup's table on one server; with ``cluster``, each shard's replicated part of it."""
    columns = ["b Int64", *(f"{d} {dimension_type(d)}" for d in rollup.dimensions)]
    columns += [f"{m} Int128" for m in rollup.metrics]
    key = ", ".join(["b", *rollup.dimensions])
    name, engine, settings = rollup.table, "SummingMergeTree", f", {DEDUP_WINDOW}"
    if cluster is not None:
        name = local_name(rollup.table)
        # Replicated tables remember their last inserts' tokens by themselves.
        engine = replicated("SummingMergeTree", f"{{shard}}/{{database}}/{name}")
        settings = ""
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {name}{on_cluster} ({', '.join(columns)}) ENGINE = {engine} "
        f"ORDER BY ({key}){' ' + ttl if ttl else ''} "
        f"SETTINGS allow_nullable_key = 1, fsync_after_insert = 1{settings}"
    )


def select_sql(rollup: Rollup, events: str = "events") -> str:
    """The rollup's rows for the events of its kind in the ``events`` table."""
    sums = ", ".join(f"sum(toInt128({m})) AS {m}" for m in rollup.metrics)
    key = ", ".join(["b", *rollup.dimensions])
    dims = "".join(f"{d}, " for d in rollup.dimensions)
    return (
        f"SELECT ts - ts % {rollup.grain} AS b, {dims}{sums} FROM {events} "
        f"WHERE kind = '{rollup.kind}' GROUP BY {key}"
    )


def view_sql(rollup: Rollup) -> str:
    view = f"{rollup.table}_view"
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {rollup.table} AS {select_sql(rollup)}"


def _definitions_sql(engine: str, on_cluster: str = "") -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS rollup_definitions{on_cluster} (name String, definition String) "
        f"ENGINE = {engine} ORDER BY name"
    )


def cluster_rollups_sql(cluster: str, ttl: str = "") -> list[str]:
    """The rollups' DDL for a cluster: per shard a replicated table and the view that fills
    it from the shard's events, a Distributed table that reads every shard's, and the
    definitions they were made by (which the server checks when it starts)."""
    on_cluster = f" ON CLUSTER {cluster}"
    definitions = replicated("ReplacingMergeTree", "{database}/rollup_definitions")
    statements = [_definitions_sql(definitions, on_cluster)]
    for rollup in ALL_ROLLUPS:
        local = local_name(rollup.table)
        statements += [
            table_sql(rollup, cluster, ttl),
            f"CREATE TABLE IF NOT EXISTS {rollup.table}{on_cluster} AS {local} "
            f"ENGINE = Distributed({cluster}, currentDatabase(), {local}, rand())",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {rollup.table}_view{on_cluster} TO {local} "
            f"AS {select_sql(rollup, 'events_local')}",
        ]
    rows = ", ".join(f"('{r.table}', '{r.definition}')" for r in ALL_ROLLUPS)
    return [*statements, f"INSERT INTO rollup_definitions VALUES {rows}"]


def _outdated(con: Connection) -> list[Rollup]:
    """The rollups whose table or view is missing, or made by another definition."""
    existing = {
        name for (name,) in con.rows("SELECT name FROM system.tables WHERE database = currentDatabase()")
    }
    stored = {}
    if "rollup_definitions" in existing:
        stored = dict(con.rows("SELECT name, definition FROM rollup_definitions FINAL"))
    return [
        r
        for r in ALL_ROLLUPS
        if stored.get(r.table) != r.definition or not {r.table, f"{r.table}_view"} <= existing
    ]


def check_cluster_rollups(con: Connection, where: str) -> None:
    """Refuse a cluster whose rollups (or the views that fill them) are missing, or were
    made by another definition: the server cannot make them on every shard itself."""
    wrong = [r.table for r in _outdated(con)]
    if wrong:
        raise StoreUnavailable(
            f"{where}: the cluster's rollups are missing or were made by another version "
            f"({', '.join(wrong)}): make them with the DDL of `openusage clickhouse schema --cluster "
            "NAME` (drop those named here first, if they exist), then fill them with "
            "`openusage rollups rebuild --store URL`"
        )


def prepare_rollups(con: Connection) -> None:
    """Make each rollup that is missing or was made by another definition, filled from
    the events stored so far; run while nothing is inserted."""
    con.command(_definitions_sql("ReplacingMergeTree"))
    for rollup in _outdated(con):
        con.command(f"DROP VIEW IF EXISTS {rollup.table}_view")
        con.command(f"DROP TABLE IF EXISTS {rollup.table}")
        con.command(table_sql(rollup))
        con.command(f"INSERT INTO {rollup.table} {select_sql(rollup)}")
        con.command(view_sql(rollup))
        con.command(f"INSERT INTO rollup_definitions VALUES ('{rollup.table}', '{rollup.definition}')")


def rebuild_rollups(con: Connection, cluster: str | None = None) -> None:
    """Empty every rollup and fill it again from the raw events (on a ``cluster``, every
    shard's part, filled through the Distributed tables). Nothing may be inserted
    meanwhile: the views would add an event that the refill then counts again."""
    for rollup in ALL_ROLLUPS:
        if cluster is None:
            con.command(f"TRUNCATE TABLE {rollup.table}")
        else:
            con.command(f"TRUNCATE TABLE {local_name(rollup.table)} ON CLUSTER {cluster}")
        con.command(f"INSERT INTO {rollup.table} {select_sql(rollup)}")
