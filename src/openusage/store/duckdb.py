"""The embedded store: one DuckDB file, one wide columnar table of raw events, and rollups
in a file of their own beside it (``rollup_tables``).

Each event kind uses the columns its catalogue entry names; the others stay NULL, which a
columnar file stores almost for free. Raw events are kept for idempotency and so that
the pre-aggregated rollups (``rollup_tables``) can be rebuilt from them. A query reads
the rollups the router picks (``rollups.choose``), and raw events for the edges of its
range that no rollup grain covers and for the events not rolled up yet.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .base import (
    COLUMN_DEFAULTS,
    COLUMNS,
    DIMENSIONS,
    METRIC_COLUMNS,
    AggregateRow,
    Aggregation,
    AmountsOutOfRange,
    AppendResult,
    EncodedBucket,
    PricedAggregation,
    PricedRow,
    ResultShape,
    Row,
    Stored,
    StoreFull,
    StoreOutOfMemory,
    StoreRestarting,
    StoreUnavailable,
    WriteUnfinished,
    check_column,
    encode_results,
    memory_bytes,
    past_64_bits,
)
from .duckdb_names import BACKUP_DATABASE, quoted
from .duckdb_reopening import ReopeningConnection
from .duckdb_results import one_row
from .event_columns import Column, EventColumns
from .recent_keys import HOUR, Hashes, RecentKeys, floor_for, hour_ranges
from .rollup_tables import DATABASE, RollupTables, attach, qualified, rollups_path
from .rollups import ROLLUPS, Extent, Plan, choose
from .schema import prepare

log = logging.getLogger("openusage.store")
P = ParamSpec("P")
R = TypeVar("R")

#: seconds between rolls; events committed meanwhile are read raw, so this only trades
#: a little query work for fewer, larger rolls
ROLL_INTERVAL = 0.2
#: a roll costs about the same whatever it folds in, so a trickle of events (a gateway's
#: calls) is folded in at most this often; as many events as this roll at once
ROLL_QUIET_SECONDS = 2.0
ROLL_MIN_EVENTS = 5_000
#: DuckDB invalidates the whole database when a write meets a full disk, and then answers
#: nothing until reopened: so a write needs this much room free besides the log it may
#: have to checkpoint into the file, and is refused (nothing written) without it
MIN_FREE_BYTES = 64 * 2**20
#: a generous size of one event, for the room a batch needs
EVENT_BYTES = 512
#: a commit of at most this many events within this many seconds looks for retries the
#: way that plans fastest (``_known_few_sql``)
FEW_EVENTS = 64
FEW_EVENTS_SECONDS = 60
#: DuckDB checkpoints by itself past this much write-ahead log, and a checkpoint is when it
#: reclaims the rows compaction deleted: fewer, larger ones cost less (16MB, its default,
#: made appending 2M events a quarter slower). It does so only when no other transaction is
#: running, which a busy server seldom sees; then the roller asks for one.
CHECKPOINT_WAL_BYTES = 64 * 2**20
#: after this long without a commit, the roller checkpoints what the log holds (if at
#: least this much): until then, scans step over the rows compaction deleted and read the
#: appended ones uncompressed (users x keys of a project at 10M: 50 ms in process after
#: ingesting 2M events, 42 after a checkpoint, 39 before them)
QUIET_SECONDS = 2.0
QUIET_CHECKPOINT_WAL_BYTES = 2**20
#: how many stored events' keys are held in memory (8 bytes each), newest first, so that a
#: commit reads the table only for keys older than these or possibly stored (``recent_keys``)
RECENT_KEYS = 4_000_000
#: they are read back on opening this many at a time: all 4M at once raised the peak
#: memory of opening a 100M-event store from 630 to 805 MiB, 250,000 at a time to 678
FILL_KEYS = 250_000
#: what DuckDB may hold in memory unless told otherwise (its own default, 80% of RAM, let
#: its cache grow with the file: 1.7 GiB at 30M events). 10M events and the query mix ran
#: under it at full speed, the server's peak 746 MiB (docs/performance.md).
DEFAULT_MEMORY_LIMIT = "512MB"
#: once DuckDB's memory passes this share of its limit, the roller evicts cached blocks down
#: to ``ROOM_TO`` of it: at the limit every query's buffers evict cached blocks and have
#: their pages given back to the system and faulted in again (55% of a query's CPU was the
#: kernel's): at 100M events the usage queries took 19-48% longer with DuckDB's cache full
ROOM_ABOVE = 0.75
ROOM_TO = 0.5
#: how DuckDB says it found no memory, in errors of other kinds than its out-of-memory one
OUT_OF_MEMORY_WORDS = ("could not allocate block", "failed to allocate data", "failed to pin block")


ARROW_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "kind": pa.string(),
    "ts": pa.int64(),
    **{name: pa.bool_() if kind == "boolean" else pa.string() for name, kind in DIMENSIONS.items()},
    **{name: pa.int64() for name in METRIC_COLUMNS},
}
#: what the events' table stores for a column an insert leaves out (``schema.py``)
DEFAULTS: dict[str, Any] = {name: COLUMN_DEFAULTS[name] for name in (*DIMENSIONS, *METRIC_COLUMNS)}


def rows_table(rows: Sequence[Row]) -> pa.Table:
    """Rows as an Arrow table, which DuckDB reads column by column without a Python loop."""
    return batch_table([rows])


def batch_table(batches: Sequence[Sequence[Row]], *, given_only: bool = False) -> pa.Table:
    """Batches, as columns or rows, as one Arrow table.

    With ``given_only``, a column that holds its table default in every row (a dimension
    no row has, a metric at 0 in all) is left out, and the insert leaves it to the default:
    an event kind fills about half the columns, and every column DuckDB reads costs a
    commit about the same whatever its rows (8 rows of all 37 columns: 0.96 ms to read,
    docs/performance.md)."""
    # Rows are read into columns once for a run of batches (single events come a few dozen
    # to a commit), columns stay as they are.
    parts: list[EventColumns | list[Row]] = []
    for batch in batches:
        if isinstance(batch, EventColumns):
            parts.append(batch)
        elif parts and isinstance(parts[-1], list):
            parts[-1].extend(batch)
        else:
            parts.append(list(batch))
    held = [_held(part) for part in parts]
    arrays: dict[str, pa.Array] = {}
    for name in COLUMNS:
        values: list[Any] = []
        for columns, part in zip(held, parts, strict=True):
            values.extend(columns.get(name) or [COLUMN_DEFAULTS[name]] * len(part))
        if given_only and name in DEFAULTS and values.count(DEFAULTS[name]) == len(values):
            continue
        arrays[name] = pa.array(values, type=ARROW_TYPES[name])
    return pa.table(arrays)


def _held(batch: Sequence[Row]) -> Mapping[str, Column]:
    """A batch's columns by name; one it leaves out is at its default in every row."""
    if isinstance(batch, EventColumns):
        return batch.columns
    return dict(zip(COLUMNS, map(list, zip(*batch, strict=True)), strict=True)) if batch else {}


