"""The admin plane as the server runs it: its routes, the spend watch, projects met in usage."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from ..costs import PriceBook
from ..keyring import ApiKey, Keyring
from ..settings import Settings
from ..store import EventStore
from ..store.base import Row
from ..store.event_columns import distinct_values
from .notify import Notifier
from .registry import Registry
from .routes import Json, admin_routes
from .spend import SpendWatch, month_spend

log = logging.getLogger("openusage.admin")


class AdminPlane:
    def __init__(
        self,
        settings: Settings,
        keyring: Keyring,
        store: Callable[[], EventStore],
        book: PriceBook,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._keyring = keyring
        self._store = store
        self._clock = clock
        self.registry = Registry(settings.resolved_keyring_path)
        notifier = Notifier(
            settings.smtp_url, settings.smtp_from, settings.alert_webhook_url, settings.alert_webhook_secret
        )
        self.watch = SpendWatch(self.registry, lambda now: month_spend(store(), book, now), notifier, clock)
        self._known = {p.id for p in self.registry.projects(include_archived=True)}

    def routes(
        self,
        require: Callable[[Request, str], Awaitable[ApiKey]],
        read_body: Callable[[Request, int], Awaitable[bytes]],
        json_response: Json,
    ) -> list[Route]:
        return admin_routes(self.registry, self._keyring, self.watch, require, read_body, json_response)

    async def note(self, rows: Sequence[Row]) -> None:
        """List the projects these stored events name, if they are new."""
        new = distinct_values(rows, "project_id") - {None} - self._known
        if not new:
            return
        try:
            await run_in_threadpool(self.registry.saw_projects, new, int(self._clock()))
        except sqlite3.Error as exc:  # the events are stored: listing them waits for the next batch
            log.warning("new projects could not be listed yet: %s", exc)
            return
        self._known |= new

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve with the month's spend kept current, and older usage's projects listed."""
        tasks = [asyncio.create_task(self._list_stored_projects()), asyncio.create_task(self._watch_spend())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _list_stored_projects(self) -> None:
        try:
            stored = await run_in_threadpool(self._store().project_ids)
        except Exception:
            log.exception("the projects of stored usage could not be listed")
            return
        new = set(stored) - self._known
        if new:
            await run_in_threadpool(self.registry.saw_projects, new, int(self._clock()))
            self._known |= new

    async def _watch_spend(self) -> None:
        while True:
            # Summing the month costs a costs query: only done when a limit or alert needs it.
            if self.watch.has_work():
                try:
                    await run_in_threadpool(self.watch.refresh)
                except Exception:
                    log.exception("this month's spend could not be summed")
            await asyncio.sleep(self._settings.spend_check_seconds)
