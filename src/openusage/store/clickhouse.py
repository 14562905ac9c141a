"""The store on ClickHouse: in-process through chDB, or a ClickHouse server or cluster.

The SQL is the same for both; a ``Connection`` (``clickhouse_connections``) only runs it.
Raw events live in a MergeTree partitioned by month and ordered by kind and time, so a
query reads the parts and granules of its range only. Sums are 128-bit; costs are
priced in exact decimals, never rounded, as on the embedded store.

Exactly once: one writer per store (this process, under a lock) looks up the batch's
ids among the events of the batch's time range and inserts only the new ones, as the
embedded store does. Inserts are synchronous, so an acknowledged batch is in ClickHouse.
An insert that fails midway is sent again under its token before the next one
(``clickhouse_journal`` says why that completes it).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pyarrow as pa

from .base import (
    COLUMNS,
    DIMENSIONS,
    METRIC_COLUMNS,
    AggregateRow,
    Aggregation,
    AppendResult,
    EncodedBucket,
    PricedAggregation,
    PricedRow,
    ResultShape,
    Row,
    Stored,
    StoreUnavailable,
    WriteUnfinished,
    check_column,
    encode_results,
    past_64_bits,
)
from .clickhouse_connections import MAX_QUERY_BYTES, Connection
from .clickhouse_journal import InsertJournal
from .clickhouse_rollups import (
    ALL_ROLLUPS,
    DEDUP_WINDOW,
    check_cluster_rollups,
    cluster_rollups_sql,
    dimension_type,
    prepare_rollups,
    rebuild_rollups,
    replicated,
)
from .duckdb import note_spans, numbered, price_table, rows_table
from .rollups import ROLLUPS, Extent, Plan, choose

VERSION = 3
#: seconds the rollups' row counts (the router's cost model) are reused for
ROWS_MAX_AGE = 5.0
#: ids a look-up for stored events names in one statement, in bytes of SQL (quoted): well
#: within what the connections let ClickHouse parse (``MAX_QUERY_BYTES``), which a commit's
#: ids can pass (four batches of 10,000 ids of 256 four-byte characters: 40 MB)
LOOKUP_SQL_BYTES = MAX_QUERY_BYTES // 16


def _quoted(text: str) -> str:
    """A ClickHouse string literal: backslashes and quotes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quantity(terms: tuple[tuple[str, int], ...]) -> str:
    """A sum of metric columns with integer signs, as 128-bit SQL."""
    return "toInt128(" + " + ".join(f"({int(sign)}) * {check_column(m)}" for m, sign in terms) + ")"


def _join_key(column: str) -> str:
    """A nullable column as a plain join key, so ClickHouse joins by hash (isNotDistinctFrom
    made it compare every pair of rows): a null becomes a NUL, which no stored value holds."""
    return f"ifNull(toString({column}), '\\0')"


def _ints(values: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def ttl_sql(column: str, retention_days: int) -> str:
    """A TTL that deletes rows once their time is ``retention_days`` days past."""
    return f"TTL toDateTime({column}) + INTERVAL {int(retention_days)} DAY"


def events_table_sql(
    table: str = "events",
    engine: str = "MergeTree",
    cluster: str | None = None,
    retention_days: int | None = None,
) -> str:
    """The raw events' table: on one server (or chDB), or with ``cluster`` on each node."""
    dims = [f"{name} {dimension_type(name)}" for name in DIMENSIONS]
    metrics = [f"{m} Int64 DEFAULT 0" for m in METRIC_COLUMNS]
    fixed = ["seq Int64", "id String", "kind LowCardinality(String)", "ts Int64"]
    columns = ",\n  ".join([*fixed, *dims, *metrics])
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    ttl = "" if retention_days is None else ttl_sql("ts", retention_days) + "\n"
    # Replicated tables remember their last inserts' tokens by themselves.
    window = f", {DEDUP_WINDOW}" if engine == "MergeTree" else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {table}{on_cluster} (\n  {columns}\n) ENGINE = {engine}\n"
        f"PARTITION BY intDiv(ts, 2592000) ORDER BY (kind, ts, id)\n{ttl}"
        # An insert is acknowledged only once its part is on disk.
        f"SETTINGS fsync_after_insert = 1, fsync_part_directory = 1{window}"
    )


