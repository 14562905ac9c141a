"""``openusage shrink``: give the embedded database's free blocks back to the disk."""

from __future__ import annotations

from pathlib import Path

import click

from .common import DB_OPTION, existing_database


@click.command()
@DB_OPTION
def shrink(db_path: Path | None) -> None:
    """Give the database's free blocks back to the disk (while no server holds it).

    DuckDB reuses the blocks that compaction and checkpoints free, but never makes its files
    smaller; this rewrites the database's file and its rollups' (FILE.rollups) with the
    blocks in use only. It needs room for a new file beside the old one until it is done.
    """
    from ..store import StoreUnavailable
    from ..store.shrink import shrink as shrink_file

    path = existing_database(db_path).db_path
    try:
        before, after = shrink_file(path)
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path}: {before / 2**20:,.1f} MiB -> {after / 2**20:,.1f} MiB")
