"""Server-sent events as model servers stream them: ``data: {json}`` events split by a blank line."""

from __future__ import annotations

import re
from typing import Any

import orjson

_BOUNDARY = re.compile(rb"\r?\n\r?\n")
#: what ``stream_options.include_usage`` adds to every chunk of a chat completion stream
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])')


class EventSplitter:
    """Cuts a byte stream into whole events (each with its blank line), whatever the chunking."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        events = []
        while match := _BOUNDARY.search(self._pending):
            events.append(self._pending[: match.end()])
            self._pending = self._pending[match.end() :]
        return events

    def rest(self) -> bytes:
        """What followed the last blank line (a stream cut short, or one without a final blank line)."""
        rest, self._pending = self._pending, b""
        return rest


def event_data(event: bytes) -> Any:
    """The JSON of an event's ``data:`` lines, or None (``[DONE]``, comments, anything else)."""
    lines = [line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        return orjson.loads(b"\n".join(lines))
    except orjson.JSONDecodeError:
        return None


def without_null_usage(event: bytes) -> bytes:
    """A chunk as it would have been without ``include_usage``: its ``"usage": null`` removed."""
    return _NULL_USAGE.sub(b"", event, count=1)
