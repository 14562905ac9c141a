"""The embedded store: one DuckDB file, one wide columnar table of raw events.

Each event kind uses the columns its catalogue entry names; the others stay NULL, which a
columnar file stores almost for free. Raw events are kept for idempotency and so that
pre-aggregated rollups can be rebuilt from them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .base import (
    COLUMNS,
    DIMENSIONS,
    METRIC_COLUMNS,
    AggregateRow,
    Aggregation,
    AppendResult,
    PricedAggregation,
    PricedRow,
    Row,
    StoreUnavailable,
)


def _schema() -> str:
    dims = [f"{name} {'BOOLEAN' if kind == 'boolean' else 'VARCHAR'}" for name, kind in DIMENSIONS.items()]
    metrics = [f"{name} BIGINT NOT NULL DEFAULT 0" for name in METRIC_COLUMNS]
    columns = ["seq BIGINT NOT NULL", "id VARCHAR PRIMARY KEY", "kind VARCHAR NOT NULL", "ts BIGINT NOT NULL"]
    return f"CREATE TABLE IF NOT EXISTS events ({', '.join(columns + dims + metrics)})"


ARROW_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "kind": pa.string(),
    "ts": pa.int64(),
    **{name: pa.bool_() if kind == "boolean" else pa.string() for name, kind in DIMENSIONS.items()},
    **{name: pa.int64() for name in METRIC_COLUMNS},
}


def _arrow_table(rows: Sequence[Row], first_seq: int) -> pa.Table:
    """Rows as an Arrow table, which DuckDB reads column by column without a Python loop."""
    columns = zip(*rows, strict=True)
    table = pa.table(
        {
            name: pa.array(values, type=ARROW_TYPES[name])
            for name, values in zip(COLUMNS, columns, strict=True)
        }
    )
    return table.append_column("seq", pa.array(range(first_seq, first_seq + len(rows)), type=pa.int64()))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _terms(terms: tuple[tuple[str, int], ...]) -> str:
    """A sum of metric columns with integer signs, as SQL."""
    return "(" + " + ".join(f"({int(sign)}) * {_check_column(m)}" for m, sign in terms) + ")::BIGINT"


def _why(path: str, exc: Exception) -> str:
    text = str(exc)
    if "lock" in text.lower():
        return f"{path} is in use by another process (a running server?): {text.splitlines()[0]}"
    return f"cannot open {path} as a DuckDB database: {text.splitlines()[0]}"


def _check_column(name: str) -> str:
    # Column names reach SQL text, so they must come from the catalogue alone.
    if name not in DIMENSIONS and name not in METRIC_COLUMNS:
        raise ValueError(f"not a store column: {name!r}")
    return name


class DuckDBStore:
    """Events in one DuckDB file; safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        try:
            self._con = duckdb.connect(self._path)
            self._con.execute(_schema())
        except duckdb.Error as exc:
            raise StoreUnavailable(_why(self._path, exc)) from exc
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._next_seq = int(self._con.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0])  # type: ignore[index]
        names = ", ".join(COLUMNS)
        self._insert_sql = f"INSERT INTO events (seq, {names}) SELECT seq, {names} FROM incoming"
        self._known_sql = "SELECT id FROM events WHERE id IN (SELECT unnest($1::VARCHAR[]))"

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._con.cursor()
        return cursor

    def append(self, rows: Sequence[Row]) -> AppendResult:
        return self.append_batches([rows])[0]

    def append_batches(self, batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        """Several batches in one transaction and one insert: one disk sync for all (group
        commit). An id stored before, or earlier in these batches, counts as a duplicate."""
        results = []
        fresh: list[Row] = []
        with self._write_lock:
            cursor = self._cursor()
            cursor.execute("BEGIN TRANSACTION")
            try:
                ids = list({row[0] for rows in batches for row in rows})
                seen = {r[0] for r in cursor.execute(self._known_sql, [ids]).fetchall()}
                for rows in batches:
                    inserted = 0
                    for row in rows:
                        if row[0] not in seen:
                            seen.add(row[0])
                            fresh.append(row)
                            inserted += 1
                    results.append(AppendResult(inserted=inserted, duplicates=len(rows) - inserted))
                if fresh:
                    cursor.register("incoming", _arrow_table(fresh, self._next_seq))
                    try:
                        cursor.execute(self._insert_sql)
                    finally:
                        cursor.unregister("incoming")
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            self._next_seq += len(fresh)
        return results

    def aggregate(self, query: Aggregation) -> list[AggregateRow]:
        if not query.buckets:
            return []
        groups = [_check_column(g) for g in query.group_by]
        metrics = [_check_column(m) for m in query.metrics]
        where, filter_params = self._filters(query)
        params: list[Any]
        if query.gauge:
            carried = sorted({*groups, *(_check_column(f) for f in query.filters)})
            sql = self._gauge_sql(groups, metrics, where, carried)
            params = [[b[0] for b in query.buckets], [b[1] for b in query.buckets], query.kind]
        else:
            sql = self._sum_sql(groups, metrics, where)
            first, last = query.buckets[0][0], query.buckets[-1][1]
            params = [first, query.width_seconds, query.kind, first, last]
        order = ", ".join(["b", *(f"{g} NULLS FIRST" for g in groups)])
        rows = self._cursor().execute(f"{sql} ORDER BY {order}", [*params, *filter_params]).fetchall()
        n = len(groups)
        return [(int(r[0]), tuple(r[1 : 1 + n]), tuple(int(v) for v in r[1 + n :])) for r in rows]

    @staticmethod
    def _filters(query: Aggregation) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for name, values in query.filters.items():
            column = _check_column(name)
            if DIMENSIONS[name] == "boolean":
                clauses.append(f"{column} = ?")
                params.append(bool(values[0]))
            else:
                clauses.append(f"{column} IN (SELECT unnest(?::VARCHAR[]))")
                params.append(list(values))
        return "".join(f" AND {c}" for c in clauses), params

    @staticmethod
    def _sum_sql(groups: list[str], metrics: list[str], where: str) -> str:
        # $1 first bucket start, $2 width, $3 kind, $4..$5 the page's time range. Buckets
        # after the first start on a width boundary; the first may start off one.
        select = ", ".join(
            ["greatest(ts - ts % $2, $1) AS b", *groups, *(f"sum({m})::BIGINT AS {m}" for m in metrics)]
        )
        return (
            f"SELECT {select} FROM events WHERE kind = $3 AND ts >= $4 AND ts < $5"
            f"{_number_placeholders(where, 6)} GROUP BY {', '.join(['b', *groups])}"
        )

    @staticmethod
    def _gauge_sql(groups: list[str], metrics: list[str], where: str, carried: list[str]) -> str:
        # A gauge: each vector store's last report before the bucket's end, carried
        # forward; a store reported at zero drops out. Later ingestion wins a tie.
        (metric,) = metrics
        latest = "".join(f", arg_max_null({d}, [ts, seq]) AS {d}" for d in carried)
        return (
            "WITH ends AS (SELECT unnest($1::BIGINT[]) AS b, unnest($2::BIGINT[]) AS b_end), "
            f"latest AS (SELECT ends.b, vector_store_id, arg_max_null({metric}, [ts, seq]) AS value"
            f"{latest} FROM ends JOIN events ON events.kind = $3 AND events.ts < ends.b_end "
            "GROUP BY ends.b, vector_store_id) "
            f"SELECT {', '.join(['b', *groups, 'sum(value)::BIGINT'])} FROM latest "
            f"WHERE value > 0{_number_placeholders(where, 4)} GROUP BY {', '.join(['b', *groups])}"
        )

    def aggregate_priced(self, query: PricedAggregation) -> list[PricedRow]:
        base = query.base
        if not base.buckets:
            return []
        groups = [_check_column(g) for g in base.group_by]
        where, filter_params = self._filters(base)
        # The fine rows name their sums after the metrics, for the items' terms.
        fine = self._sum_sql(groups, [_check_column(m) for m in base.metrics], where)
        keys = ", ".join([*groups, ""])
        lines = " UNION ALL ".join(
            f"SELECT b, {keys}{_literal(item.item)} AS item, {_terms(item.terms)} AS qty FROM fine"
            for item in query.items
        )
        price_dims = [_check_column(d) for d in query.price_dimensions]
        join = " AND ".join(
            ["lines.b = prices.b", "lines.item = prices.item"]
            + [f"lines.{d} IS NOT DISTINCT FROM prices.{d}" for d in price_dims]
        )
        output = [
            "prices.line_item" if g == "line_item" else (f"lines.{g}" if g in groups else "NULL")
            for g in query.output
        ]
        select = ", ".join(["lines.b", *output])
        sql = (
            f"WITH fine AS ({fine}), lines AS ({lines}) "
            f"SELECT {select}, sum(coalesce(round(lines.qty * prices.usd, {int(query.decimals)}), 0)), "
            f"sum(lines.qty), any_value(prices.unit) "
            f"FROM lines JOIN incoming_prices AS prices ON {join} WHERE lines.qty > 0 "
            f"GROUP BY {', '.join(['lines.b', *output])} ORDER BY lines.b"
        )
        first, last = base.buckets[0][0], base.buckets[-1][1]
        params = [first, base.width_seconds, base.kind, first, last, *filter_params]
        table = pa.table(
            {
                "b": pa.array([p[0] for p in query.prices], type=pa.int64()),
                **{
                    d: pa.array([p[1 + i] for p in query.prices], type=ARROW_TYPES[d])
                    for i, d in enumerate(price_dims)
                },
                "item": pa.array([p[-4] for p in query.prices], type=pa.string()),
                "line_item": pa.array([p[-3] for p in query.prices], type=pa.string()),
                "usd": pa.array([p[-2] for p in query.prices], type=pa.decimal128(38, 18)),
                "unit": pa.array([p[-1] for p in query.prices], type=pa.string()),
            }
        )
        cursor = self._cursor()
        cursor.register("incoming_prices", table)
        try:
            rows = cursor.execute(sql, params).fetchall()
        finally:
            cursor.unregister("incoming_prices")
        n = len(query.output)
        return [
            (int(r[0]), tuple(r[1 : 1 + n]), Decimal(r[1 + n]), int(r[2 + n]), str(r[3 + n])) for r in rows
        ]

    def backup(self, target: Path | str) -> int:
        """Write a consistent copy of the events to a new DuckDB file; the events copied.

        One transaction sees one snapshot, so ingestion may go on while it runs.
        """
        cursor = self._con.cursor()
        try:
            (database,) = cursor.execute("SELECT current_database()").fetchone()  # type: ignore[misc]
            cursor.execute("ATTACH ? AS backup_target", [str(target)])
            try:
                cursor.execute(f'COPY FROM DATABASE "{database}" TO backup_target')
                (count,) = cursor.execute("SELECT count(*) FROM backup_target.events").fetchone()  # type: ignore[misc]
            finally:
                cursor.execute("DETACH backup_target")
        finally:
            cursor.close()
        return int(count)

    def close(self) -> None:
        self._con.close()


def _number_placeholders(where: str, first: int) -> str:
    """Turn the filters' ``?`` into ``$n`` numbered after the fixed parameters."""
    out, n = [], first
    for part in where.split("?"):
        out.append(part)
        out.append(f"${n}")
        n += 1
    return "".join(out[:-1])
