"""Group commit: ingest requests that arrive together share one durable transaction.

While one commit is being written, new batches wait in a queue; the next commit takes all
of them at once. Each request is answered only after the commit that holds its batch.

A commit costs about the same for one event as for sixteen (in process 2.9 and 3.0 ms),
so commits gather. Each client has one request in flight: with four clients loading, a
commit of two batches was written while the other two clients were between their answer
and their next batch, and commits stayed at two (2M events: 25.5-26.4 s one way,
20.2-21.0 s gathering); with sixteen clients sending single events, commits held two
events (median), 880-1,030 requests/s, against 1,250-1,630 with sixteen a commit
(docs/performance.md). So a commit waits, briefly, until as many requests wait as were in
hand together lately; a lone client is never held back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from ..store import AppendResult, EventStore
from ..store.base import Row

#: a batch of this many events or more is bulk loading, whose clients take longer to
#: come back (they make and send a batch of their own)
BULK_ROWS = 1_000
#: how long a commit holding a bulk batch waits at most for the others' (seconds): about
#: a client's turn between its answer and its next batch, with room to spare
BULK_WAIT = 0.015
#: how long a commit of smaller batches waits at most (seconds): about the time sixteen
#: clients' next single events take to be read and checked
SMALL_WAIT = 0.004
#: how far back the number of requests in hand together counts (seconds)
TOGETHER_MEMORY = 1.0


class GroupCommitter:
    def __init__(
        self,
        store: EventStore,
        max_rows: int = 100_000,
        bulk_wait: float = BULK_WAIT,
        small_wait: float = SMALL_WAIT,
    ) -> None:
        self._store = store
        self._max_rows = max_rows
        self._bulk_wait = bulk_wait
        self._small_wait = small_wait
        self._pending: list[tuple[Sequence[Row], asyncio.Future[AppendResult]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()
        #: requests in the commit being written
        self._writing = 0
        #: (when, requests in hand then: being written or waiting), newest last, each
        #: count below the one before it (a window's most is its oldest)
        self._together: deque[tuple[float, int]] = deque()

    async def append(self, rows: Sequence[Row]) -> AppendResult:
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        self._note_together(self._writing + len(self._pending))
        self._arrived.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    def _note_together(self, count: int) -> None:
        # The most in hand within the memory is the oldest entry still in it: an entry that
        # a later, larger count outlasts can never be the most, so it is dropped.
        while self._together and self._together[-1][1] <= count:
            self._together.pop()
        self._together.append((asyncio.get_running_loop().time(), count))

    def _expected(self) -> int:
        """The most requests in hand together lately: as many clients are sending."""
        now = asyncio.get_running_loop().time()
        while self._together and self._together[0][0] < now - TOGETHER_MEMORY:
            self._together.popleft()
        return self._together[0][1] if self._together else 0

    async def _gather(self) -> None:
        """Wait until as many requests wait as were in hand together lately (or the commit
        would pass ``max_rows``): at most ``bulk_wait`` if a bulk batch waits, else
        ``small_wait``."""
        loop = asyncio.get_running_loop()
        bulk = any(len(rows) >= BULK_ROWS for rows, _ in self._pending)
        deadline = loop.time() + (self._bulk_wait if bulk else self._small_wait)
        while True:
            self._arrived.clear()
            events = sum(len(rows) for rows, _ in self._pending)
            if len(self._pending) >= self._expected() or events >= self._max_rows:
                return
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
            except TimeoutError:
                return

    async def _write(self) -> None:
        while self._pending:
            await self._gather()
            taken, size = 0, 0
            while taken < len(self._pending) and (
                taken == 0 or size + len(self._pending[taken][0]) <= self._max_rows
            ):
                size += len(self._pending[taken][0])
                taken += 1
            group, self._pending = self._pending[:taken], self._pending[taken:]
            self._writing = len(group)
            try:
                results = await run_in_threadpool(self._store.append_batches, [rows for rows, _ in group])
            except BaseException as exc:  # every waiting request learns of the failure
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            finally:
                self._writing = 0
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
