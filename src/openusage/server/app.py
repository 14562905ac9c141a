"""The ASGI application: HTTP in, JSON out. Built by ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import shutil
import sqlite3
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminPlane
from ..catalogue import ENDPOINTS, Endpoint
from ..costs import PriceBook, cost_results
from ..dashboard import dashboard_routes
from ..gateway import PROXIED_METHODS, Gateway, GatewaySettings, Spool
from ..keyring import READ, WRITE, ApiKey, Keyring, secret_hash
from ..settings import Settings
from ..store import EventStore, StoreFull, StoreOutOfMemory, StoreRestarting, WriteUnfinished, open_store
from ..store.base import AppendResult, Row
from .batches import fast_rows
from .bodies import BodyBudget, expected_size
from .commits import GroupCommitter
from .cursor import CursorSigner
from .errors import ApiError, bad_request
from .events import EventRules, check_batch_size, events_from_body, parse_events
from .logs import RequestLogMiddleware, ServerErrorMiddleware
from .openapi import openapi_document
from .pages import PageLimits, ResultsFor, build_page, usage_results
from .params import parse_query
from .ratelimit import FailureLimiter, RateLimiter

log = logging.getLogger("openusage.server")

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
#: a body this small is decoded and checked on the event loop (about 10 us for one event):
#: a hop to a worker thread and back cost more than the work (single events: 547 -> 577/s)
SMALL_BODY_BYTES = 4096
#: a body this small holds a few events, which are checked faster one by one than as
#: columns, whose making has a fixed cost: one event 8.6-10.4 against 37-38 us, even at
#: about 5 events (docs/performance.md, twenty-second session)
FEW_EVENTS_BYTES = 512
#: how many keys the server keeps as found (more are read from the file each time)
KNOWN_KEYS = 10_000
#: the key set by $OPENUSAGE_ADMIN_KEY, which the keyring does not hold
CONFIGURED_ADMIN_KEY = ApiKey("configured-admin-key", "configured admin key", "admin", "", 0, None)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    try:
        content = orjson.dumps(body)
    except orjson.JSONEncodeError:
        # A sum past 64 bits (sums are exact 128-bit integers): the standard library writes it.
        content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status, media_type="application/json", headers=headers)


class Authenticator:
    """Checks the bearer key of a request against the keyring and the configured admin key.

    The keyring is read off the event loop, so a slow or locked key file holds up only the
    requests that need it, and a lookup that fails answers 503 with Retry-After.
    """

    def __init__(
        self,
        keyring: Keyring,
        admin_key: str | None,
        limiter: RateLimiter | None,
        failures: FailureLimiter | None,
    ) -> None:
        self._keyring = keyring
        self._admin_key = admin_key
        self._limiter = limiter
        self._failures = failures
        #: the keys found since the key file last changed, by their secrets' hashes: a key
        #: used again is checked on the event loop, without a hop to a thread and a read
        #: (single events with an ingest key: 1,378-1,565 against 1,688-2,211 requests/s
        #: with the configured key, which needs neither; docs/performance.md)
        self._known: dict[str, ApiKey] = {}
        #: the file's data version they were found at; None: unknown, ask the file
        self._known_version: int | None = None
        #: the file's data version as read in this turn of the event loop, if it was
        self._turn_version: int | None = None

    async def identify(self, request: Request) -> ApiKey:
        """The request's key; 401 when there is none."""
        address = request.client.host if request.client else "unknown"
        if self._failures is not None:
            self._failures.check(address)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self._failed(address)
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )
        if self._admin_key is not None and hmac.compare_digest(token.encode(), self._admin_key.encode()):
            return CONFIGURED_ADMIN_KEY
        digest = secret_hash(token)
        known = self._known_key(digest)
        if known is not None:
            return known
        version = self._known_version
        try:
            key = await run_in_threadpool(self._keyring.find, token)
        except sqlite3.Error:
            log.exception("the key file could not be read")
            raise ApiError(
                503,
                "The server could not check the API key just now. Try again shortly.",
                type="server_error",
                headers={"Retry-After": "1"},
            ) from None
        if key is None:
            self._failed(address)
            # Never echo the key: messages and logs must not carry secrets.
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        # Read after the file was seen at ``version``: kept only if nothing changed since
        # (else a read from before a revocation could outlive it).
        if version is not None and version == self._known_version and len(self._known) < KNOWN_KEYS:
            self._known[digest] = key
        return key

    def _known_key(self, digest: str) -> ApiKey | None:
        """The key with this hash if it was found since the file last changed."""
        try:
            version = self._file_version()
        except sqlite3.Error:  # locked or unreadable just now: the file is asked, and waited for
            self._known.clear()
            self._known_version = None
            return None
        if version != self._known_version:
            self._known.clear()
            self._known_version = version
        return self._known.get(digest)

    def _file_version(self) -> int:
        """The key file's data version, read once for the requests checked in one turn of
        the event loop (the read was a tenth of the loop's time a single event). A request
        is checked a turn after it arrived at the soonest, and the version is forgotten by
        the next turn, so no request outlives a change to the file made before it arrived."""
        if self._turn_version is None:
            self._turn_version = self._keyring.version()
            asyncio.get_running_loop().call_soon(self._forget_turn_version)
        return self._turn_version

    def _forget_turn_version(self) -> None:
        self._turn_version = None

    def _failed(self, address: str) -> None:
        if self._failures is not None:
            self._failures.failed(address)

    async def require(self, request: Request, permission: str) -> ApiKey:
        """The request's key, if it may do ``permission``: 401 or 403 otherwise."""
        key = await self.identify(request)
        if permission not in key.permissions:
            self._failed(request.client.host if request.client else "unknown")
            raise ApiError(
                403, f"You have insufficient permissions for this operation. Missing scopes: {permission}."
            )
        if self._limiter is not None:
            self._limiter.check(key.id)
        return key


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"The request body is larger than {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The body as sent before compression: gzip is what batch senders use. The inflated
    size is checked while inflating, so a small bomb cannot fill memory."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise ApiError(415, f"Unsupported content encoding {encoding!r}: send gzip or none.")
    inflater = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise ApiError(413, f"The request body is larger than {limit} bytes once inflated.")
        if not inflater.eof:
            raise bad_request("The gzip body is cut short.")
        if inflater.unused_data:
            # Never drop what follows: a second gzip member would be lost without a word.
            raise bad_request("The body holds more than one gzip member: send one.")
    except zlib.error as exc:
        raise bad_request(f"The body is not valid gzip: {exc}.") from None
    return out


