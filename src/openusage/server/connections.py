"""HTTP connections a slow or hostile client cannot hold: timeouts and oversized requests.

uvicorn's httptools protocol (llhttp, a C parser: about a tenth less server time a request
than h11 in pure Python, docs/performance.md), with four changes:

- a request's line and headers must arrive within ``HEADER_TIMEOUT`` seconds of its first
  byte (or of the connection, for the first request); an idle kept-alive connection is
  closed after ``KEEP_ALIVE_TIMEOUT`` seconds, however slowly bytes trickle in;
- a request's body must arrive within ``BODY_TIMEOUT`` seconds plus a second for each
  ``MIN_BODY_RATE`` bytes received (Apache's mod_reqtimeout rule): a slow upload over a
  poor link is kept, a trickle that would hold the connection for hours gets 408; time
  the server itself is not reading (a pipelined request waiting its turn, a full buffer,
  ``Expect: 100-continue`` not yet answered) does not count; while other requests wait for
  room in the budget of bodies the request holds a share of (``bodies.py``), it must
  average ``CONTENDED_BODY_RATE`` instead, so the budget goes round;
- a request line or headers of ``MAX_HEAD_BYTES`` or more get 414 (or 431) in the API's
  error envelope (llhttp sets no limit of its own), and a malformed request 400, instead
  of a plain-text body;
- after such an answer the connection reads and drops what the client still sends for a
  moment before closing, so the client gets the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress
from functools import partial
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .bodies import SHARE
from .errors import ApiError

HEADER_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5
BODY_TIMEOUT = 20.0
#: bytes a second a body must average once ``BODY_TIMEOUT`` has passed
MIN_BODY_RATE = 500
#: the same while others wait for the share of the budget of bodies a request holds: a
#: batch of the largest size (16 MiB) may then take the timeout and about a minute
CONTENDED_BODY_RATE = 256 * 1024
#: how often a body's pace is looked at: others may start waiting at any moment
PACE_CHECK_SECONDS = 1.0
#: where a request's scope state keeps the status its connection answered it with, when
#: the connection cut its body off (the app only sees the client gone)
ANSWERED = "answered_by_connection"
MAX_HEAD_BYTES = 64 * 1024
#: how long a refused request's remaining bytes are drained before the connection closes
LINGER_SECONDS = 1.0


class GuardedProtocol(HttpToolsProtocol):
    """The httptools protocol with deadlines for each request's head and body, a size limit
    for its head, and enveloped refusals."""

    def __init__(
        self,
        *args: Any,
        head_timeout: float = HEADER_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = head_timeout
        self._head_deadline: asyncio.TimerHandle | None = None
        self._body_timeout = body_timeout
        self._body_deadline: asyncio.TimerHandle | None = None
        #: when the body's clock started, and the body's bytes received (since the clock
        #: started afresh, if it did)
        self._body_since = 0.0
        self._body_bytes = 0
        self._draining = False
        #: between a request's headers and its end, its body arrives; else a head does
        self._in_body = False
        #: whether a request's first byte has arrived and its headers have not ended
        self._head_begun = False
        #: bytes of the head arriving (what chunks that began within it held) and whether
        #: its request line has ended
        self._head_bytes = 0
        self._line_ended = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # asyncio turns Nagle off only for sockets made with proto=IPPROTO_TCP, which a
        # socket handed over from socket.create_server is not: without this, each answer
        # waits ~40 ms for the client's delayed acknowledgement.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return
        idle = self.cycle is None or self.cycle.response_complete
        if self._head_deadline is None and idle and not self._in_body:
            self._arm_head_deadline()  # the first bytes of the next request
        # A chunk that begins within a head counts whole: one that also held the end of
        # a pipelined request before it counts not at all (under, never over, the limit).
        counted = not self._in_body
        if counted:
            self._head_bytes += len(data)
            self._line_ended = self._line_ended or b"\n" in data
        super().data_received(data)
        if self._in_body and self._body_deadline is None and not self._draining:
            # A body still to come (most arrive whole with their head: no timer for them).
            self._start_body_clock()
        if counted and self._head_begun and self._head_bytes >= MAX_HEAD_BYTES and not self._draining:
            if self._line_ended:
                self._refuse(431, f"The request's headers are larger than {MAX_HEAD_BYTES} bytes.")
            else:
                self._refuse(414, f"The request line is longer than {MAX_HEAD_BYTES} bytes.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        self._head_begun = False
        self._in_body = True
        self._head_bytes = 0
        self._line_ended = False
        self._disarm_head_deadline()  # the head is in: the request is being answered
        self._body_bytes = 0
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm_body_deadline()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        self._disarm_body_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm_head_deadline()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self._head_timeout, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if not self._head_begun:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(408, "The request's headers did not arrive in time.")

    def _start_body_clock(self) -> None:
        self._disarm_body_deadline()
        self._body_since = self.loop.time()
        self._body_deadline = self.loop.call_later(self._body_timeout, self._check_body_pace)

    def _disarm_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _check_body_pace(self) -> None:
        self._body_deadline = None
        if not self._in_body or self._draining or self.transport.is_closing():
            return
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # The server is not reading: the client is not to blame. Its clock starts afresh.
            self._body_bytes = 0
            self._start_body_clock()
            return
        share = cycle.scope.get("state", {}).get(SHARE) if cycle is not None else None
        contended = share is not None and share.others_wait()
        rate = CONTENDED_BODY_RATE if contended else MIN_BODY_RATE
        now = self.loop.time()
        allowed = self._body_since + self._body_timeout + self._body_bytes / rate
        if now < allowed:
            wait = min(allowed - now, PACE_CHECK_SECONDS)
            self._body_deadline = self.loop.call_later(wait, self._check_body_pace)
            return
        if cycle is not None and cycle.response_started:
            self._linger_then_close()  # answered already: the rest of the body is not needed
            return
        if cycle is not None:
            cycle.disconnected = True  # the app's next read of the body finds it gone
            cycle.message_event.set()
            cycle.scope.setdefault("state", {})[ANSWERED] = 408
        if contended:
            self._refuse(408, "The request's body arrived too slowly while others waited: send it again.")
        else:
            self._refuse(408, "The request's body did not arrive in time.")

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "The request is not valid HTTP.")  # llhttp stopped: malformed

    def _refuse(self, status: int, message: str) -> None:
        self._disarm_head_deadline()
        self._disarm_body_deadline()
        body = orjson.dumps(ApiError(status, message).body())
        reason = {400: b"Bad Request", 408: b"Request Timeout", 414: b"URI Too Long"}.get(
            status, b"Request Header Fields Too Large"
        )
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self._linger_then_close()

    def _linger_then_close(self) -> None:
        # Drop what the client still sends for a moment: closing a socket with unread
        # data makes the peer see a reset, and lose the answer.
        self._draining = True
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def allow_many_connections() -> None:
    """Raise this process's limit on open files to its ceiling: every connection is one, and
    with the soft limit many systems set (1,024), as many idle connections would make the
    server refuse everyone else until the head deadline closed them."""
    try:
        import resource
    except ImportError:  # not on Windows: its sockets have no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with suppress(ValueError, OSError):  # a ceiling the kernel lowers (macOS): keep the limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def connection_limits(
    head_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT
) -> dict[str, Any]:
    """What ``openusage serve`` hands uvicorn."""
    return {
        "http": partial(GuardedProtocol, head_timeout=head_timeout, body_timeout=body_timeout),
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
    }
