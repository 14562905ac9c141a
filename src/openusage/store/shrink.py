"""Give an embedded store's free blocks back to the disk.

DuckDB keeps the blocks that compaction and checkpoints free inside its file for reuse
and never shrinks the file: at 11.8M events the file was three times the blocks in use
(docs/performance.md). Shrinking writes every table into a new file and puts it in the
old one's place, while no server holds the database; the rollups' file likewise.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from .base import StoreUnavailable
from .duckdb import DuckDBStore, open_problem
from .duckdb_names import SHRINKING_DATABASE, quoted
from .duckdb_results import one_row
from .rollup_tables import rollups_path


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rewrite(path: Path) -> None:
    """Copy the database at ``path`` into a new file with its blocks in use only, and put
    that in its place."""
    partial = path.with_name(path.name + ".shrinking")
    partial.unlink(missing_ok=True)
    con = duckdb.connect(str(partial))
    try:
        (name,) = one_row(con, "SELECT current_database()")
        try:
            con.execute(f"ATTACH ? AS {quoted(SHRINKING_DATABASE)} (READ_ONLY)", [str(path)])
        except duckdb.Error as exc:
            raise StoreUnavailable(open_problem(str(path), exc)) from None
        con.execute(f"COPY FROM DATABASE {quoted(SHRINKING_DATABASE)} TO {quoted(name)}")
        con.execute("CHECKPOINT")
        _sync(partial)
        os.replace(partial, path)
        _sync(path.parent)
    finally:
        con.close()
        Path(f"{partial}.wal").unlink(missing_ok=True)


def shrink(path: Path) -> tuple[int, int]:
    """Rewrite the store at ``path`` (the events' file and the rollups') without their free
    blocks; their size together before and after.

    The store is opened and closed first, so its logs are folded in and its rollups are
    current; each copy is then made under the old file's lock and moved into place while
    that lock is still held, so no server can open the old file in between. A crash
    leaves each file old or new, and whole.
    """
    DuckDBStore(path).close()
    files = [path, Path(rollups_path(str(path)))]
    for file in files:
        if Path(f"{file}.wal").exists():
            raise StoreUnavailable(f"{file} still has a write-ahead log after closing: not shrunk")
    before = sum(file.stat().st_size for file in files)
    for file in files:
        _rewrite(file)
    return before, sum(file.stat().st_size for file in files)
