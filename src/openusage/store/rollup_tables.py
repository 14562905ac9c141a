"""The rollups of the embedded store: DuckDB tables in a file of their own beside the events.

Ingestion only appends raw events, so a commit pays for no rollup. The rollups' file
(``<events file>.rollups``, attached to the events' database) has its own write-ahead log
and commits: the roller's and compaction's large commits never hold up ingestion's (2M
events over HTTP: 48k -> 66k events/s, docs/performance.md). Rollups are derived data:
a file without them gets them filled from the raw events. A background roller
folds the events past the *watermark* (the last event sequence number rolled up) into
every rollup and moves the watermark, in one transaction; a query reads the rollup and
the raw events past the watermark in one snapshot, so each event counts exactly once.

Rolling appends one row per (grain, group) of the events it folds in; compaction then
rewrites the days those rows fall in with one row per group, a run of days per
transaction (one day, or several while they hold few rows), while ingestion and queries
go on: DuckDB's snapshots show each query a run before or after.
Its work and memory follow what was rolled up since, never the size of the table (a
rewrite of a whole table ran out of a 512MB memory limit at 7M events).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate

import duckdb

from .base import DIMENSIONS
from .duckdb_names import ROLLUPS_DATABASE, quoted
from .duckdb_results import one_row
from .rollups import ROLLUPS, Rollup

ALL_ROLLUPS: tuple[Rollup, ...] = tuple(r for rollups in ROLLUPS.values() for r in rollups)

#: compaction waits until a table has this many new rows, or a quarter of its size
COMPACT_MIN_ROWS = 20_000
#: compaction rewrites a table a day of buckets at a time, or several days when together
#: they hold at most this many rows (a backfill touches hundreds of small days)
COMPACT_SPAN_ROWS = 100_000
#: rolling up sums at most this many events per statement: a GROUP BY's memory is
#: bounded so, however many events wait (a backlog, a rebuild); it does not spill to disk
FILL_MOST_EVENTS = 50_000
DAY = 86_400
#: the rollups' database, as SQL names it
DATABASE = quoted(ROLLUPS_DATABASE)
STATE = f"{DATABASE}.rollup_state"
DEFINITIONS = f"{DATABASE}.rollup_definitions"
#: the latest time of an event rolled up, per kind
LATEST = f"{DATABASE}.rollup_latest"


def rollups_path(path: str) -> str:
    """The rollups' file of the events' file at ``path``."""
    return f"{path}.rollups"


def qualified(rollup: Rollup) -> str:
    """The rollup's table, as SQL names it."""
    return f"{DATABASE}.{rollup.table}"