def decode_events(body: bytes, content_type: str, max_events: int) -> list[Any]:
    """The events of a JSON (``{"events": [...]}``) or NDJSON body."""
    media = content_type.split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        lines = [line for line in body.split(b"\n") if line.strip()]
        check_batch_size(len(lines), max_events)
        events = []
        for index, line in enumerate(lines):
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise bad_request(
                    f"Event {index} (line {index + 1}) is not valid JSON: {exc}.", param=f"events[{index}]"
                ) from None
        return events
    if media not in ("", "application/json"):
        raise ApiError(
            415, f"Unsupported content type {media!r}: send application/json or application/x-ndjson."
        )
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The body is not valid JSON: {exc}.") from None
    return list(events_from_body(parsed, max_events))


def create_app(
    settings: Settings,
    *,
    store: EventStore | None = None,
    keyring: Keyring | None = None,
    price_book: PriceBook | None = None,
    close_store: bool = False,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The server: every endpoint of the catalogue, ingestion, and its OpenAPI document.

    A ``store`` given here stays open at shutdown unless ``close_store`` says otherwise.
    """
    keyring = keyring or Keyring(settings.resolved_keyring_path)
    limiter = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None
    failures = (
        FailureLimiter(settings.auth_failures_per_minute) if settings.auth_failures_per_minute else None
    )
    auth = Authenticator(keyring, settings.admin_key, limiter, failures)
    signer = CursorSigner(keyring.signing_secret())
    book = price_book or PriceBook.from_file(settings.prices_path)
    limits = PageLimits(lookback_days=settings.lookback_days, max_page_rows=settings.max_page_rows)
    committers: dict[int, GroupCommitter] = {}

    def committer() -> GroupCommitter:
        """The group committer of the current store, made on first use."""
        current = state["store"]
        if id(current) not in committers:
            committers.clear()
            committers[id(current)] = GroupCommitter(current)
        return committers[id(current)]

    # A store given from outside is ready now, so the app also works without a lifespan
    # (httpx's ASGI transport runs none).
    state: dict[str, EventStore] = {} if store is None else {"store": store}

    admin = AdminPlane(settings, keyring, lambda: state["store"], book, clock)

    async def store_rows(rows: Sequence[Row]) -> AppendResult:
        """Rows stored durably through the group commit; their new projects listed."""
        result = await committer().append(rows)
        await admin.note(rows)
        return result

    gateway: Gateway | None = None
    if settings.upstream_url:
        gateway = Gateway(
            GatewaySettings(settings.upstream_url, settings.upstream_api_key, settings.upstream_timeout),
            auth.require,
            read_body,
            admin.watch.admit,
            clock,
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["store"] = store or open_store(
            settings.store,
            memory_limit=settings.db_memory_limit,
            retention_days=settings.retention_days,
            held_keys=settings.held_keys,
        )
        try:
            async with admin.running():
                if gateway is None:
                    yield
                    return
                spool = Spool(
                    settings.resolved_spool_path,
                    lambda events: parse_events(events, EventRules(now=int(clock()))),
                    store_rows,
                )
                async with gateway.running(spool):
                    yield
        finally:
            if store is None or close_store:
                state["store"].close()

    def read_endpoint(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            await auth.require(request, READ)
            query = parse_query(
                endpoint, request.query_params.multi_items(), max_array_values=settings.max_array_values
            )
            results_for: ResultsFor
            if endpoint.is_costs:
                results_for = partial(
                    cost_results,
                    group_by=query.group_by,
                    filters=query.filters,
                    store=state["store"],
                    book=book,
                    result_object=endpoint.result_object,
                )
            else:
                results_for = usage_results(query, state["store"])
            try:
                page = await run_in_threadpool(
                    build_page, query, results_for=results_for, signer=signer, now=int(clock()), limits=limits
                )
            except StoreOutOfMemory as exc:
                raise ApiError(
                    503,
                    f"The query was not answered: {exc}. Ask for fewer groups or buckets, or a shorter "
                    "range, or start the server with a larger --memory-limit.",
                    type="server_error",
                ) from None
            return json_response(page)

        return handler

    def checked_rows(body: bytes, encoding: str, content_type: str) -> tuple[Sequence[Row], int]:
        """The body's events checked, and the body's size once inflated."""
        body = inflate(body, encoding, settings.max_body_bytes)
        rules = EventRules(now=int(clock()), max_future_seconds=settings.max_future_seconds)
        media = content_type.split(";")[0].strip().lower()
        if len(body) > FEW_EVENTS_BYTES and media in ("", "application/json"):
            rows = fast_rows(body, rules, settings.max_batch_events)
            if rows is not None:
                return rows, len(body)
        # NDJSON, a few events, or a batch the fast path leaves to the careful one (which
        # names any error)
        return parse_events(decode_events(body, content_type, settings.max_batch_events), rules), len(body)

    #: the batches' bodies held at once (bodies.py): two of the largest
    bodies = BodyBudget(2 * settings.max_body_bytes)

    async def ingest(request: Request) -> Response:
        await auth.require(request, WRITE)
        encoding = request.headers.get("content-encoding", "")
        # A compressed body may inflate to the limit: it holds that much until it has.
        inflates = encoding.strip().lower() not in ("", "identity")
        limit = settings.max_body_bytes
        expected = limit if inflates else expected_size(request, limit)
        # A body of a few events (most requests) is too small to be worth counting.
        budget = bodies.held(expected, request.scope) if expected > SMALL_BODY_BYTES else nullcontext(None)
        async with budget as holding:
            body = await read_body(request, limit)
            content_type = request.headers.get("content-type", "")
            if len(body) <= SMALL_BODY_BYTES and not encoding:
                rows, size = checked_rows(body, encoding, content_type)
            else:  # decoding and checking a large batch takes a while: off the loop, like the commit
                rows, size = await run_in_threadpool(checked_rows, body, encoding, content_type)
            if holding is not None:
                holding.shrink(size)
            result = await stored(rows)
        return json_response(
            {
                "object": "usage.ingest_result",
                "received": len(rows),
                "inserted": result.inserted,
                "duplicates": result.duplicates,
            }
        )

    async def stored(rows: Sequence[Row]) -> AppendResult:
        """``store_rows``, its failures told in the API's terms."""
        try:
            return await store_rows(rows)
        except StoreFull as full:
            raise ApiError(507, f"The batch was not stored: {full}.", type="server_error") from None
        except StoreOutOfMemory as exc:
            raise ApiError(
                503,
                f"The batch was not stored: {exc}. Send it again (in smaller batches if this "
                "recurs), or start the server with a larger --memory-limit.",
                type="server_error",
                headers={"Retry-After": "1"},
            ) from None
        except WriteUnfinished as unfinished:
            raise ApiError(
                503,
                f"The batch may be stored only in part: {unfinished}. Send it again: "
                "events already stored are counted once.",
                type="server_error",
                headers={"Retry-After": "1"},
            ) from None

    document = orjson.dumps(openapi_document())

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    async def backup(request: Request) -> Response:
        # Both scopes: a copy of the database is every key's data at once.
        await auth.require(request, READ)
        await auth.require(request, WRITE)
        folder = Path(tempfile.mkdtemp(prefix="openusage-backup-"))
        target = folder / "backup.duckdb"
        try:
            count = await run_in_threadpool(state["store"].backup, target)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            target,
            media_type="application/octet-stream",
            filename="openusage-backup.duckdb",
            headers={"x-openusage-events": str(count)},
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    async def health(request: Request) -> Response:
        problem = await run_in_threadpool(state["store"].problem)
        if problem is None:
            return json_response({"status": "ok"})
        # Reads still work, so the server stays in service: degraded, not down.
        return json_response({"status": "degraded", "reason": problem})

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return json_response(exc.body(), exc.status, exc.headers)

    async def store_restarting(request: Request, exc: Exception) -> Response:
        # Any endpoint that reads or writes the store: the next request finds it open again.
        error = ApiError(503, f"The request was not carried out: {exc}.", type="server_error")
        return json_response(error.body(), error.status, {"Retry-After": "1"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = (
            f"Invalid URL ({request.method} {request.url.path})"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return json_response(ApiError(exc.status_code, message).body(), exc.status_code)

    # Ingestion first: the router tries each route's pattern in turn (a twentieth of the
    # event loop's time a single event with ingestion behind the read and admin routes).
    routes: list[BaseRoute] = [Route("/v1/organization/usage/events", ingest, methods=["POST"])]
    routes += [Route("/v1" + e.path, read_endpoint(e), methods=["GET"]) for e in ENDPOINTS]
    routes += admin.routes(auth.require, read_body, json_response)
    routes += [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/admin/backup", backup, methods=["POST"]),
    ]
    routes += dashboard_routes()
    if gateway is not None:
        # Last: everything else under /v1 is the upstream's.
        routes.append(Route("/v1/{path:path}", gateway.handle, methods=PROXIED_METHODS))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: api_error,
            HTTPException: http_error,
            StoreRestarting: store_restarting,
        },
    )
    app.add_middleware(ServerErrorMiddleware)
    app.add_middleware(RequestLogMiddleware)
    return app
