"""The embedded store's table of raw events, its versions, and how an older file is migrated.

Version 1 read ``input_audio_tokens`` and ``input_image_tokens`` as including their cached
parts, and ``input_text_tokens`` as the rest of all input. Version 2 follows the official
definitions: each modality count is its uncached part (text also excludes cache writes),
and cache writes are split by retention. Version 3 drops the unique index on ``id``: it
stayed in memory and grew with every event, slowing ingestion as history grew; a retry is
found by id among the events of its own timestamp instead. Version 4 keeps the rollups in
a file of their own (``rollup_tables``), where they are moved from an older file. Older
files are migrated when opened; a file from a newer openusage is refused.
"""

from __future__ import annotations

import duckdb

from ..catalogue import USAGE_ENDPOINTS
from .base import DIMENSIONS, METRIC_COLUMNS, StoreUnavailable
from .duckdb_results import one_row

VERSION = 4

_SOURCED_KINDS = ", ".join(
    f"'{e.name}'" for e in USAGE_ENDPOINTS if any(d.name == "api_source" for d in e.dimensions)
)

#: from version n to n + 1, after the missing columns are added
_STEPS: dict[int, tuple[str, ...]] = {
    1: (
        f"UPDATE events SET api_source = 'unlabeled' WHERE kind IN ({_SOURCED_KINDS})",
        # Right-hand sides read the old values (SQL's rule for UPDATE).
        "UPDATE events SET input_cache_write_30m_tokens = input_cache_write_tokens, "
        "input_audio_tokens = input_audio_tokens - input_cached_audio_tokens, "
        "input_image_tokens = input_image_tokens - input_cached_image_tokens, "
        "input_text_tokens = input_uncached_tokens - (input_audio_tokens - input_cached_audio_tokens) "
        "- (input_image_tokens - input_cached_image_tokens) WHERE kind = 'completions'",
    ),
}


def _column_types() -> dict[str, str]:
    dims = {name: "BOOLEAN" if kind == "boolean" else "VARCHAR" for name, kind in DIMENSIONS.items()}
    return dims | {name: "BIGINT NOT NULL DEFAULT 0" for name in METRIC_COLUMNS}


def events_table_sql(table: str = "events") -> str:
    columns = ["seq BIGINT NOT NULL", "id VARCHAR NOT NULL", "kind VARCHAR NOT NULL", "ts BIGINT NOT NULL"]
    columns += [f"{name} {kind}" for name, kind in _column_types().items()]
    return f"CREATE TABLE {table} ({', '.join(columns)})"


def _without_id_index(con: duckdb.DuckDBPyConnection) -> None:
    """The events again without the unique index (DuckDB cannot drop it), in time order,
    which also lets row-group statistics skip most of the table when a retry is looked for."""
    names = ", ".join(["seq", "id", "kind", "ts", *_column_types()])
    con.execute(events_table_sql("events_v3"))
    con.execute(f"INSERT INTO events_v3 ({names}) SELECT {names} FROM events ORDER BY ts, seq")
    con.execute("DROP TABLE events")
    con.execute("ALTER TABLE events_v3 RENAME TO events")


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def prepare(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Create the events table, or bring an older one to this version; refuse a newer one."""
    tables = _tables(con)
    if "events" not in tables:
        con.execute("BEGIN TRANSACTION")
        con.execute(events_table_sql())
        con.execute("CREATE TABLE store_version (version INTEGER NOT NULL)")
        con.execute("INSERT INTO store_version VALUES (?)", [VERSION])
        con.execute("COMMIT")
        return
    version = 1
    if "store_version" in tables:
        (version,) = one_row(con, "SELECT max(version) FROM store_version")
    if version > VERSION:
        raise StoreUnavailable(
            f"{path} was written by a newer openusage (store version {version}; this one reads "
            f"up to {VERSION}): upgrade openusage to open it"
        )
    if version == VERSION:
        return
    columns = con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'events'")
    have = {c for (c,) in columns.fetchall()}
    con.execute("BEGIN TRANSACTION")
    try:
        for name, kind in _column_types().items():
            if name not in have:
                con.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")
        for step in range(version, VERSION):
            for sql in _STEPS.get(step, ()):
                con.execute(sql)
        if version < 3:
            _without_id_index(con)
        con.execute("CREATE TABLE IF NOT EXISTS store_version (version INTEGER NOT NULL)")
        con.execute("DELETE FROM store_version")
        con.execute("INSERT INTO store_version VALUES (?)", [VERSION])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    # Write the migrated file out now, before the server's own work begins.
    con.execute("CHECKPOINT")
