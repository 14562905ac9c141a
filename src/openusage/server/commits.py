"""Group commit: ingest requests that arrive together share one durable transaction.

While one commit is being written, new batches wait in a queue; the next commit takes all
of them at once. Each request is answered only after the commit that holds its batch.

Bulk loading gathers more. Each client has one batch in flight, so with four clients a
commit of two batches is written while the other two clients are between their answer and
their next batch, and commits stay at two batches. A larger commit costs less an event
(2M events from 4 clients: 25.5-26.4 s and 40-41 s of the server's CPU one way, 20.2-21.0 s
and 31-32 s gathering; docs/performance.md). So a commit of bulk batches waits, briefly,
for as many of them as were in hand together lately; a lone client is never held back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from ..store import AppendResult, EventStore
from ..store.base import Row

#: a batch of this many events or more is bulk loading, where larger commits pay
BULK_ROWS = 1_000
#: how long a commit of bulk batches waits at most for the others' (seconds): about a
#: client's turn between its answer and its next batch, with room to spare
BULK_WAIT = 0.015
#: how far back the number of bulk batches in hand together counts (seconds)
BULK_MEMORY = 1.0


def _bulk(queued: Sequence[tuple[Sequence[Row], object]]) -> int:
    """How many of these batches are bulk loading."""
    return sum(len(rows) >= BULK_ROWS for rows, _ in queued)


class GroupCommitter:
    def __init__(self, store: EventStore, max_rows: int = 100_000, bulk_wait: float = BULK_WAIT) -> None:
        self._store = store
        self._max_rows = max_rows
        self._bulk_wait = bulk_wait
        self._pending: list[tuple[Sequence[Row], asyncio.Future[AppendResult]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()
        #: bulk batches in the commit being written
        self._writing_bulk = 0
        #: (when, bulk batches in hand then: being written or waiting), newest last
        self._together: deque[tuple[float, int]] = deque()

    async def append(self, rows: Sequence[Row]) -> AppendResult:
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        if len(rows) >= BULK_ROWS:
            self._note_together(self._writing_bulk + _bulk(self._pending))
        self._arrived.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    def _note_together(self, count: int) -> None:
        now = asyncio.get_running_loop().time()
        self._together.append((now, count))
        while self._together[0][0] < now - BULK_MEMORY:
            self._together.popleft()

    def _expected_bulk(self) -> int:
        """The most bulk batches in hand together lately: as many clients are loading."""
        now = asyncio.get_running_loop().time()
        return max((count for when, count in self._together if when >= now - BULK_MEMORY), default=0)

    async def _gather_bulk(self) -> None:
        """Wait, at most ``bulk_wait``, until as many bulk batches wait as were in hand
        together lately (or the commit would pass ``max_rows``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._bulk_wait
        while True:
            self._arrived.clear()
            waiting = _bulk(self._pending)
            events = sum(len(rows) for rows, _ in self._pending)
            if not waiting or waiting >= self._expected_bulk() or events >= self._max_rows:
                return
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
            except TimeoutError:
                return

    async def _write(self) -> None:
        while self._pending:
            await self._gather_bulk()
            taken, size = 0, 0
            while taken < len(self._pending) and (
                taken == 0 or size + len(self._pending[taken][0]) <= self._max_rows
            ):
                size += len(self._pending[taken][0])
                taken += 1
            group, self._pending = self._pending[:taken], self._pending[taken:]
            self._writing_bulk = _bulk(group)
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
                self._writing_bulk = 0
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
