"""Commands that look after the rollups: show them, rebuild them from raw events."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import DB_OPTION, STORE_OPTION, existing_database, settings, table_console

if TYPE_CHECKING:
    from ..store import DuckDBStore
    from ..store.clickhouse import ClickHouseStore

GRAINS = {60: "1m", 3600: "1h", 86400: "1d"}


@click.group()
def rollups() -> None:
    """Show or rebuild the pre-aggregated rollups (while no server writes to the store)."""


def _open(db_path: Path | None, store_url: str | None) -> DuckDBStore | ClickHouseStore:
    """The store named by --store, else by --db, else by $OPENUSAGE_STORE or $OPENUSAGE_DB;
    a DuckDB file must exist (a mistyped path would make an empty one)."""
    from ..store import DuckDBStore, StoreUnavailable
    from ..store.clickhouse import ClickHouseStore
    from ..store.urls import duckdb_path, open_store, store_scheme

    url = store_url or (None if db_path else settings().store_url)
    try:
        if url is None or store_scheme(url) == "duckdb":
            return DuckDBStore(existing_database(duckdb_path(url) if url else db_path).db_path)
        store = open_store(url)
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    assert isinstance(store, ClickHouseStore)
    return store


@rollups.command("show")
@DB_OPTION
@STORE_OPTION
def rollups_show(db_path: Path | None, store_url: str | None) -> None:
    """List each rollup: its kind, grain, dimensions and rows."""
    from rich.table import Table

    from ..store.rollups import ROLLUPS

    store = _open(db_path, store_url)
    try:
        rows, unrolled = store.rollup_rows(), store.unrolled()
    finally:
        store.close()
    table = Table("kind", "rollup", "grain", "dimensions", "rows")
    for kind, kept in ROLLUPS.items():
        for r in kept:
            dims = ", ".join(r.dimensions) or "(none)"
            table.add_row(kind, r.name, GRAINS[r.grain], dims, f"{rows[r.table]:,}")
    table_console().print(table)
    click.echo(f"{unrolled} events not rolled up yet (queries read them raw).")


@rollups.command("rebuild")
@DB_OPTION
@STORE_OPTION
def rollups_rebuild(db_path: Path | None, store_url: str | None) -> None:
    """Build every rollup again from the raw events.

    Rollups are kept up to date as events arrive; rebuild after restoring raw events by
    hand, or to be sure after a doubt. The raw events are not touched. On DuckDB this is
    one transaction; on ClickHouse, stop every server that inserts into the store first.
    """
    store = _open(db_path, store_url)
    try:
        store.rebuild_rollups()
        total = sum(store.rollup_rows().values())
    finally:
        store.close()
    click.echo(f"rollups rebuilt: {total:,} rows.")