def schema_sql(cluster: str | None = None, retention_days: int | None = None) -> list[str]:
    """The DDL the store needs, for one server or, with ``cluster``, for a cluster: each
    node keeps its shard's events in a replicated table, and ``events`` spreads inserts
    over the shards by id and reads from all of them; so do the rollups (which the
    server makes by itself on one server). With ``retention_days``, events (and on a
    cluster, rollup rows) are deleted that many days after their time."""
    version = "CREATE TABLE IF NOT EXISTS store_version{} (version Int32) ENGINE = {}"
    if cluster is None:
        return [events_table_sql(retention_days=retention_days), version.format("", "TinyLog")]
    shard_events = replicated("MergeTree", "{shard}/{database}/events_local")
    return [
        events_table_sql("events_local", shard_events, cluster, retention_days),
        f"CREATE TABLE IF NOT EXISTS events ON CLUSTER {cluster} AS events_local "
        f"ENGINE = Distributed({cluster}, currentDatabase(), events_local, cityHash64(id))",
        version.format(
            f" ON CLUSTER {cluster}",
            replicated("MergeTree", "{database}/store_version") + " ORDER BY version",
        ),
        *cluster_rollups_sql(cluster, "" if retention_days is None else ttl_sql("b", retention_days)),
    ]


class ClickHouseStore:
    """Events in ClickHouse; safe to share between threads."""

    def __init__(
        self,
        connection: Connection,
        *,
        where: str,
        retention_days: int | None = None,
        journal: Path | None = None,
    ) -> None:
        """``retention_days``: delete events and rollup rows that many days after their
        time (a TTL on each table; None leaves the tables' TTLs as they are). ``journal``:
        the file that keeps the last insert, for a store only this process writes to."""
        self._con = connection
        self._where = where
        self._write_lock = threading.Lock()
        self._journal = None if journal is None else InsertJournal(journal)
        #: an insert that failed midway, with its token: sent again before the next one
        self._unfinished: tuple[pa.Table, str] | None = None
        #: per kind: [events, earliest ts, latest ts], for the router's cost model
        self._spans: dict[str, list[int]] = {}
        self._rows: dict[str, int] = {}
        self._rows_read_at = -ROWS_MAX_AGE
        try:
            for statement in schema_sql(retention_days=retention_days):  # a cluster's are kept
                self._con.command(statement)
            versions = self._con.rows("SELECT max(version), count() FROM store_version")
            version, count = versions[0]
            if count == 0:
                self._con.command(f"INSERT INTO store_version VALUES ({VERSION})")
            elif version > VERSION:
                raise StoreUnavailable(
                    f"{where} was written by a newer openusage (store version {version}; this one reads "
                    f"up to {VERSION}): upgrade openusage to open it"
                )
            self._remember_inserts()
            #: the cluster a Distributed ``events`` spreads over; None on one server
            self._cluster = self._cluster_of_events()
            if self._journal is not None:
                # Before any rollup is made again from the raw events: a table made again
                # does not know the tokens that make this harmless.
                self._unfinished = self._journal.read()
                self._finish()
            if self._cluster is not None:
                check_cluster_rollups(self._con, where)
            else:
                prepare_rollups(self._con)
            if retention_days is not None:
                self._keep_for(retention_days)
            ((last,),) = self._con.rows("SELECT max(seq) FROM events")
            self._spans = {
                str(kind): [int(n), int(lo), int(hi)]
                for kind, n, lo, hi in self._con.rows(
                    "SELECT kind, count(), min(ts), max(ts) FROM events GROUP BY kind"
                )
            }
        except StoreUnavailable:
            raise
        except Exception as exc:  # the drivers' errors have no common base
            raise StoreUnavailable(f"cannot open {where} as a ClickHouse store: {exc}") from exc
        self._next_seq = int(last or 0) + 1

    def _engines(self) -> dict[str, str]:
        rows = self._con.rows(
            "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()"
        )
        return {str(name): str(engine) for name, engine in rows}

    def _cluster_of_events(self) -> str | None:
        engine = self._engines().get("events", "")
        if not engine.startswith("Distributed("):
            return None
        return engine.removeprefix("Distributed(").split(",")[0].strip().strip("'")

    def _remember_inserts(self) -> None:
        """Give tables made before inserts carried tokens the setting that drops repeats."""
        ours = {"events", *(r.table for r in ALL_ROLLUPS)}
        for table, engine in self._engines().items():
            local = "MergeTree" in engine and not engine.startswith("Replicated")
            if table in ours and local and "non_replicated_deduplication_window" not in engine:
                self._con.command(f"ALTER TABLE {table} MODIFY SETTING {DEDUP_WINDOW}")

    def _keep_for(self, days: int) -> None:
        """Set the TTL of the events and of every rollup to ``days``, where it differs."""
        engines = self._engines()
        if not engines.get("events", "").startswith("MergeTree"):
            raise StoreUnavailable(
                f"{self._where}: its events table is not a MergeTree table on this server (a cluster's "
                "Distributed table?): set retention in the schema, openusage clickhouse schema "
                f"--cluster NAME --retention-days {days}"
            )
        tables = [("events", "ts"), *((r.table, "b") for r in ALL_ROLLUPS)]
        for table, column in tables:
            if f"toIntervalDay({int(days)})" not in engines.get(table, ""):
                self._con.command(f"ALTER TABLE {table} MODIFY {ttl_sql(column, days)}")

    def append(self, rows: Sequence[Row]) -> AppendResult:
        return self.append_batches([rows])[0]

    def append_batches(self, batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        """Several batches in one insert; an event whose id and timestamp were stored
        before, or earlier in these batches, counts as a duplicate."""
        results = []
        fresh: list[Row] = []
        with self._write_lock:
            self._finish()
            keys = {(row[0], row[2]) for rows in batches for row in rows}
            seen = self._stored(keys)
            for rows in batches:
                inserted = 0
                for row in rows:
                    if (row[0], row[2]) not in seen:
                        seen.add((row[0], row[2]))
                        fresh.append(row)
                        inserted += 1
                results.append(AppendResult(inserted=inserted, duplicates=len(rows) - inserted))
            if fresh:
                self._write(fresh)
        return results

    def _stored(self, keys: set[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these (id, timestamp) keys the events table holds; asked a share of
        the keys at a time (``LOOKUP_SQL_BYTES``)."""
        seen: set[tuple[str, int]] = set()
        ordered = sorted(keys, key=lambda key: key[1])  # a share's seconds close together
        start = 0
        while start < len(ordered):
            end, ids, size = start, set(), 0
            while end < len(ordered) and size < LOOKUP_SQL_BYTES:
                quoted = _quoted(ordered[end][0])
                size += len(quoted.encode()) + 2
                ids.add(quoted)
                end += 1
            seen |= {
                (str(event_id), int(ts))
                for event_id, ts in self._con.rows(
                    f"SELECT id, ts FROM events WHERE ts >= {ordered[start][1]} "
                    f"AND ts <= {ordered[end - 1][1]} AND id IN ({', '.join(ids)})"
                )
            }
            start = end
        return seen

    def _write(self, fresh: list[Row]) -> None:
        """Insert events not stored yet. The token names the events by id and timestamp: a
        second process that found the same events new, at the same moment, sends the same
        token, and ClickHouse drops its insert (and what the views would add) as a repeat."""
        keys = sorted(f"{row[0]}\0{row[2]}" for row in fresh)
        token = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        block = numbered(rows_table(fresh), self._next_seq).select(["seq", *COLUMNS])
        self._next_seq += len(fresh)  # taken, whether or not the insert lands
        if self._journal is not None:
            try:
                self._journal.write(block, token)
            except OSError as exc:
                raise WriteUnfinished(f"the insert's journal could not be written: {exc}") from exc
        self._unfinished = (block, token)
        self._finish()

    def _finish(self) -> None:
        """Send the unfinished insert, under its token: ClickHouse drops each part it has
        (the events', a rollup view's) and writes the rest. The rollups' views fill their
        tables in this same insert."""
        if self._unfinished is None:
            return
        block, token = self._unfinished
        try:
            self._con.insert("events", block, token)
        except Exception as exc:  # the drivers' errors have no common base
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WriteUnfinished(
                f"an insert into {self._where} failed midway ({reason}); it is sent again before the next"
            ) from exc
        self._unfinished = None
        if self._journal is not None:
            self._journal.finished()
        note_spans(self._spans, block)

    def rollup_rows(self) -> dict[str, int]:
        """Rows in each rollup table, by table name (parts not merged yet counted apart;
        on a cluster, this node's shard's)."""
        stored = {
            str(table).removesuffix("_local"): int(rows)
            for table, rows in self._con.rows(
                "SELECT table, sum(rows) FROM system.parts WHERE active "
                "AND database = currentDatabase() AND table LIKE 'rollup\\_%' GROUP BY table"
            )
        }
        return {r.table: stored.get(r.table, 0) for r in ALL_ROLLUPS}

    def unrolled(self) -> int:
        """Events not in the rollups yet: none, as the views fill them in the events' insert."""
        return 0

    def rebuild_rollups(self) -> None:
        """Fill every rollup again from the raw events (after a doubt, or a failure between
        an insert's parts); while no other process inserts."""
        with self._write_lock:
            rebuild_rollups(self._con, self._cluster)
            # The emptied tables forgot the tokens that make sending an insert again harmless;
            # what part of it was stored is in the rollups now, and the client sends the rest.
            self._unfinished = None
            if self._journal is not None:
                self._journal.clear()
        self._rows_read_at = -ROWS_MAX_AGE

    def plan(self, query: Aggregation) -> Plan | None:
        """The rollups that would answer ``query``, or None for raw events alone."""
        span = self._spans.get(query.kind)
        if span is None or query.gauge:
            return None
        seconds = span[2] - span[1] + 1
        now = time.monotonic()
        if now - self._rows_read_at > ROWS_MAX_AGE:
            self._rows = self.rollup_rows()
            self._rows_read_at = now
        extents = {r.table: Extent(self._rows.get(r.table, 0), seconds) for r in ROLLUPS[query.kind]}
        return choose(query, ROLLUPS[query.kind], Extent(span[0], seconds), extents)

    def aggregate(
        self, query: Aggregation, *, using: Plan | Literal["auto"] | None = "auto"
    ) -> list[AggregateRow]:
        """``using`` is the plan to read by (None: raw events only); by default the router's."""
        if not query.buckets:
            return []
        groups = [check_column(g) for g in query.group_by]
        metrics = [check_column(m) for m in query.metrics]
        order = ", ".join(["b", *(f"{g} ASC NULLS FIRST" for g in groups)])
        if query.gauge:
            sql, sums = self._gauge_sql(query, groups, metrics), ["value"]
        else:
            plan = self.plan(query) if using == "auto" else using
            sql, sums = self._sum_sql(query, groups, metrics, plan), metrics
        # The sums as 64-bit integers where they fit (NULL where one does not): chDB hands a
        # 128-bit integer over as 16 bytes, each made an int in Python.
        narrow = ", ".join(["b", *groups, *(f"accurateCastOrNull({m}, 'Int64') AS {m}" for m in sums)])
        rows = self._con.rows(f"SELECT {narrow} FROM ({sql}) ORDER BY {order}")
        n = len(groups)
        if past_64_bits(rows, n):
            rows = self._con.rows(f"{sql} ORDER BY {order}")
        return [(int(r[0]), tuple(r[1 : 1 + n]), tuple(int(v) for v in r[1 + n :])) for r in rows]

    def aggregate_json(self, query: Aggregation, shape: ResultShape) -> list[EncodedBucket]:
        # ClickHouse writes 64- and 128-bit integers in JSON as strings by default; the
        # results are written in Python instead, from the same rows.
        return encode_results(self.aggregate(query), query, shape)

    @staticmethod
    def _filters(query: Aggregation) -> str:
        clauses = []
        for name, values in query.filters.items():
            column = check_column(name)
            if DIMENSIONS[name] == "boolean":
                clauses.append(f"{column} = {'true' if values[0] else 'false'}")
            else:
                clauses.append(f"{column} IN ({', '.join(_quoted(str(v)) for v in values)})")
        return "".join(f" AND {c}" for c in clauses)

    def _sum_sql(
        self,
        query: Aggregation,
        groups: list[str],
        metrics: list[str],
        plan: Plan | None,
        only: tuple[str, list[str]] | None = None,
    ) -> str:
        """Sums per bucket and group, from the router's rollups and raw events for the
        edges no rollup grain covers. Buckets after the first start on a width boundary;
        the first may start off one. ``only`` (a table, and dimensions) keeps the rows
        whose bucket and values of those dimensions are a row of the table, before they
        are summed."""
        first, last = int(query.buckets[0][0]), int(query.buckets[-1][1])
        width = int(query.width_seconds)
        columns = ", ".join([*groups, *(f"toInt128({m}) AS {m}" for m in metrics)])
        where = self._filters(query)

        def raw(start: int, end: int) -> str:
            return (
                f"SELECT ts AS t, {columns} FROM events WHERE kind = {_quoted(query.kind)} "
                f"AND ts >= {int(start)} AND ts < {int(end)}{where}"
            )

        if plan is None:
            parts = [raw(first, last)]
        else:
            parts = [
                f"SELECT b AS t, {columns} FROM {seg.rollup.table} "
                f"WHERE b >= {int(seg.start)} AND b < {int(seg.end)}{where}"
                for seg in plan.segments
            ]
            parts += [raw(a, b) for a, b in ((first, plan.start), (plan.end, last)) if a < b]
        select = ", ".join(
            [f"greatest(t - t % {width}, {first}) AS b", *groups, *(f"sum({m}) AS {m}" for m in metrics)]
        )
        source = " UNION ALL ".join(parts)
        kept = ""
        if only is not None:
            table, dims = only
            keys = "".join(f", {_join_key(d)}" for d in dims)
            kept = (
                f" WHERE (greatest(t - t % {width}, {first}){keys}) IN (SELECT DISTINCT b{keys} FROM {table})"
            )
        return f"SELECT {select} FROM ({source}){kept} GROUP BY {', '.join(['b', *groups])}"

    @classmethod
    def _gauge_sql(cls, query: Aggregation, groups: list[str], metrics: list[str]) -> str:
        """The vector-store gauge, linear in the reports, as on the embedded store: each
        report adds its size to its group and takes its store's previous size from the
        previous report's group; the changes are summed per bucket and carried forward by
        a running sum over the buckets (a later ingestion wins a same-second tie)."""
        (metric,) = metrics
        starts = [b[0] for b in query.buckets]
        first, end, width = int(starts[0]), int(query.buckets[-1][1]), int(query.width_seconds)
        carried = sorted({*groups, *(check_column(f) for f in query.filters)})
        window = "(PARTITION BY vector_store_id ORDER BY ts, seq)"
        now = "".join(f", {d}" for d in carried)
        before = "".join(f", lagInFrame({d}) OVER {window} AS before_{d}" for d in carried)
        as_before = "".join(f", before_{d} AS {d}" for d in carried)
        bucket = f"greatest(ts - ts % {width}, {first})"
        keys = "".join(f", {g}" for g in groups)
        reports = (
            f"SELECT ts, {metric} AS size, lagInFrame({metric}) OVER {window} AS size_before, "
            f"row_number() OVER {window} AS nth{now}{before} "
            f"FROM events WHERE kind = {_quoted(query.kind)} AND ts < {end}"
        )
        deltas = (
            f"SELECT {bucket} AS b, toInt128(size) AS delta{now} FROM reports "
            f"UNION ALL SELECT {bucket} AS b, -toInt128(size_before) AS delta{as_before} "
            "FROM reports WHERE nth > 1"
        )
        per_bucket = (
            f"SELECT b{keys}, sum(delta) AS delta FROM deltas WHERE 1{cls._filters(query)} GROUP BY b{keys}"
        )
        grid = f"SELECT arrayJoin({_ints(starts)}) AS b"
        if groups:
            present = f"SELECT DISTINCT {', '.join(groups)} FROM per_bucket"
            grid = f"SELECT starts.b AS b{keys} FROM ({grid}) AS starts CROSS JOIN ({present}) AS present"
            same = [f"isNotDistinctFrom(grid.{g}, per_bucket.{g})" for g in groups]
            matched = " AND ".join(["grid.b = per_bucket.b", *same])
            partition = f"PARTITION BY {', '.join(f'grid.{g}' for g in groups)} "
        else:
            matched = "grid.b = per_bucket.b"
            partition = ""
        shown = "".join(f", grid.{g} AS {g}" for g in groups)
        return (
            f"WITH reports AS ({reports}), deltas AS ({deltas}), per_bucket AS ({per_bucket}), "
            f"grid AS ({grid}), "
            f"running AS (SELECT grid.b AS b{shown}, sum(per_bucket.delta) "
            f"OVER ({partition}ORDER BY grid.b ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS value "
            f"FROM grid LEFT JOIN per_bucket ON {matched}) "
            f"SELECT {', '.join(['b', *groups, 'value'])} FROM running WHERE value > 0"
        )

    def aggregate_priced(self, query: PricedAggregation) -> list[PricedRow]:
        base = query.base
        if not base.buckets:
            return []
        groups = [check_column(g) for g in base.group_by]
        metrics = [check_column(m) for m in base.metrics]
        price_dims = [check_column(d) for d in query.price_dimensions]
        prices = f"prices_{uuid.uuid4().hex}"
        # Only the rows some price row is for are summed.
        fine = self._sum_sql(base, groups, metrics, self.plan(base), (prices, price_dims))
        keys = "".join(f"{g}, " for g in groups)
        # One line per item of each fine row, in one pass over it: ClickHouse inlines a
        # WITH subquery where it is used, so a UNION ALL per item summed the events again
        # for each item.
        pairs = ", ".join(f"({_quoted(item.item)}, {_quantity(item.terms)})" for item in query.items)
        lines = f"SELECT b, {keys}pair.1 AS item, pair.2 AS qty FROM ({fine}) ARRAY JOIN [{pairs}] AS pair"
        join = " AND ".join(
            ["lines.b = prices.b", "lines.item = prices.item"]
            + [f"{_join_key('lines.' + d)} = {_join_key('prices.' + d)}" for d in price_dims]
        )
        output = [
            "prices.line_item" if g == "line_item" else (f"lines.{g}" if g in groups else "NULL")
            for g in query.output
        ]
        dims = "".join(f", {d} {dimension_type(d)}" for d in price_dims)
        self._con.command(
            f"CREATE TABLE {prices} (b Int64{dims}, item String, line_item String, "
            "usd Nullable(Decimal128(18)), unit String) ENGINE = Memory"
        )
        try:
            self._con.insert(prices, price_table(query), prices)
            selected = ", ".join(f"{expr} AS o{i}" for i, expr in enumerate(output))
            # Summed in 76 digits: no sum of 128-bit quantities at 18-place prices passes it.
            rows = self._con.rows(
                f"WITH lines AS ({lines}) "
                f"SELECT lines.b AS b{', ' + selected if output else ''}, "
                f"sum(coalesce(toDecimal256(lines.qty, 0) * prices.usd, "
                f"toDecimal256(0, 18))) AS amount, sum(lines.qty) AS quantity, any(prices.unit) AS unit "
                f"FROM lines INNER JOIN {prices} AS prices ON {join} WHERE lines.qty > 0 "
                f"GROUP BY {', '.join(['b', *(f'o{i}' for i in range(len(output)))])} ORDER BY b "
                "SETTINGS join_use_nulls = 1"
            )
        finally:
            self._con.command(f"DROP TABLE IF EXISTS {prices}")
        n = len(query.output)
        return [
            (int(r[0]), tuple(r[1 : 1 + n]), Decimal(r[1 + n]), int(r[2 + n]), str(r[3 + n])) for r in rows
        ]

    def backup(self, target: Path | str) -> int:
        """Copy the events to a new DuckDB file (which ``openusage serve --db`` serves as it
        is); ingestion goes on meanwhile. The copy holds every event acknowledged before it
        began: no insert is under way while its last place is read."""
        from .copying import copy_events
        from .duckdb import DuckDBStore

        with self._write_lock:
            last = self.last_place()
        copy = DuckDBStore(target)
        try:
            return sum(step.copied for step in copy_events(self, copy, until=last))
        finally:
            copy.close()

    def last_place(self) -> int:
        ((last,),) = self._con.rows("SELECT max(seq) FROM events")
        return int(last or 0)

    def project_ids(self) -> list[str]:
        rows = self._con.rows("SELECT DISTINCT project_id FROM events WHERE project_id IS NOT NULL")
        return [str(row[0]) for row in rows]

    def stored_events(self, after: int, limit: int) -> list[Stored]:
        rows = self._con.rows(
            f"SELECT seq, {', '.join(COLUMNS)} FROM events WHERE seq > {int(after)} "
            f"ORDER BY seq LIMIT {int(limit)}"
        )
        return [(int(r[0]), tuple(r[1:])) for r in rows]

    def problem(self) -> str | None:
        if self._unfinished is None:
            return None
        return (
            "an insert failed midway and is not complete yet: it is sent again before the next insert; "
            "until then, answers may count part of it"
        )

    def close(self) -> None:
        self._con.close()
