"""HTTP connections a slow or hostile client cannot hold: timeouts and oversized requests.

uvicorn's h11 protocol, with three changes:

- a request's line and headers must arrive within ``HEADER_TIMEOUT`` seconds of its first
  byte (or of the connection, for the first request); an idle kept-alive connection is
  closed after ``KEEP_ALIVE_TIMEOUT`` seconds, however slowly bytes trickle in;
- a request line or headers past ``MAX_HEAD_BYTES`` get 414 (or 431) in the API's error
  envelope, and a malformed request 400, instead of a plain-text body;
- after such an answer the connection reads and drops what the client still sends for a
  moment before closing, so the client gets the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import socket
from functools import partial
from typing import Any

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import ApiError

HEADER_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5
MAX_HEAD_BYTES = 64 * 1024
#: how long a refused request's remaining bytes are drained before the connection closes
LINGER_SECONDS = 1.0


class GuardedH11Protocol(H11Protocol):
    """The h11 protocol with a deadline for each request's head and enveloped refusals."""

    def __init__(self, *args: Any, head_timeout: float = HEADER_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = head_timeout
        self._head_deadline: asyncio.TimerHandle | None = None
        self._draining = False

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
        if self._head_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_deadline()  # the first bytes of the next request
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_head_deadline()  # the head is in: the request is being answered

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
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
        if self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(408, "The request's headers did not arrive in time.")

    def send_400_response(self, msg: str) -> None:
        # h11 says why it stopped: a head past the limit, or a malformed request.
        too_long = len(self.conn.trailing_data[0]) >= MAX_HEAD_BYTES
        if too_long and b"\r\n" not in bytes(self.conn.trailing_data[0][:MAX_HEAD_BYTES]):
            self._refuse(414, f"The request line is longer than {MAX_HEAD_BYTES} bytes.")
        elif too_long:
            self._refuse(431, f"The request's headers are larger than {MAX_HEAD_BYTES} bytes.")
        else:
            self._refuse(400, "The request is not valid HTTP.")

    def _refuse(self, status: int, message: str) -> None:
        self._disarm_head_deadline()
        body = orjson.dumps(ApiError(status, message).body())
        reason = {400: b"Bad Request", 408: b"Request Timeout", 414: b"URI Too Long"}.get(
            status, b"Request Header Fields Too Large"
        )
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        # Drop what the client still sends for a moment: closing a socket with unread
        # data makes the peer see a reset, and lose the answer.
        self._draining = True
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def connection_limits(head_timeout: float = HEADER_TIMEOUT) -> dict[str, Any]:
    """What ``openusage serve`` hands uvicorn."""
    return {
        "http": partial(GuardedH11Protocol, head_timeout=head_timeout),
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