def note_spans(spans: dict[str, list[int]], stored: pa.Table) -> None:
    """Count newly stored events into each kind's ``[events, earliest ts, latest ts]``,
    the router's cost model."""
    kinds, stamps = stored["kind"], stored["ts"]
    distinct = pc.unique(kinds).to_pylist()
    for kind in distinct:
        # A commit mostly holds one kind. (Arrow's grouping engine took 0.2 ms for any
        # commit, a seventh of the writer's time with single events; this 0.013 ms.)
        of_kind = stamps if len(distinct) == 1 else pc.filter(stamps, pc.equal(kinds, kind))
        bounds = pc.min_max(of_kind)
        n, lo, hi = len(of_kind), bounds["min"].as_py(), bounds["max"].as_py()
        before = spans.get(kind, [0, lo, hi])
        spans[kind] = [before[0] + n, min(before[1], lo), max(before[2], hi)]


def numbered(table: pa.Table, first_seq: int) -> pa.Table:
    """The table with its rows' sequence numbers, from ``first_seq`` on."""
    seqs = pa.array(range(first_seq, first_seq + table.num_rows), type=pa.int64())
    return table.append_column("seq", seqs)


def price_table(query: PricedAggregation) -> pa.Table:
    """A priced aggregation's price rows as an Arrow table, for the engine to join."""
    prices = query.prices
    try:
        usd = pa.array([p[-2] for p in prices], type=pa.decimal128(38, 18))
    except pa.ArrowInvalid as exc:  # a price of more than 18 decimal places
        raise AmountsOutOfRange(str(exc)) from None
    return pa.table(
        {
            "b": pa.array([p[0] for p in prices], type=pa.int64()),
            **{
                d: pa.array([p[1 + i] for p in prices], type=ARROW_TYPES[d])
                for i, d in enumerate(query.price_dimensions)
            },
            "item": pa.array([p[-4] for p in prices], type=pa.string()),
            "line_item": pa.array([p[-3] for p in prices], type=pa.string()),
            "usd": usd,
            "unit": pa.array([p[-1] for p in prices], type=pa.string()),
        }
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _terms(terms: tuple[tuple[str, int], ...]) -> str:
    """A sum of metric columns with integer signs, as SQL."""
    return "(" + " + ".join(f"({int(sign)}) * {check_column(m)}" for m, sign in terms) + ")::HUGEINT"


def _narrowed(sql: str, groups: list[str], metrics: list[str]) -> str:
    """``sql`` with its 128-bit sums as 64-bit integers, NULL where one does not fit: DuckDB
    hands 64-bit integers to Python about five times faster (a page of 1,440 minutes
    fetched in 4 ms against 21)."""
    narrow = (f"TRY_CAST({m} AS BIGINT) AS {m}" for m in metrics)
    return f"SELECT {', '.join(['b', *groups, *narrow])} FROM ({sql})"


def open_problem(path: str, exc: Exception) -> str:
    """Why DuckDB could not open the file at ``path``, in a sentence: in use, or not a database."""
    text = str(exc)
    if "lock" in text.lower():
        return f"{path} is in use by another process (a running server?): {text.splitlines()[0]}"
    return f"cannot open {path} as a DuckDB database: {text.splitlines()[0]}"


def _in_database(
    method: Callable[Concatenate[DuckDBStore, P], R],
) -> Callable[Concatenate[DuckDBStore, P], R]:
    """A store method that uses the database: within ``ReopeningConnection.using``."""

    @functools.wraps(method)
    def run(store: DuckDBStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with store._db.using():
            return method(store, *args, **kwargs)

    return run


class DuckDBStore:
    """Events in one DuckDB file; safe to share between threads."""

    def __init__(
        self, path: Path | str, *, memory_limit: str | None = None, recent_keys: int = RECENT_KEYS
    ) -> None:
        self._path = str(path)
        self._config: dict[str, str | bool | int | float | list[str]] = {
            "checkpoint_threshold": f"{CHECKPOINT_WAL_BYTES // 2**20}MiB"
        }
        limit = memory_limit or DEFAULT_MEMORY_LIMIT
        self._memory_limit = memory_bytes(limit)  # refuses what DuckDB would misread
        self._config["memory_limit"] = limit
        self._recent_keys = recent_keys
        self._write_lock = threading.Lock()
        self._rollups = RollupTables()
        try:
            self._db = ReopeningConnection(self._connect, self._load)
        except duckdb.Error as exc:
            raise StoreUnavailable(open_problem(self._path, exc)) from exc
        try:
            self._load(self._con)
        except duckdb.Error as exc:
            self._db.close()
            raise StoreUnavailable(f"cannot read {self._path} or build its rollups: {exc}") from exc
        self._roll_due = threading.Event()
        self._maintenance_lock = threading.Lock()  # one roll or compaction at a time
        self._closing = threading.Event()
        self._roller = threading.Thread(target=self._roll_in_background, name="rollups", daemon=True)
        self._roller.start()
        # A retry carries the same id and timestamp: it is looked for among the events of
        # the batch's time range only, which row-group statistics find without an index;
        # first the events at the batch's seconds (numbers, cheap to compare), then their
        # ids. Late events widen every row group's time range, so at 3.3M events a day the
        # range held a day of events: comparing all their ids took 60-72 ms a commit, this 6-8.
        self._known_sql = (
            "SELECT id, ts FROM (SELECT e.id, e.ts FROM events AS e SEMI JOIN "
            "(SELECT DISTINCT unnest($3::BIGINT[]) AS ts) AS seconds ON e.ts = seconds.ts "
            "WHERE e.ts BETWEEN $1 AND $2) WHERE id IN (SELECT unnest($4::VARCHAR[]))"
        )
        # A few events close in time (single events, a gateway's calls): two list tests
        # plan faster than a join (1.0 against 2.8 ms, most of such a commit's look-up);
        # their seconds hold few events, so testing each against the lists costs little.
        self._known_few_sql = (
            "SELECT id, ts FROM events WHERE ts BETWEEN $1 AND $2 "
            "AND list_contains($3::BIGINT[], ts) AND list_contains($4::VARCHAR[], id)"
        )

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """The events' file, migrated if need be, with the rollups' file attached."""
        con = duckdb.connect(self._path, config=self._config)
        try:
            prepare(con, self._path)
            attach(con, self._path)
        except BaseException:
            con.close()
            raise
        return con

    def _load(self, con: duckdb.DuckDBPyConnection) -> None:
        """What the store keeps in memory about the stored events, read from the file: on
        opening it, and on opening it again after a failure (a commit whose checkpoint
        failed is durable, yet was not counted here)."""
        self._next_seq = int(one_row(con, "SELECT coalesce(max(seq), 0) + 1 FROM events")[0])
        self._seq_ceiling = self._next_seq - 1
        #: the last commit held events stored before: the next looks before it inserts
        self._resending = False
        #: per kind: [events, earliest ts, latest ts], for the router's cost model
        self._spans: dict[str, list[int]] = {
            kind: [n, lo, hi]
            for kind, n, lo, hi in con.execute(
                "SELECT kind, count(*), min(ts), max(ts) FROM events GROUP BY kind"
            ).fetchall()
        }
        self._recent = RecentKeys(0)  # opened again: the old keys go before the new are read
        self._recent = self._held_keys(con, self._recent_keys)
        self._rollups.open(con)

    @staticmethod
    def _held_keys(con: duckdb.DuckDBPyConnection, capacity: int) -> RecentKeys:
        """The keys of the newest stored events, as many as ``capacity``."""
        counts = con.execute(
            f"SELECT ts // {HOUR} AS hour, count(*) FROM events GROUP BY hour ORDER BY hour DESC"
        ).fetchall()
        floor = floor_for(counts, capacity)
        held = RecentKeys(capacity, floor)
        for first, end in hour_ranges([(h, n) for h, n in reversed(counts) if h >= floor], FILL_KEYS):
            keys = con.execute(
                "SELECT hash(id, ts) AS h, ts FROM events WHERE ts >= $1 AND ts < $2",
                [first * HOUR, end * HOUR],
            ).fetchnumpy()
            held.add(keys["h"], keys["ts"])
        return held

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The connection as last opened."""
        return self._db.con

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self._db.cursor()

    def append(self, rows: Sequence[Row]) -> AppendResult:
        return self.append_batches([rows])[0]

    def append_batches(self, batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        """Several batches in one transaction and one insert: one disk sync for all (group
        commit). An event whose id and timestamp were stored before, or earlier in these
        batches, counts as a duplicate."""
        try:
            with self._db.using():
                return self._append_batches(batches)
        except StoreRestarting as exc:
            # DuckDB may have made the commit durable before it failed (a checkpoint after
            # it): sent again, the batches count once.
            raise WriteUnfinished(str(exc)) from exc

    def _append_batches(self, batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        size = sum(len(batch) for batch in batches)
        self._check_room(size)
        table = batch_table(batches, given_only=True)
        stamps = table["ts"].to_numpy()
        names = ", ".join(table.column_names)
        insert = f"INSERT INTO events (seq, {names}) SELECT seq, {names} FROM incoming"
        with self._write_lock, self._within_memory():
            cursor = self._cursor()
            first = self._next_seq
            # Before the commit makes them visible: no reader sees a higher number.
            self._seq_ceiling = first + size - 1
            # Read by name from this frame (DuckDB's replacement scan): registering a view
            # and dropping it cost a commit of 16 single events 0.8 of its 3.5 ms in process.
            incoming = numbered(table, first)
            cursor.execute("BEGIN TRANSACTION")
            try:
                # Inserted as if every event were new, as most are: the insert hands back the
                # keys' hashes, which say whether any may be stored already (a statement of
                # its own for them cost a commit of 8 events 0.7 ms of 3.6). Resent events
                # come in runs (a client's resends after an outage): after a commit that met
                # one, look before inserting, until a commit holds none.
                insert_first = not self._resending
                if insert_first:
                    hashes = self._insert_hashed(cursor, insert, first, incoming)
                else:
                    hashes = cursor.execute("SELECT hash(id, ts) AS h FROM incoming").fetchnumpy()["h"]
                unsure = self._recent.unsure(hashes, stamps)
                if insert_first and not unsure.any() and np.unique(hashes).size == hashes.size:
                    fresh = np.ones(size, dtype=np.bool_)
                else:
                    if insert_first:  # a retry, or a key twice among these: again, new events only
                        cursor.execute("ROLLBACK")
                        cursor.execute("BEGIN TRANSACTION")
                    fresh = self._new(cursor, table["id"].to_pylist(), stamps.tolist(), unsure)
                    if not fresh.all():
                        incoming = numbered(table.filter(fresh), first)
                    if fresh.any():
                        cursor.execute(insert)
                cursor.execute("COMMIT")
            except BaseException:
                with suppress(duckdb.TransactionException):  # a COMMIT that failed ended it
                    cursor.execute("ROLLBACK")
                raise
            self._resending = not fresh.all()
            count = int(fresh.sum())
            self._recent.add(hashes[fresh], stamps[fresh])
            self._next_seq += count
            note_spans(self._spans, table.filter(fresh))
        if count:
            self._roll_due.set()
        results, place = [], 0
        for batch in batches:
            inserted = len(batch) if count == size else int(fresh[place : place + len(batch)].sum())
            results.append(AppendResult(inserted=inserted, duplicates=len(batch) - inserted))
            place += len(batch)
        return results

    @staticmethod
    def _insert_hashed(
        cursor: duckdb.DuckDBPyConnection, insert: str, first: int, incoming: pa.Table
    ) -> Hashes:
        """Run ``insert``, which reads ``incoming`` by its name, rows numbered from ``first``
        on; their keys' hashes, in order."""
        returned = cursor.execute(f"{insert} RETURNING seq, hash(id, ts) AS h").fetchnumpy()
        hashes = np.empty(len(returned["h"]), dtype=np.uint64)
        hashes[returned["seq"] - first] = returned["h"]
        return hashes

    def _new(
        self,
        cursor: duckdb.DuckDBPyConnection,
        ids: list[str],
        stamps: list[int],
        unsure: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """Which events (by id and timestamp) are new: neither stored (the ``unsure`` ones
        are looked for) nor earlier among these."""
        seen = self._stored(cursor, {(ids[i], stamps[i]) for i in np.flatnonzero(unsure)})
        fresh = np.zeros(len(ids), dtype=np.bool_)
        for place, key in enumerate(zip(ids, stamps, strict=True)):
            if key not in seen:
                seen.add(key)
                fresh[place] = True
        return fresh

    def _stored(self, cursor: duckdb.DuckDBPyConnection, keys: set[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these (id, timestamp) keys the table holds."""
        if not keys:
            return set()
        stamps = [ts for _, ts in keys]
        first, last = min(stamps), max(stamps)
        few = len(keys) <= FEW_EVENTS and last - first <= FEW_EVENTS_SECONDS
        known = [first, last, stamps, list({event_id for event_id, _ in keys})]
        return set(cursor.execute(self._known_few_sql if few else self._known_sql, known).fetchall())

    def free_bytes(self) -> int:
        """Room left on the database's disk, for this process."""
        stats = os.statvfs(os.path.dirname(os.path.abspath(self._path)))
        return stats.f_bavail * stats.f_frsize

    def _room_problem(self, events: int) -> str | None:
        free = self.free_bytes()
        needed = MIN_FREE_BYTES + self._wal_bytes() + events * EVENT_BYTES
        if free >= needed:
            return None
        return (
            f"the disk of {self._path} has {free // 2**20} MiB free; writes need {needed // 2**20} MiB. "
            "Free some space: writes resume by themselves, and reads go on meanwhile"
        )

    def _check_room(self, events: int) -> None:
        problem = self._room_problem(events)
        if problem is not None:
            raise StoreFull(problem)

    def problem(self) -> str | None:
        problem = None
        for _ in range(2):  # the second opens the database again, if the first found it failed
            try:
                with self._db.using():
                    one_row(self._cursor(), "SELECT 1")  # fails if DuckDB gave the database up
                    return self._room_problem(0)
            except StoreRestarting as exc:
                problem = str(exc)
        return problem

    @_in_database
    def last_place(self) -> int:
        (last,) = one_row(self._cursor(), "SELECT coalesce(max(seq), 0) FROM events")
        return int(last)

    @_in_database
    def project_ids(self) -> list[str]:
        rows = (
            self._cursor()
            .execute("SELECT DISTINCT project_id FROM events WHERE project_id IS NOT NULL")
            .fetchall()
        )
        return [str(row[0]) for row in rows]

    @_in_database
    def stored_events(self, after: int, limit: int) -> list[Stored]:
        rows = (
            self._cursor()
            .execute(
                f"SELECT seq, {', '.join(COLUMNS)} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                [after, limit],
            )
            .fetchall()
        )
        return [(int(r[0]), tuple(r[1:])) for r in rows]

    def _roll_in_background(self) -> None:
        try:
            with self._db.using():
                rolled = RollupTables.watermark(self._cursor())
        except StoreRestarting:  # logged where it failed; the loop opens the database again
            rolled = 0
        while not self._closing.is_set():
            quiet = not self._roll_due.wait(QUIET_SECONDS)
            try:
                with self._db.using():  # opens the database again, if it failed meanwhile
                    self._make_room(self._cursor())
            except StoreRestarting:  # logged where it failed
                pass
            except duckdb.Error:  # a faster query next time, no more: never stops the roller
                log.exception("could not evict DuckDB's cached blocks")
            if quiet and self._wal_bytes() < QUIET_CHECKPOINT_WAL_BYTES:
                continue
            if not quiet:
                self._roll_due.clear()  # before the roll, which takes every commit so far
                if self._next_seq - 1 - rolled < ROLL_MIN_EVENTS:
                    self._closing.wait(ROLL_QUIET_SECONDS - ROLL_INTERVAL)
            if self._closing.is_set():
                break
            if self._room_problem(0) is not None:  # rolling writes too: wait for room
                self._closing.wait(1.0)
                self._roll_due.set()
                continue
            try:
                with self._db.using():
                    cursor = self._cursor()
                    if not quiet:
                        rolled = self._next_seq - 1
                        self.roll(cursor=cursor)
                        if self._rollups.due():
                            self.compact(cursor=cursor)
                    if quiet or self._wal_bytes() > CHECKPOINT_WAL_BYTES:
                        # DuckDB refuses while a write is under way in the file: a rebuild of
                        # the rollups asked for meanwhile (which logged a failure each time), a
                        # commit.
                        with self._maintenance_lock:
                            cursor.execute(f"CHECKPOINT {DATABASE}")
                            with self._write_lock:
                                cursor.execute("CHECKPOINT")
            except StoreRestarting:  # logged where it failed; rolled up once opened again
                self._roll_due.set()
            except duckdb.OutOfMemoryException:  # what held the memory, for whoever sets limits
                log.exception(
                    "rolling up events ran out of memory; DuckDB's memory by use: %s", self._memory()
                )
            except duckdb.Error:  # the events are safe; the next roll tries again
                log.exception("rolling up events failed")
            self._closing.wait(ROLL_INTERVAL)  # let events gather, so each roll folds in many

    def _make_room(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Evict DuckDB's cached blocks down to ``ROOM_TO`` of its memory limit once they
        pass ``ROOM_ABOVE`` of it, so that queries find free memory.

        DuckDB evicts when its limit is lowered: it is lowered and set back at once. Under
        the write lock, so no commit needs memory meanwhile; a query that does evicts
        cached blocks as always, and only if what is in use passes the lowered limit
        could it run out of memory."""
        (used,) = one_row(cursor, "SELECT sum(memory_usage_bytes) FROM duckdb_memory()")
        if used is None or used <= self._memory_limit * ROOM_ABOVE:
            return
        with self._write_lock:
            try:
                cursor.execute(f"SET memory_limit = '{int(self._memory_limit * ROOM_TO)}B'")
            finally:
                cursor.execute(f"SET memory_limit = '{self._memory_limit}B'")

    @_in_database
    def _memory(self) -> str:
        """DuckDB's memory in use by what uses it, largest first, in MiB (spilled to disk)."""
        try:
            with self._own_cursor(None) as cursor:
                rows = cursor.execute(
                    "SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory() "
                    "WHERE memory_usage_bytes + temporary_storage_bytes > 0 ORDER BY memory_usage_bytes DESC"
                ).fetchall()
        except duckdb.Error as exc:  # asked while out of memory: must not stop the roller
            return f"unknown ({exc})"
        return ", ".join(f"{tag} {used / 2**20:.1f} ({spilled / 2**20:.1f})" for tag, used, spilled in rows)

    def _wal_bytes(self) -> int:
        """The write-ahead logs' bytes: the events' and the rollups'."""
        total = 0
        for path in (self._path, rollups_path(self._path)):
            with suppress(OSError):
                total += os.path.getsize(path + ".wal")
        return total

    @_in_database
    def roll(self, *, cursor: duckdb.DuckDBPyConnection | None = None) -> int:
        """Fold the events committed since the last roll into the rollups; how many.

        A background thread does this soon after each commit; queries are exact either
        way, as they read the events not yet rolled up from the raw table.
        """
        with self._maintenance_lock, self._own_cursor(cursor) as c:
            return self._rollups.roll(c, self._next_seq - 1)

    @_in_database
    def compact(self, *, force: bool = False, cursor: duckdb.DuckDBPyConnection | None = None) -> int:
        """Merge rollup rows appended since the last compaction; the tables compacted.

        The background thread does this as rows pile up; ``force`` compacts every table now.
        """
        with self._maintenance_lock, self._own_cursor(cursor) as c:
            return self._rollups.compact(c, force)

    @_in_database
    def rebuild_rollups(self) -> None:
        """Build every rollup again from the raw events (after a change or a doubt), and
        compact them (filled a share of the events at a time, a group has a row per share)."""
        with self._maintenance_lock, self._own_cursor(None) as c:
            self._rollups.rebuild(c)
            self._rollups.compact(c, force=True)

    def rollup_rows(self) -> dict[str, int]:
        """Rows in each rollup table, by table name."""
        return dict(self._rollups.rows)

    @_in_database
    def unrolled(self) -> int:
        """How many events are committed but not yet in the rollups."""
        with self._own_cursor(None) as cursor:
            return self._next_seq - 1 - RollupTables.watermark(cursor)

    def _out_of_memory(self, exc: duckdb.Error) -> StoreOutOfMemory:
        """DuckDB's running out of its memory as the store's own error, which names the
        limit; what held the memory is logged, for whoever sets limits."""
        log.warning("out of memory: %s; DuckDB's memory by use: %s", exc, self._memory())
        return StoreOutOfMemory(
            f"the store ran out of its memory limit ({self._memory_limit / 2**20:,.0f} MiB)"
        )

    @contextmanager
    def _within_memory(self) -> Iterator[None]:
        """A read or write that needs more memory than the limit allows (one bucket of more
        results than it holds, say) fails as ``StoreOutOfMemory``, not as an engine fault
        (a write after its rollback)."""
        try:
            yield
        except duckdb.OutOfMemoryException as exc:
            raise self._out_of_memory(exc) from None
        except duckdb.TransactionException as exc:
            # A COMMIT that finds no memory to write with fails as a transaction error
            # ("Failed to commit: could not allocate block ..."); nothing is stored.
            if not str(exc).startswith("TransactionContext Error: Failed to commit") or not any(
                words in str(exc) for words in OUT_OF_MEMORY_WORDS
            ):
                raise
            raise self._out_of_memory(exc) from None

    @contextmanager
    def _own_cursor(self, cursor: duckdb.DuckDBPyConnection | None) -> Iterator[duckdb.DuckDBPyConnection]:
        if cursor is not None:
            yield cursor
            return
        cursor = self._con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def plan(self, query: Aggregation, *, through_end: bool | None = None) -> Plan | None:
        """The rollups that would answer ``query``, or None for raw events alone.

        ``through_end``: whether the rollups may answer the grain the query's end falls
        in; by default, when no event of its kind is known at or after that end (the
        read checks it again in its snapshot)."""
        span = self._spans.get(query.kind)
        if span is None:
            return None
        if through_end is None:
            through_end = bool(query.buckets) and span[2] < query.buckets[-1][1]
        seconds = span[2] - span[1] + 1
        extents = {r.table: Extent(self._rollups.rows[r.table], seconds) for r in ROLLUPS[query.kind]}
        return choose(query, ROLLUPS[query.kind], Extent(span[0], seconds), extents, through_end=through_end)

    def _none_in_range(self, query: Aggregation) -> bool:
        """Whether no event of the query's kind can count in its buckets, so that it needs
        no read (a costs query asks every kind, most often of none). Spans only widen, and
        are widened before a write is acknowledged."""
        span = self._spans.get(query.kind)
        if not query.buckets or span is None:
            return True
        # A gauge carries reports from before its range forward.
        return span[1] >= query.buckets[-1][1] or (not query.gauge and span[2] < query.buckets[0][0])

    @_in_database
    def aggregate(
        self, query: Aggregation, *, using: Plan | Literal["auto"] | None = "auto"
    ) -> list[AggregateRow]:
        """``using`` is the plan to read by (None: raw events only); by default the router's."""
        if self._none_in_range(query):
            return []
        groups = [check_column(g) for g in query.group_by]
        metrics = [check_column(m) for m in query.metrics]
        order = ", ".join(["b", *(f"{g} NULLS FIRST" for g in groups)])
        if query.gauge:
            where, filter_params = self._filters(query, 6)
            carried = sorted({*groups, *(check_column(f) for f in query.filters)})
            gauge_sql = self._gauge_sql(groups, metrics, where, carried)
            starts = [b[0] for b in query.buckets]
            params = [
                starts,
                query.width_seconds,
                query.kind,
                starts[0],
                query.buckets[-1][1],
                *filter_params,
            ]

            def gauge(narrow: bool) -> list[tuple[Any, ...]]:
                sql = _narrowed(gauge_sql, groups, ["value"]) if narrow else gauge_sql
                return self._cursor().execute(f"{sql} ORDER BY {order}", params).fetchall()

            fetch = gauge
        else:
            plan = self.plan(query) if using == "auto" else using

            def sums(narrow: bool) -> list[tuple[Any, ...]]:
                def build(plan: Plan | None, rolled: int | None) -> tuple[str, list[Any]]:
                    sql, params = self._sum_sql(query, groups, metrics, plan, rolled)
                    sql = _narrowed(sql, groups, metrics) if narrow else sql
                    return f"{sql} ORDER BY {order}", params

                return self._read(self._cursor(), query, plan, build)

            fetch = sums
        n = len(groups)
        with self._within_memory():
            rows = fetch(True)
            if past_64_bits(rows, n):
                rows = fetch(False)
        return [(r[0], r[1 : 1 + n], r[1 + n :]) for r in rows]

    @_in_database
    def aggregate_json(self, query: Aggregation, shape: ResultShape) -> list[EncodedBucket]:
        """Each result written as JSON by DuckDB, and a bucket's results joined there, in
        ``aggregate``'s order: a Python object per result cost more than the query (users x
        keys of one project at 1M events, 9,700 results: 54 -> 31 ms). Sums past 64 bits
        are written exactly."""
        if query.gauge or self._none_in_range(query):
            return encode_results(self.aggregate(query), query, shape)
        groups = [check_column(g) for g in query.group_by]
        metrics = [check_column(m) for m in query.metrics]
        order = f" ORDER BY {', '.join(f'{g} NULLS FIRST' for g in groups)}" if groups else ""

        def written(narrow: bool) -> Callable[[Plan | None, int | None], tuple[str, list[Any]]]:
            sums = {m: f"CAST({m} AS BIGINT)" if narrow else m for m in metrics}
            values = {**dict.fromkeys(shape.fields, "NULL"), **sums, **{g: g for g in groups}}
            fields = ", ".join(
                [
                    f'"object" := {_literal(shape.object)}',
                    *(f'"{check_column(name)}" := {value}' for name, value in values.items()),
                ]
            )

            def build(plan: Plan | None, rolled: int | None) -> tuple[str, list[Any]]:
                sql, params = self._sum_sql(query, groups, metrics, plan, rolled)
                results = f"'[' || string_agg(to_json(struct_pack({fields})), ','{order}) || ']'"
                return f"SELECT b, count(*), {results} FROM ({sql}) GROUP BY b ORDER BY b", params

            return build

        plan = self.plan(query)
        with self._within_memory():
            try:
                # DuckDB writes 64-bit integers faster than 128-bit ones (9,700 results at 1M
                # events: 19.0 -> 16.6 ms); a sum past 64 bits fails its cast (never wraps),
                # and then every sum is written from 128 bits.
                rows = self._read(self._cursor(), query, plan, written(narrow=True))
            except duckdb.ConversionException:
                rows = self._read(self._cursor(), query, plan, written(narrow=False))
        return [(int(b), int(n), text) for b, n, text in rows]

    @staticmethod
    def _filters(query: Aggregation, first: int) -> tuple[str, list[Any]]:
        """The query's filters as SQL, numbered ``$first`` onwards, and their values."""
        clauses: list[str] = []
        params: list[Any] = []
        for name, values in query.filters.items():
            column = check_column(name)
            n = first + len(params)
            if DIMENSIONS[name] == "boolean":
                clauses.append(f"{column} = ${n}")
                params.append(bool(values[0]))
            else:
                # A list test DuckDB evaluates while scanning (a semi-join with the list's
                # rows read every column of the rows it then dropped: 17.8 against 13.5 ms
                # for 1h x 168 filtered at 10M events; as fast with 1,000 values).
                clauses.append(f"list_contains(${n}::VARCHAR[], {column})")
                params.append(list(values))
        return "".join(f" AND {c}" for c in clauses), params

    def _read(
        self,
        cursor: duckdb.DuckDBPyConnection,
        query: Aggregation,
        plan: Plan | None,
        build: Callable[[Plan | None, int | None], tuple[str, list[Any]]],
    ) -> list[tuple[Any, ...]]:
        """Run the query ``build`` makes for a plan and the watermark (None: every event
        visible is rolled up), in the snapshot the watermark was read in. A plan that reads
        past the query's end holds only if no event lies there in that snapshot; else the
        plan that stops at its last whole grain is read."""
        if plan is None:
            sql, params = build(None, None)
            return cursor.execute(sql, params).fetchall()
        cursor.execute("BEGIN TRANSACTION")
        try:
            rolled = RollupTables.watermark(cursor)
            # Raw events are read up to the end only, so only a rolled-up one can count
            # past it; the rollups' file notes the latest of each kind beside their rows,
            # in the same snapshot (the events' file has one of its own).
            if plan.through is not None and RollupTables.rolled_from(cursor, query.kind, plan.through):
                plan = self.plan(query, through_end=False)
            sql, params = build(plan, rolled if rolled < self._seq_ceiling else None)
            return cursor.execute(sql, params).fetchall()
        finally:
            cursor.execute("COMMIT")

    @classmethod
    def _sum_sql(
        cls,
        query: Aggregation,
        groups: list[str],
        metrics: list[str],
        plan: Plan | None,
        rolled: int | None,
        only: tuple[str, list[str]] | None = None,
    ) -> tuple[str, list[Any]]:
        """Sums per bucket and group, from the plan's rollups and raw events for the rest.

        $1 is the first bucket's start, $2 the width. Raw events past the
        watermark (``rolled``) are not in any rollup yet, so they are read raw too.
        Buckets after the first start on a width boundary; the first may start off one.
        ``only`` (a table, and dimensions) keeps the rows whose bucket and values of those
        dimensions are a row of the table, before they are summed.
        """
        first, last = query.buckets[0][0], query.buckets[-1][1]
        params: list[Any] = [first, query.width_seconds]

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        columns = ", ".join([*groups, *metrics])
        kind = _literal(query.kind)
        raw = f"SELECT ts AS t, {columns} FROM events WHERE kind = {kind} AND ts >= {{}} AND ts < {{}}"
        if plan is None:
            parts = [raw.format(param(first), param(last))]
        else:
            # Each part costs DuckDB planning time, so empty ones are left out.
            parts = [
                f"SELECT b AS t, {columns} FROM {qualified(seg.rollup)} "
                f"WHERE b >= {param(seg.start)} AND b < {param(seg.end)}"
                for seg in plan.segments
            ]
            if first < plan.start:
                parts.append(raw.format(param(first), param(plan.start)))
            if plan.end < last:
                parts.append(raw.format(param(plan.end), param(last)))
            if rolled is not None:
                end = min(plan.end, last)  # a plan may read rollups past the end, never events
                parts.append(raw.format(param(plan.start), param(end)) + f" AND seq > {param(rolled)}")
        where, filter_params = cls._filters(query, len(params) + 1)
        source = " UNION ALL ".join(part + where for part in parts)
        select = ", ".join(
            ["greatest(t - t % $2, $1) AS b", *groups, *(f"sum({m})::HUGEINT AS {m}" for m in metrics)]
        )
        kept = ""
        if only is not None:
            table, dims = only
            on = "".join(f" AND kept.{d} IS NOT DISTINCT FROM fine_rows.{d}" for d in dims)
            kept = (
                f" AS fine_rows SEMI JOIN (SELECT DISTINCT {', '.join(['b', *dims])} FROM {table}) AS kept "
                f"ON kept.b = greatest(fine_rows.t - fine_rows.t % $2, $1){on}"
            )
        sql = f"SELECT {select} FROM ({source}){kept} GROUP BY {', '.join(['b', *groups])}"
        return sql, [*params, *filter_params]

    @staticmethod
    def _gauge_sql(groups: list[str], metrics: list[str], where: str, carried: list[str]) -> str:
        """A gauge: the sum, per bucket and group, of each vector store's last report before
        the bucket's end, carried forward (a store at zero adds nothing; later ingestion
        wins a tie). In time linear in the reports: each report adds its size to its group
        and takes its store's previous size from the previous report's group; the deltas
        are summed per bucket, and a running sum over the buckets carries them forward.

        $1 bucket starts, $2 width, $3 kind, $4 first start, $5 the last bucket's end.
        """
        (metric,) = metrics
        now = "".join(f", {d}" for d in carried)
        before = "".join(f", lag({d}) OVER w AS before_{d}" for d in carried)
        as_before = "".join(f", before_{d} AS {d}" for d in carried)
        keys = ", ".join(groups)
        bucket = "greatest(ts - ts % $2, $4)"
        per_bucket = (
            f"SELECT b{', ' + keys if groups else ''}, sum(delta) AS delta FROM deltas WHERE TRUE{where} "
        )
        per_bucket += f"GROUP BY b{', ' + keys if groups else ''}"
        if groups:
            grid = (
                f"SELECT starts.b, present.* FROM starts, (SELECT DISTINCT {keys} FROM per_bucket) AS present"
            )
            matched = " AND ".join(
                ["grid.b = per_bucket.b", *(f"grid.{g} IS NOT DISTINCT FROM per_bucket.{g}" for g in groups)]
            )
            partition = f"PARTITION BY {', '.join(f'grid.{g}' for g in groups)} "
        else:
            grid = "SELECT starts.b FROM starts"
            matched = "grid.b = per_bucket.b"
            partition = ""
        shown = "".join(f", grid.{g} AS {g}" for g in groups)
        return (
            "WITH reports AS ("
            f"SELECT ts, {metric} AS size, lag({metric}) OVER w AS size_before, "
            f"row_number() OVER w AS nth{now}{before} "
            "FROM events WHERE kind = $3 AND ts < $5 "
            "WINDOW w AS (PARTITION BY vector_store_id ORDER BY ts, seq)), "
            f"deltas AS (SELECT {bucket} AS b, size AS delta{now} FROM reports "
            f"UNION ALL SELECT {bucket} AS b, -size_before AS delta{as_before} FROM reports WHERE nth > 1), "
            f"per_bucket AS ({per_bucket}), "
            "starts AS (SELECT unnest($1::BIGINT[]) AS b), "
            f"grid AS ({grid}), "
            f"running AS (SELECT grid.b AS b{shown}, sum(coalesce(per_bucket.delta, 0)) "
            f"OVER ({partition}ORDER BY grid.b)::HUGEINT AS value "
            f"FROM grid LEFT JOIN per_bucket ON {matched}) "
            f"SELECT {', '.join(['b', *groups, 'value'])} FROM running WHERE value > 0"
        )

    @_in_database
    def aggregate_priced(self, query: PricedAggregation) -> list[PricedRow]:
        base = query.base
        if self._none_in_range(base):
            return []
        groups = [check_column(g) for g in base.group_by]
        # The fine rows name their sums after the metrics, for the items' terms.
        metrics = [check_column(m) for m in base.metrics]
        keys = ", ".join([*groups, ""])
        # One pass over the fine rows, a line per item (a UNION ALL read them once per item).
        names = ", ".join(_literal(item.item) for item in query.items)
        quantities = ", ".join(_terms(item.terms) for item in query.items)
        lines = f"SELECT b, {keys}unnest([{names}]) AS item, unnest([{quantities}]) AS qty FROM fine"
        price_dims = [check_column(d) for d in query.price_dimensions]
        join = " AND ".join(
            ["lines.b = prices.b", "lines.item = prices.item"]
            + [f"lines.{d} IS NOT DISTINCT FROM prices.{d}" for d in price_dims]
        )
        output = [
            "prices.line_item" if g == "line_item" else (f"lines.{g}" if g in groups else "NULL")
            for g in query.output
        ]
        select = ", ".join(["lines.b", *output])

        def build(plan: Plan | None, rolled: int | None) -> tuple[str, list[Any]]:
            # Only the rows some price row is for are summed (a join after the sums made
            # DuckDB sum every row first: 128 against 70 ms at 1M events).
            fine, params = self._sum_sql(base, groups, metrics, plan, rolled, ("incoming_prices", price_dims))
            sql = (
                f"WITH fine AS ({fine}), lines AS ({lines}) "
                f"SELECT {select}, sum(coalesce(lines.qty * prices.usd, 0)), "
                f"sum(lines.qty), any_value(prices.unit) "
                f"FROM lines JOIN incoming_prices AS prices ON {join} WHERE lines.qty > 0 "
                f"GROUP BY {', '.join(['lines.b', *output])} ORDER BY lines.b"
            )
            return sql, params

        table = price_table(query)
        cursor = self._cursor()
        cursor.register("incoming_prices", table)
        try:
            with self._within_memory():
                rows = self._read(cursor, base, self.plan(base), build)
        except duckdb.OutOfRangeException as exc:  # past DECIMAL(38,18)
            raise AmountsOutOfRange(str(exc)) from None
        finally:
            cursor.unregister("incoming_prices")
        n = len(query.output)
        return [
            (int(r[0]), tuple(r[1 : 1 + n]), Decimal(r[1 + n]), int(r[2 + n]), str(r[3 + n])) for r in rows
        ]

    @_in_database
    def backup(self, target: Path | str) -> int:
        """Write a consistent copy of the events to a new DuckDB file; the events copied.

        One transaction sees one snapshot, so ingestion may go on while it runs.
        """
        cursor = self._con.cursor()
        try:
            (database,) = one_row(cursor, "SELECT current_database()")
            cursor.execute(f"ATTACH ? AS {quoted(BACKUP_DATABASE)}", [str(target)])
            try:
                cursor.execute(f"COPY FROM DATABASE {quoted(database)} TO {quoted(BACKUP_DATABASE)}")
                (count,) = one_row(cursor, f"SELECT count(*) FROM {quoted(BACKUP_DATABASE)}.events")
            finally:
                cursor.execute(f"DETACH {quoted(BACKUP_DATABASE)}")
        finally:
            cursor.close()
        return int(count)

    def close(self) -> None:
        """Stop the background roller, roll up and compact what is left, and close the file."""
        self._closing.set()
        self._roll_due.set()
        self._roller.join()
        try:
            if self._room_problem(0) is None:  # else the next open rolls up what is left
                self.roll()
                self.compact(force=True)
        except (duckdb.Error, StoreRestarting):
            # Out of memory or disk: the events are safe, and what is not rolled up yet is
            # read raw and rolled up after the next open. The file must still be closed.
            log.exception("rolling up at close failed")
        finally:
            self._db.close()
