"""Give an embedded store's free blocks back to the disk.

DuckDB keeps the blocks that compaction and checkpoints free inside its file for reuse
and never shrinks the file: at 11.8M events the file was three times the blocks in use
(docs/performance.md). Shrinking writes every table into a new file and puts it in the
old one's place, while no server holds the database.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from .base import StoreUnavailable
from .duckdb import DuckDBStore
from .duckdb_results import one_row


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def shrink(path: Path) -> tuple[int, int]:
    """Rewrite the store at ``path`` without its free blocks; its size before and after.

    The store is opened and closed first, so its log is folded in and its rollups are
    current; the copy is then made under the old file's lock and moved into place while
    that lock is still held, so no server can open the old file in between. A crash
    leaves the old file, or the new one, whole.
    """
    DuckDBStore(path).close()
    if Path(f"{path}.wal").exists():
        raise StoreUnavailable(f"{path} still has a write-ahead log after closing: not shrunk")
    before = path.stat().st_size
    partial = path.with_name(path.name + ".shrinking")
    partial.unlink(missing_ok=True)
    con = duckdb.connect(str(partial))
    try:
        (name,) = one_row(con, "SELECT current_database()")
        try:
            con.execute("ATTACH ? AS source (READ_ONLY)", [str(path)])
        except duckdb.Error as exc:
            raise StoreUnavailable(f"{path} is in use (a running server?): {exc}") from None
        con.execute(f'COPY FROM DATABASE source TO "{name}"')
        con.execute("CHECKPOINT")
        _sync(partial)
        os.replace(partial, path)
        _sync(path.parent)
    finally:
        con.close()
        Path(f"{partial}.wal").unlink(missing_ok=True)
    return before, path.stat().st_size
