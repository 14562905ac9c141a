"""The gateway: OpenAI's model endpoints under ``/v1``, forwarded to an upstream and recorded.

A proxy key's call goes to the upstream with the upstream's own key; the answer comes back
as the upstream sent it (streams chunk by chunk), and the usage it reports is appended to
the spool before the caller has the whole answer. Upstream errors pass through unrecorded.
"""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import python_multipart
import yarl
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..keyring import MODEL
from ..server.bodies import BodyBudget, expected_size
from ..server.errors import ApiError
from ..server.events import EventRules, Invalid, parse_events
from . import recording
from .recording import Call, Caller, Event
from .spool import Spool
from .sse import EventSplitter, event_data, without_null_usage

log = logging.getLogger("openusage.gateway")

#: the calls whose usage is recorded (POST only), and how
RECORDED: dict[str, Callable[[Call], list[Event]]] = {
    "chat/completions": recording.chat_completion,
    "completions": recording.chat_completion,
    "responses": recording.response,
    "embeddings": recording.embedding,
    "moderations": recording.moderation,
    "images/generations": recording.images("image.generation"),
    "images/edits": recording.images("image.edit"),
    "images/variations": recording.images("image.variation"),
    "audio/speech": recording.speech,
    "audio/transcriptions": recording.transcription,
    "audio/translations": recording.transcription,
}
#: calls whose usage only a stream's last chunk reports, unless the caller asks for it
USAGE_ON_REQUEST = ("chat/completions", "completions")
PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
#: the server's own paths: never forwarded
OWN_PREFIXES = ("organization/", "admin/")
#: headers that belong to one connection, or that the gateway sets itself
_NOT_FORWARDED = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
    "accept-encoding",
}
#: answer headers the gateway's server writes itself (as nginx does): forwarded, they came twice
_OWN_ANSWER_HEADERS = {"date", "server"}
#: multipart fields the recording reads (the rest, files included, are not kept)
_FORM_FIELDS = {b"model", b"size"}


@dataclass
class GatewaySettings:
    upstream_url: str
    upstream_api_key: str | None = field(default=None, repr=False)
    #: seconds to wait for the upstream's answer (and between chunks of a stream)
    timeout: float = 600.0
    #: seconds the gateway keeps reading a stream whose caller went away, for its usage
    drain_seconds: float = 60.0
    max_body_bytes: int = 64 * 1024 * 1024


