"""The embedded store's DuckDB connection, opened again when DuckDB gives the database up.

DuckDB *invalidates* a database after an error it cannot continue from, most often a
checkpoint that failed (for memory: a query at the memory limit while the log is written
into the file; or for disk): from then on every statement fails, until the database is
opened again. What was committed is safe in the write-ahead log (DuckDB says of a commit
whose checkpoint failed: "COMMIT succeeded and is durable"), and opening the file replays
it. So the store does what DuckDB asks: once every statement under way has ended, it
closes every cursor (DuckDB keeps one instance per file and process while any is open)
and opens the file again; the request that met the failure gets a 503 to send again.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import duckdb

from .base import StoreRestarting

log = logging.getLogger("openusage.store")

#: a database that could not be opened again is tried again at most this often
REOPEN_EVERY_SECONDS = 1.0


def _fatal(error: BaseException) -> duckdb.FatalException | None:
    """The fatal error behind ``error``, if any: after one, the statements that clean up
    (a rollback, a table unregistered) fail too, with errors of other kinds."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, duckdb.FatalException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(exc: duckdb.Error) -> str:
    """DuckDB's own words for why the database was given up: every statement after the
    failure quotes it as the original error."""
    text = str(exc).strip()
    _, _, original = text.partition('Original error: "')
    return (original or text).splitlines()[0].rstrip('"')[:400]


class ReopeningConnection:
    """A DuckDB connection and each thread's cursor of it. Every use of the database runs
    within ``using()``; a use that meets an invalidated database marks it, and the next
    use opens it again (``open_database``, then ``reload`` to read the store's state from
    it) once no other is under way."""

    def __init__(
        self,
        open_database: Callable[[], duckdb.DuckDBPyConnection],
        reload: Callable[[duckdb.DuckDBPyConnection], None],
    ) -> None:
        self._open = open_database
        self._reload = reload
        self.con = open_database()
        self._local = threading.local()
        self._gate = threading.Condition()
        self._users = 0  # threads within using()
        self._generation = 0  # opened how many times again: a thread's cursor of an older one is closed
        #: every thread's cursor, to close before opening again; a thread's that ended goes
        #: with it (the server's worker threads come and go)
        self._cursors: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
        self._failure: str | None = None  # why the database is not usable, while it is not
        self._open_failed_at: float | None = None  # when opening it again last failed

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor of the database as last opened."""
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            with self._gate:
                local.cursor = self.con.cursor()
                self._cursors.add(local.cursor)
            local.generation = self._generation
        cursor: duckdb.DuckDBPyConnection = local.cursor
        return cursor

    @contextmanager
    def using(self) -> Iterator[None]:
        """Use the database; uses nest. Opens it again first if it was invalidated."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._gate:
                if self._failure is not None:
                    self._open_again()
                self._users += 1
        self._local.depth = depth + 1
        try:
            yield
        except duckdb.Error as error:
            exc = _fatal(error)
            if exc is None:
                raise
            reason = _reason(exc)
            with self._gate:
                if self._failure is None:
                    log.error("the database failed and will be opened again: %s", exc)
                    self._failure = reason
            raise StoreRestarting(
                f"the database failed ({reason}) and is being opened again; send the request again"
            ) from exc
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._gate:
                    self._users -= 1
                    self._gate.notify_all()

    def _open_again(self) -> None:
        """Called holding the gate: wait for the uses under way to end (each fails at once on
        an invalidated database), then close every cursor and open the database again."""
        while self._users and self._failure is not None:
            self._gate.wait()
        if self._failure is None:  # another thread opened it meanwhile
            return
        failed_at = self._open_failed_at
        if failed_at is not None and time.monotonic() - failed_at < REOPEN_EVERY_SECONDS:
            raise StoreRestarting(f"the database failed ({self._failure}) and could not be opened again yet")
        self._close_all()
        self._generation += 1
        try:
            self.con = self._open()
            self._reload(self.con)
        except Exception as exc:  # DuckDB's, or the file's (OSError), or the store's own
            self._open_failed_at = time.monotonic()
            log.error("the database could not be opened again: %s", exc)
            raise StoreRestarting(
                f"the database failed ({self._failure}) and could not be opened again "
                f"({str(exc).strip().splitlines()[0]})"
            ) from exc
        log.warning("the database was opened again after: %s", self._failure)
        self._failure = self._open_failed_at = None

    def close(self) -> None:
        with self._gate:
            self._close_all()

    def _close_all(self) -> None:
        """Close every thread's cursor and the connection (a failed database's may fail)."""
        for cursor in [*self._cursors, self.con]:
            with suppress(duckdb.Error):
                cursor.close()
        self._cursors.clear()