def attach(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Attach the rollups' file of the events' file at ``path``, made if missing."""
    con.execute(f"ATTACH ? AS {DATABASE}", [rollups_path(path)])


def _create_sql(rollup: Rollup) -> str:
    dims = [f"{d} {'BOOLEAN' if DIMENSIONS[d] == 'boolean' else 'VARCHAR'}" for d in rollup.dimensions]
    # Sums of sums: 128 bits, so no number of events at the largest metric values overflows.
    metrics = [f"{m} HUGEINT NOT NULL" for m in rollup.metrics]
    return f"CREATE TABLE {qualified(rollup)} ({', '.join(['b BIGINT NOT NULL', *dims, *metrics])})"


def _sums(rollup: Rollup) -> str:
    return ", ".join(f"sum({m})::HUGEINT AS {m}" for m in rollup.metrics)


def _groups(rollup: Rollup) -> str:
    return ", ".join(["b", *rollup.dimensions])


def _fill(cursor: duckdb.DuckDBPyConnection, rollup: Rollup, after: int, upto: int) -> int:
    """Pre-aggregate the events of the rollup's kind with ``after < seq <= upto`` into its
    table, ``FILL_MOST_EVENTS`` at a time; the rows added."""
    sql = (
        f"INSERT INTO {qualified(rollup)} SELECT ts - ts % {rollup.grain} AS b, "
        f"{', '.join([*rollup.dimensions, _sums(rollup)])} FROM events "
        f"WHERE kind = '{rollup.kind}' AND seq > $1 AND seq <= $2 GROUP BY {_groups(rollup)}"
    )
    added = 0
    for start in range(after, upto, FILL_MOST_EVENTS):
        (count,) = one_row(cursor, sql, [start, min(start + FILL_MOST_EVENTS, upto)])
        added += int(count)
    return added


def _tables(cursor: duckdb.DuckDBPyConnection, database: str) -> set[str]:
    rows = cursor.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [database])
    return {str(name) for (name,) in rows.fetchall()}


class RollupTables:
    """The watermark, and how many rows of each table are not compacted yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: rows appended to each table since it was last compacted
        self._pending: dict[str, int] = {r.table: 0 for r in ALL_ROLLUPS}
        #: rows in each table, for the router's cost model
        self.rows: dict[str, int] = dict.fromkeys(self._pending, 0)
        #: the days of buckets rows were appended to since the table was last compacted
        self._touched: dict[str, set[int]] = {table: set() for table in self._pending}

    @staticmethod
    def watermark(cursor: duckdb.DuckDBPyConnection) -> int:
        """The last event sequence number every rollup holds, in the cursor's snapshot."""
        (rolled,) = one_row(cursor, f"SELECT max(rolled) FROM {STATE}")
        return int(rolled)

    @staticmethod
    def rolled_from(cursor: duckdb.DuckDBPyConnection, kind: str, ts: int) -> bool:
        """Whether an event of ``kind`` at or after ``ts`` is rolled up, in the cursor's
        snapshot: only then do the rollups' rows count one past ``ts``."""
        (found,) = one_row(
            cursor, f"SELECT EXISTS (SELECT 1 FROM {LATEST} WHERE kind = $1 AND ts >= $2)", [kind, ts]
        )
        return bool(found)

    @staticmethod
    def _note_latest(cursor: duckdb.DuckDBPyConnection, kind: str, ts: int) -> None:
        # Insert and delete, as the watermark: one row per kind, the latest.
        cursor.execute(
            f"INSERT INTO {LATEST} SELECT $1, $2 WHERE NOT EXISTS "
            f"(SELECT 1 FROM {LATEST} WHERE kind = $1 AND ts >= $2)",
            [kind, ts],
        )
        cursor.execute(f"DELETE FROM {LATEST} WHERE kind = $1 AND ts < $2", [kind, ts])

    @staticmethod
    def _set_watermark(cursor: duckdb.DuckDBPyConnection, rolled: int) -> None:
        # Insert and delete rather than update: in DuckDB 2.0 an UPDATE here left the
        # database unable to checkpoint ("other write transactions active").
        cursor.execute(f"INSERT INTO {STATE} VALUES (?)", [rolled])
        cursor.execute(f"DELETE FROM {STATE} WHERE rolled <> ?", [rolled])

    def open(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Create missing tables and rebuild any whose definition changed, up to the watermark."""
        self._move_in(cursor)
        cursor.execute("BEGIN TRANSACTION")
        try:
            self._create_state(cursor)
            if one_row(cursor, f"SELECT count(*) FROM {STATE}") == (0,):
                cursor.execute(f"INSERT INTO {STATE} VALUES (0)")
            existing = _tables(cursor, ROLLUPS_DATABASE)
            if "rollup_latest" not in existing:  # new, or a file from before it
                cursor.execute(f"CREATE TABLE {LATEST} (kind VARCHAR NOT NULL, ts BIGINT NOT NULL)")
                cursor.execute(
                    f"INSERT INTO {LATEST} SELECT kind, max(ts) FROM events WHERE seq <= $1 GROUP BY kind",
                    [self.watermark(cursor)],
                )
            stored = dict(cursor.execute(f"SELECT name, definition FROM {DEFINITIONS}").fetchall())
            stale = [r for r in ALL_ROLLUPS if stored.get(r.table) != r.definition or r.table not in existing]
            kept = {"rollup_definitions", "rollup_state", "rollup_latest"}
            retired = existing - {*kept, *(r.table for r in ALL_ROLLUPS)}
            for name in retired:
                cursor.execute(f"DROP TABLE {DATABASE}.{name}")
                cursor.execute(f"DELETE FROM {DEFINITIONS} WHERE name = ?", [name])
            self._recreate(cursor, stale, self.watermark(cursor))
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        self._count(cursor, ALL_ROLLUPS)
        self._filled(cursor, stale)

    @staticmethod
    def _create_state(cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {DEFINITIONS} (name VARCHAR PRIMARY KEY, definition VARCHAR)"
        )
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {STATE} (rolled BIGINT NOT NULL)")

    def _move_in(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Move the rollups of a file from before they had a file of their own (store
        version 3) into theirs: copied in one transaction (rather than filled again from
        every event), then dropped from the events' file in another. After a crash between
        the two, the copy is there and the next open drops the old tables."""
        (events_database,) = one_row(cursor, "SELECT current_database()")
        old = {t for t in _tables(cursor, str(events_database)) if t.startswith("rollup_")}
        if not old:
            return
        cursor.execute("BEGIN TRANSACTION")
        try:
            if not _tables(cursor, ROLLUPS_DATABASE):  # else the copy was made before a crash
                self._create_state(cursor)
                for name in sorted(old):
                    if name in ("rollup_definitions", "rollup_state"):
                        cursor.execute(f"INSERT INTO {DATABASE}.{name} SELECT * FROM {name}")
                    else:
                        cursor.execute(f"CREATE TABLE {DATABASE}.{name} AS SELECT * FROM {name}")
                cursor.execute("COMMIT")
                cursor.execute("BEGIN TRANSACTION")
            for name in old:
                cursor.execute(f"DROP TABLE {name}")
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise

    def rebuild(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Every rollup again from all raw events, in one transaction."""
        cursor.execute("BEGIN TRANSACTION")
        try:
            (last,) = one_row(cursor, "SELECT coalesce(max(seq), 0) FROM events")
            # Emptied and filled, not dropped and created: the tables match their
            # definitions already (``open`` saw to it), and a dropped table left DuckDB
            # 2.0 refusing to checkpoint.
            for rollup in ALL_ROLLUPS:
                cursor.execute(f"DELETE FROM {qualified(rollup)}")
                _fill(cursor, rollup, 0, last)
            cursor.execute(f"DELETE FROM {LATEST}")
            cursor.execute(f"INSERT INTO {LATEST} SELECT kind, max(ts) FROM events GROUP BY kind")
            self._set_watermark(cursor, last)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        self._count(cursor, ALL_ROLLUPS)
        self._filled(cursor, ALL_ROLLUPS)

    def _filled(self, cursor: duckdb.DuckDBPyConnection, rollups: Iterable[Rollup]) -> None:
        """After tables were filled from every event, a share at a time: all their rows are
        to be compacted, in every day that has events of their kind."""
        rollups = list(rollups)
        if not rollups:
            return
        days: dict[str, set[int]] = {}
        for kind, day in cursor.execute(f"SELECT DISTINCT kind, ts - ts % {DAY} FROM events").fetchall():
            days.setdefault(kind, set()).add(int(day))
        with self._lock:
            for rollup in rollups:
                self._pending[rollup.table] = self.rows[rollup.table]
                self._touched[rollup.table] = set(days.get(rollup.kind, ()))

    def _recreate(self, cursor: duckdb.DuckDBPyConnection, rollups: Iterable[Rollup], upto: int) -> None:
        for rollup in rollups:
            cursor.execute(f"DROP TABLE IF EXISTS {qualified(rollup)}")
            cursor.execute(_create_sql(rollup))
            _fill(cursor, rollup, 0, upto)
            cursor.execute(
                f"INSERT OR REPLACE INTO {DEFINITIONS} VALUES (?, ?)", [rollup.table, rollup.definition]
            )

    def _count(self, cursor: duckdb.DuckDBPyConnection, rollups: Iterable[Rollup]) -> None:
        for rollup in rollups:
            (self.rows[rollup.table],) = one_row(cursor, f"SELECT count(*) FROM {qualified(rollup)}")

    def roll(self, cursor: duckdb.DuckDBPyConnection, upto: int) -> int:
        """Fold the events past the watermark, up to sequence number ``upto``, into the
        rollups; the events folded. Every event up to ``upto`` must be committed."""
        added: list[tuple[str, int, list[int]]] = []
        cursor.execute("BEGIN TRANSACTION")
        try:
            rolled = self.watermark(cursor)
            if upto <= rolled:
                cursor.execute("COMMIT")
                return 0
            days: dict[str, list[int]] = {}
            latest: dict[str, int] = {}
            for kind, day, last in cursor.execute(
                f"SELECT kind, ts - ts % {DAY}, max(ts) FROM events "
                "WHERE seq > $1 AND seq <= $2 GROUP BY 1, 2",
                [rolled, upto],
            ).fetchall():
                days.setdefault(kind, []).append(int(day))
                latest[kind] = max(latest.get(kind, last), last)
            for kind, ts in latest.items():
                self._note_latest(cursor, kind, ts)
            for kind, touched in days.items():
                for rollup in ROLLUPS.get(kind, ()):
                    added.append((rollup.table, _fill(cursor, rollup, rolled, upto), touched))
            self._set_watermark(cursor, upto)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        with self._lock:
            for table, count, touched in added:
                self._pending[table] += count
                self.rows[table] += count
                self._touched[table].update(touched)
        return upto - rolled

    def due(self) -> bool:
        """Whether some table has enough new rows to be worth compacting."""
        with self._lock:
            return any(self._is_due(table) for table in self._pending)

    def _is_due(self, table: str) -> bool:
        return self._pending[table] >= max(COMPACT_MIN_ROWS, self.rows[table] // 4)

    def compact(self, cursor: duckdb.DuckDBPyConnection, force: bool) -> int:
        """Rewrite the days rows were appended to with one row per bucket and group, in
        time order; the tables compacted. Without ``force``, only the tables that are due.

        A run of days at a time (see ``_spans``), each in its own transaction: rows of a run
        are deleted together, and the table was written in time order, so whole row groups
        empty out rather than rows here and there. A table is due once its new rows are a
        quarter of it, so the rewriting costs a bounded amount per row rolled up. The caller
        makes sure no roll runs meanwhile.
        """
        with self._lock:
            wanted = [r for r in ALL_ROLLUPS if self._pending[r.table] and (force or self._is_due(r.table))]
        if wanted:
            # Rows deleted before they were ever checkpointed stay in the file at later
            # checkpoints (154,240 rows stored for 100,000 live in a test): the rolled-up
            # rows are written out first.
            cursor.execute(f"CHECKPOINT {DATABASE}")
        done = 0
        for rollup in wanted:
            table = rollup.table
            with self._lock:
                pending, days = self._pending[table], sorted(self._touched[table])
                self._pending[table] = 0
                self._touched[table].clear()
            spans = self._spans(cursor, rollup, days)
            for start, end in spans:
                try:
                    self._compact_span(cursor, rollup, start, end)
                except BaseException:
                    with self._lock:  # the rows are still there; try again another time
                        self._pending[table] += pending
                        self._touched[table].update(d for d in days if d >= start)
                    raise
            self._count(cursor, [rollup])
            done += 1
        return done

    @staticmethod
    def _spans(cursor: duckdb.DuckDBPyConnection, rollup: Rollup, days: list[int]) -> list[tuple[int, int]]:
        """The touched ``days`` (sorted) in runs ``[start, end)`` of at most COMPACT_SPAN_ROWS
        rows, counting every day of a run, touched or not; a bigger day makes a run alone."""
        if not days:
            return []
        rows = dict(
            cursor.execute(
                f"SELECT b - b % {DAY}, count(*) FROM {qualified(rollup)} "
                "WHERE b >= $1 AND b < $2 GROUP BY 1",
                [days[0], days[-1] + DAY],
            ).fetchall()
        )
        with_rows = sorted(rows)
        cumulative = list(accumulate(rows[day] for day in with_rows))

        def before(day: int) -> int:
            """Rows in the days before ``day``."""
            n = bisect_left(with_rows, day)
            return cumulative[n - 1] if n else 0

        spans: list[tuple[int, int]] = []
        start = previous = days[0]
        for day in days[1:]:
            if before(day + DAY) - before(start) > COMPACT_SPAN_ROWS:
                spans.append((start, previous + DAY))
                start = day
            previous = day
        spans.append((start, previous + DAY))
        return spans

    @staticmethod
    def _compact_span(cursor: duckdb.DuckDBPyConnection, rollup: Rollup, start: int, end: int) -> None:
        in_span = f"b >= {int(start)} AND b < {int(end)}"
        cursor.execute("BEGIN TRANSACTION")
        try:
            # A temporary table, not a new one renamed: in DuckDB 2.0 renaming a table
            # left the database unable to checkpoint.
            cursor.execute(
                f"CREATE TEMP TABLE compacted AS SELECT {_groups(rollup)}, {_sums(rollup)} "
                f"FROM {qualified(rollup)} WHERE {in_span} GROUP BY {_groups(rollup)}"
            )
            cursor.execute(f"DELETE FROM {qualified(rollup)} WHERE {in_span}")
            # In time order, and within a bucket by group: a filtered read (one project's
            # users and keys) then skips the vectors of other groups (9,812 of 480,892
            # rows at 1M events: 24.3 -> 20.0 ms) and, where a day spans row groups,
            # whole row groups.
            ordered = f"SELECT * FROM compacted ORDER BY {_groups(rollup)}"
            cursor.execute(f"INSERT INTO {qualified(rollup)} {ordered}")
            cursor.execute("DROP TABLE compacted")
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
