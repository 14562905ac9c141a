"""Commands that look after the rollups: show them, rebuild them from raw events."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import DB_OPTION, existing_database, table_console

if TYPE_CHECKING:
    from ..store import DuckDBStore

GRAINS = {60: "1m", 3600: "1h", 86400: "1d"}


@click.group()
def rollups() -> None:
    """Show or rebuild the pre-aggregated rollups (while no server holds the database)."""


def _open(db_path: Path | None) -> DuckDBStore:
    from ..store import DuckDBStore, StoreUnavailable

    try:
        return DuckDBStore(existing_database(db_path).db_path)
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None


@rollups.command("show")
@DB_OPTION
def rollups_show(db_path: Path | None) -> None:
    """List each rollup: its kind, grain, dimensions and rows."""
    from rich.table import Table

    from ..store.rollups import ROLLUPS

    store = _open(db_path)
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
def rollups_rebuild(db_path: Path | None) -> None:
    """Build every rollup again from the raw events, in one transaction.

    Rollups are kept up to date as events arrive; rebuild after restoring raw events by
    hand, or to be sure after a doubt. The raw events are not touched.
    """
    store = _open(db_path)
    try:
        store.rebuild_rollups()
        total = sum(store.rollup_rows().values())
    finally:
        store.close()
    click.echo(f"rollups rebuilt: {total:,} rows.")
