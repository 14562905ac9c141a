"""How many bytes of request bodies the server holds at once.

A batch is held as its body, then as checked columns, until its commit: several times its
size in memory (a batch of 10,000 events with the longest strings, 14 MB, about 90 MB).
Without a bound, 32 clients sending such batches at once took the server to 2 GB. Each
request reserves its body's size before the body is read (the limit, when it is chunked or
compressed, until its size is known) and waits its turn while the budget is spent;
meanwhile its bytes wait in its connection (the server stops reading it once a little is
buffered, and the body's deadline does not run: ``connections.py``).

A request holding a share says so in its scope's state (``SHARE``): while others wait, its
connection wants its body at a faster pace, so one that trickles cannot keep the budget
from them for hours.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.types import Scope

from .errors import ApiError

#: the key in a request's scope state under which it keeps its ``Holding``
SHARE = "body_share"


def expected_size(request: Request, limit: int) -> int:
    """The bytes a request's body may take: its declared length, or ``limit`` when it
    declares none (a chunked body). A declared length past ``limit`` is refused at once,
    not after a wait for the budget."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return limit
    if int(declared) > limit:
        raise ApiError(413, f"The request body is larger than {limit} bytes.")
    return int(declared)


class Holding:
    """One request's share of the budget."""

    def __init__(self, budget: BodyBudget, size: int) -> None:
        self._budget = budget
        self.size = size

    def shrink(self, size: int) -> None:
        """Hold ``size`` bytes from now on, if fewer: a body reserved at the limit (chunked,
        or compressed) gives back what it turned out not to need."""
        if size < self.size:
            self._budget.release(self.size - size)
            self.size = size

    def others_wait(self) -> bool:
        """Whether a request waits for room in this share's budget."""
        return self._budget.contended


class BodyBudget:
    """Bytes of bodies held at once, granted first come, first served."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def contended(self) -> bool:
        return any(not granted.cancelled() for _, granted in self._waiting)

    @asynccontextmanager
    async def held(self, size: int, scope: Scope | None = None) -> AsyncIterator[Holding]:
        """``size`` bytes of the budget, once they are free; noted in ``scope``'s state
        while held."""
        size = min(size, self.total)  # larger ones wait for the whole budget
        if self._waiting or size > self.free:
            granted = asyncio.get_running_loop().create_future()
            self._waiting.append((size, granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self.release(size)  # granted as the request was cancelled
                raise
        else:
            self.free -= size
        holding = Holding(self, size)
        state = scope.setdefault("state", {}) if scope is not None else {}
        state[SHARE] = holding
        try:
            yield holding
        finally:
            state.pop(SHARE, None)
            self.release(holding.size)

    def release(self, size: int) -> None:
        self.free += size
        while self._waiting:
            size, granted = self._waiting[0]
            if granted.cancelled():
                self._waiting.popleft()
                continue
            if size > self.free:
                break
            self._waiting.popleft()
            self.free -= size
            granted.set_result(None)
