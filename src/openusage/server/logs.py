"""Structured logs: one JSON object a line, every request with its id, never a secret.

Access lines carry the method, the path without its query string, the status and the time
taken; the Authorization header is never read here, so no key can reach a log.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .connections import ANSWERED
from .errors import ApiError

access = logging.getLogger("openusage.access")
log = logging.getLogger("openusage.server")
_STANDARD = set(vars(logging.makeLogRecord({})))
#: request ids name requests, they guard nothing: drawn from a generator seeded once from
#: the system's randomness rather than a system call each (2% of the event loop's time a
#: single event)
_request_ids = random.Random()


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON, with the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(
            {
                k: v
                for k, v in vars(record).items()
                if k not in _STANDARD and k != "color_message" and k[0] != "_"
            }
        )
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config`` dict for the server and uvicorn: JSON lines on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "openusage": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
        },
    }


class RequestLogMiddleware:
    """Gives every request an id (sent back as ``x-request-id``, as OpenAI's) and logs it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{_request_ids.getrandbits(128):032x}"
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        upstream_id: str | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, upstream_id
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                # A gateway's answer keeps its upstream's id, the one the upstream can look up;
                # the log line ties it to this request's own.
                upstream_id = next((v.decode("latin-1") for k, v in headers if k == b"x-request-id"), None)
                if upstream_id is None:
                    headers.append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client left before its body was in (499, nginx's "client closed request"),
            # or its connection cut the body off with an answer of its own: nothing broken.
            status = scope["state"].get(ANSWERED, 499)
        finally:
            access.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    **({"upstream_request_id": upstream_id} if upstream_id else {}),
                },
            )


class ServerErrorMiddleware:
    """A fault becomes one 500 in the API's envelope, logged once with its request id.

    Starlette's own handler re-raises after answering, so the server logged each fault a
    second time and closed the kept-alive connection; this one keeps the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except ClientDisconnect:
            raise  # not a fault: the access log records it
        except Exception as exc:
            log.error(
                "unhandled error",
                exc_info=exc,
                extra={"request_id": scope.get("state", {}).get("request_id"), "path": scope["path"]},
            )
            if started:
                raise  # half an answer is out: only closing the connection can tell the client
            fault = ApiError(
                500, "The server had an error while processing your request.", type="server_error"
            )
            body = orjson.dumps(fault.body())
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"%d" % len(body)),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
