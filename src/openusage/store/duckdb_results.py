"""Reading DuckDB results so that no transaction stays open behind them."""

from __future__ import annotations

from typing import Any

import duckdb


def one_row(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, ...]:
    """The one row of a query, its result read to the end.

    A result read with ``fetchone`` stays open, and so does its transaction; while any
    transaction is open, a checkpoint cannot reclaim deleted rows, so a store whose
    connection once did so kept every row compaction ever deleted (a rollup of 1.5M rows
    took the room of 17M).
    """
    (row,) = cursor.execute(sql, params or []).fetchall()
    return tuple(row)