class Gateway:
    """Forwards calls of proxy keys and spools their usage; one per server."""

    def __init__(
        self,
        settings: GatewaySettings,
        authenticate: Callable[[Request, str], Any],
        read_body: Callable[[Request, int], Any],
        admit: Callable[[str], None],
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._authenticate = authenticate
        self._read_body = read_body
        self._admit = admit
        self._clock = clock
        self._spool: Spool | None = None
        self._upstream = settings.upstream_url.rstrip("/")
        #: made once the event loop runs (aiohttp's rule); aiohttp rather than httpx: a
        #: forwarded call costs it a fifth of the CPU (0.17 ms against 0.81 ms, measured)
        self._client: aiohttp.ClientSession | None = None
        #: streams still read for their usage after their caller left
        self._draining: set[asyncio.Task[None]] = set()
        #: bodies on their way to the upstream at once: two of the largest
        self._bodies = BodyBudget(2 * settings.max_body_bytes)

    @asynccontextmanager
    async def running(self, spool: Spool) -> AsyncIterator[None]:
        """Serve with ``spool`` feeding the store; at the end, store what is left if it can."""
        self._spool = spool
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, connect=min(10.0, self._settings.timeout), sock_read=self._settings.timeout
            ),
            connector=aiohttp.TCPConnector(limit=1000),
            auto_decompress=False,  # bytes pass as sent; the upstream is asked for none
            skip_auto_headers=("User-Agent",),
        )
        feeder = asyncio.create_task(spool.run())
        try:
            yield
        finally:
            for task in [feeder, *self._draining]:
                task.cancel()
            await asyncio.gather(feeder, *self._draining, return_exceptions=True)
            await spool.drain(timeout=10)
            spool.close()
            await self._client.close()

    async def handle(self, request: Request) -> Response:
        path = request.path_params["path"]
        if path.startswith(OWN_PREFIXES):
            raise ApiError(404, f"Invalid URL ({request.method} {request.url.path})")
        key = await self._authenticate(request, MODEL)
        # Archived projects and reached spend limits: a lookup in figures kept current.
        self._admit(key.project_id or "")
        limit = self._settings.max_body_bytes
        # Until the upstream has it, the body is held: so many bytes of bodies at once.
        async with self._bodies.held(expected_size(request, limit), request.scope) as holding:
            body = await self._read_body(request, limit)
            holding.shrink(len(body))
            endpoint = path.rstrip("/")  # a trailing slash must not dodge the recording
            record = RECORDED.get(endpoint) if request.method == "POST" else None
            asked = _request_fields(body, request.headers.get("content-type", "")) if record else {}
            streamed = asked.get("stream") is True
            added_usage = False
            if record and streamed and endpoint in USAGE_ON_REQUEST:
                options = asked.get("stream_options")
                if not (isinstance(options, dict) and options.get("include_usage") is True):
                    body = orjson.dumps(
                        {**asked, "stream_options": {**(options or {}), "include_usage": True}}
                    )
                    added_usage = True
            upstream = await self._send(request, path, body)
        request_id = upstream.headers.get("x-request-id") or "req_" + uuid.uuid4().hex
        status = upstream.status
        caller = Caller(key.id, key.project_id or "", key.user_id)

        def recorded(answer: dict[str, Any]) -> None:
            assert record is not None and self._spool is not None
            call = Call(caller, asked, answer, request_id, int(self._clock()))
            self._spool.append(self._checked(record(call), call.timestamp))

        if record is None or not 200 <= status < 300:
            return _answered(StreamingResponse(_raw(upstream), status), upstream)
        if streamed or endpoint == "audio/speech":
            relay = Relay(upstream, recorded, added_usage, is_speech=endpoint == "audio/speech")
            return _answered(StreamingResponse(self._stream(relay), status), upstream)
        try:
            content = await upstream.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _upstream_error(exc) from None
        finally:
            upstream.release()
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            answer = {}  # text or srt transcriptions: the request alone is known
        recorded(answer if isinstance(answer, dict) else {})
        return _answered(Response(content, status), upstream)

    async def _send(self, request: Request, path: str, body: bytes) -> aiohttp.ClientResponse:
        assert self._client is not None, "the gateway serves only while running"
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED]
        headers.append(("accept-encoding", "identity"))  # the gateway reads what it records
        if self._settings.upstream_api_key:
            headers.append(("authorization", f"Bearer {self._settings.upstream_api_key}"))
        query = request.url.query
        # The caller's path and query as they were encoded: the upstream sees the same URL.
        url = yarl.URL(f"{self._upstream}/{path}" + (f"?{query}" if query else ""), encoded=True)
        try:
            return await self._client.request(request.method, url, data=body, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _upstream_error(exc) from None

    async def _stream(self, relay: Relay) -> AsyncIterator[bytes]:
        """The caller's side of a relay; if the caller leaves, the upstream is still read."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        task = asyncio.create_task(relay.run(queue.put_nowait))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)
        finished = False
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
            finished = True
        finally:
            if not finished:
                # The caller went away: read on for the usage, for a while.
                asyncio.get_running_loop().call_later(self._settings.drain_seconds, task.cancel)

    def _checked(self, events: list[Event], now: int) -> list[Event]:
        """Events the store will take; an answer with odd details is recorded by its totals."""
        rules = EventRules(now=now)
        kept = []
        for event in events:
            try:
                parse_events([event], rules)
                kept.append(event)
                continue
            except (ApiError, Invalid) as exc:
                problem = getattr(exc, "message", str(exc))
            basic = {
                k: v for k, v in event.items() if not k.startswith(("input_", "output_")) or k in _TOTALS
            }
            try:
                parse_events([basic], rules)
                kept.append(basic)
                log.warning("usage of %s recorded by its totals only: %s", event["id"], problem)
            except (ApiError, Invalid) as exc:
                log.error("usage of %s not recorded: %s", event["id"], getattr(exc, "message", exc))
        return kept


_TOTALS = {"input_tokens", "output_tokens", "input_cached_tokens"}


class Relay:
    """Reads an upstream stream to its end, handing chunks on and recording the usage in it."""

    def __init__(
        self,
        upstream: aiohttp.ClientResponse,
        recorded: Callable[[dict[str, Any]], None],
        added_usage: bool,
        *,
        is_speech: bool = False,
    ) -> None:
        self._upstream = upstream
        self._recorded = recorded
        self._added_usage = added_usage
        self._is_speech = is_speech

    async def run(self, hand_on: Callable[[bytes | None], None]) -> None:
        splitter = EventSplitter()
        try:
            async for chunk in self._upstream.content.iter_any():
                if self._is_speech:
                    hand_on(chunk)
                    continue
                for event in splitter.feed(chunk):
                    if (shown := self._event(event)) is not None:
                        hand_on(shown)
            if self._is_speech:
                self._recorded({})
            elif (rest := splitter.rest()) and (shown := self._event(rest)) is not None:
                hand_on(shown)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("an upstream stream broke off: %s", exc)
        finally:
            self._upstream.release()
            hand_on(None)

    def _event(self, event: bytes) -> bytes | None:
        """The event as the caller sees it (None: not shown), recording any usage in it."""
        data = event_data(event)
        if not isinstance(data, dict):
            return event
        if data.get("type") in ("response.completed", "response.incomplete"):
            answer = data.get("response")
            self._recorded(answer if isinstance(answer, dict) else {})
            return event
        if isinstance(data.get("usage"), dict) and "choices" in data:
            self._recorded(data)
            # The usage chunk the gateway asked for is not the caller's to see.
            return None if self._added_usage and not data["choices"] else event
        return without_null_usage(event) if self._added_usage else event


def _request_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """The request's JSON object, or the plain fields of a multipart form; {} for anything else."""
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        fields: dict[str, Any] = {}

        def on_field(f: Any) -> None:
            if f.field_name in _FORM_FIELDS and f.value is not None:
                fields[f.field_name.decode()] = f.value.decode("utf-8", "replace")

        try:
            python_multipart.parse_form(
                {"Content-Type": content_type.encode()}, io.BytesIO(body), on_field, lambda f: None
            )
        except Exception:  # the upstream judges the form; the recording takes what it can
            return fields
        return fields
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


async def _raw(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The upstream's body as it comes, for calls that are not recorded."""
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("an upstream answer broke off: %s", exc)
    finally:
        upstream.release()


def _answered(response: Response, upstream: aiohttp.ClientResponse) -> Response:
    """``response`` with the upstream's headers (every value of a repeated one) but its own framing."""
    kept = [
        (name.lower(), value)
        for name, value in upstream.raw_headers
        if (lowered := name.decode("latin-1").lower()) not in _NOT_FORWARDED
        and lowered not in _OWN_ANSWER_HEADERS
    ]
    response.raw_headers = [*((k, v) for k, v in response.raw_headers if k != b"content-type"), *kept]
    return response


def _upstream_error(exc: Exception) -> ApiError:
    if isinstance(exc, TimeoutError):
        return ApiError(504, "The upstream model server did not answer in time.", type="server_error")
    return ApiError(
        502, f"The upstream model server could not be reached ({type(exc).__name__}).", type="server_error"
    )
