"""Group commit: ingest requests that arrive together share one durable transaction.

While one commit is being written, new batches wait in a queue; the next commit takes all
of them at once. Each request is answered only after the commit that holds its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from ..store import AppendResult, EventStore
from ..store.base import Row


class GroupCommitter:
    def __init__(self, store: EventStore, max_rows: int = 100_000) -> None:
        self._store = store
        self._max_rows = max_rows
        self._pending: list[tuple[Sequence[Row], asyncio.Future[AppendResult]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, rows: Sequence[Row]) -> AppendResult:
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self._pending:
            taken, size = 0, 0
            while taken < len(self._pending) and (
                taken == 0 or size + len(self._pending[taken][0]) <= self._max_rows
            ):
                size += len(self._pending[taken][0])
                taken += 1
            group, self._pending = self._pending[:taken], self._pending[taken:]
            try:
                results = await run_in_threadpool(self._store.append_batches, [rows for rows, _ in group])
            except BaseException as exc:  # every waiting request learns of the failure
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
