"""The gateway's spool: usage events of proxied calls, kept in a local file until stored.

A proxied call must not wait for the store's durable commit (milliseconds under load), and
its usage must not be lost if the process is killed after the caller got its answer. So
the answer is sent once its events are appended to this file (a ``write`` to the page
cache: it outlives the process, though not a power cut), and a feeder moves them into the
store through the group commit. How far the store has them is kept beside the file; after
a crash the rest is replayed, and the store's exactly-once counting of event ids makes a
replayed event count once. The file starts again from empty once everything in it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from ..store.base import Row

log = logging.getLogger("openusage.gateway")

#: the file starts over once everything is stored and it has grown past this
RESET_BYTES = 1 << 20
#: events moved into the store in one commit at most
MAX_EVENTS_PER_COMMIT = 10_000
#: seconds the feeder lets events gather before a commit: a durable commit costs the store
#: milliseconds of work whatever its size, and proxied calls must not pay for one each
GATHER_SECONDS = 0.1
#: seconds between attempts while the store refuses the events, growing to the last
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0)


class Spool:
    """Events appended here reach ``store_rows`` (which returns once they are durable)."""

    def __init__(
        self,
        path: Path,
        rows_of: Callable[[list[Any]], list[Row]],
        store_rows: Callable[[list[Row]], Awaitable[Any]],
    ) -> None:
        self._path = path
        self._done_path = path.with_name(path.name + ".done")
        self._rejected_path = path.with_name(path.name + ".rejected")
        self._rows_of = rows_of
        self._store_rows = store_rows
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self._done = self._read_done()
        self._wake = asyncio.Event()

    def _read_done(self) -> int:
        try:
            done = int(self._done_path.read_text())
        except (FileNotFoundError, ValueError):
            return 0
        # Past the end: the file was emptied after everything in it was stored.
        return done if 0 <= done <= os.fstat(self._fd).st_size else 0

    def append(self, events: list[Any]) -> None:
        """Keep ``events``; one write, so a killed process leaves whole lines."""
        if events:
            os.write(self._fd, b"".join(orjson.dumps(e) + b"\n" for e in events))
            self._wake.set()

    def backlog_bytes(self) -> int:
        """How much of the file the store does not have yet."""
        return os.fstat(self._fd).st_size - self._done

    async def run(self) -> None:
        """Move events into the store as they come, until cancelled."""
        failures = 0
        while True:
            if not self.backlog_bytes():
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(GATHER_SECONDS)
            try:
                await self.feed()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                log.warning("usage of proxied calls not stored yet (%s); retrying in %s s", exc, delay)
                await asyncio.sleep(delay)

    async def feed(self) -> int:
        """Store the next events of the file; how many were stored."""
        chunk = os.pread(self._fd, self.backlog_bytes(), self._done)
        end = chunk.rfind(b"\n") + 1
        lines = chunk[:end].splitlines(keepends=True)[:MAX_EVENTS_PER_COMMIT]
        if not lines:
            return 0
        events = []
        for line in lines:
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.error("a damaged line of the spool %s was skipped: %r", self._path, line[:200])
        await self._store_rows(self._taken(events))
        self._mark_done(self._done + sum(len(line) for line in lines))
        return len(events)

    def _taken(self, events: list[Any]) -> list[Row]:
        """The rows of the events; one the store cannot take (they are checked before they are
        spooled, so none should be) is set aside in a file of its own, not retried for ever."""
        try:
            return self._rows_of(events)
        except Exception:
            rows: list[Row] = []
            for event in events:
                try:
                    rows += self._rows_of([event])
                except Exception as exc:
                    log.error("a spooled usage event was set aside in %s: %s", self._rejected_path, exc)
                    with self._rejected_path.open("ab") as rejected:
                        rejected.write(orjson.dumps(event) + b"\n")
            return rows

    def _mark_done(self, done: int) -> None:
        self._done = done
        if done == os.fstat(self._fd).st_size and done > RESET_BYTES:
            # Recorded first: a crash before the truncation replays stored events, which
            # count once; the other order could skip events appended in between.
            self._write_done(0)
            os.ftruncate(self._fd, 0)
            self._done = 0
        else:
            self._write_done(done)

    def _write_done(self, done: int) -> None:
        temporary = self._done_path.with_name(self._done_path.name + ".tmp")
        temporary.write_text(str(done))
        os.replace(temporary, self._done_path)

    async def drain(self, timeout: float) -> None:
        """Store what is left (at shutdown), giving up after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while self.backlog_bytes():
                    if not await self.feed():
                        return
        except Exception as exc:  # left in the file: the next start stores it
            log.warning("usage of proxied calls left in %s for the next start (%s)", self._path, exc)

    def close(self) -> None:
        os.close(self._fd)
