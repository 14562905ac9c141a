"""Usage events, the way in: one model request, tool call, session or storage snapshot.

An event is a JSON object with an ``id`` (the idempotency key), a ``type`` (a usage kind of
the catalogue), a ``timestamp`` (unix seconds or RFC 3339 with a zone), the dimensions its
kind has and its metrics. Anything else is refused: a misspelt field would otherwise be
lost without a word. Checking is all-or-nothing per batch; the first bad field is named.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..catalogue import USAGE_KINDS, Dimension, Endpoint, Metric
from ..store.base import DEFAULT_ROW, DIMENSION_COLUMNS, METRIC_COLUMNS, Row
from .errors import ApiError, bad_request, shown

MAX_STRING_LENGTH = 256
EARLIEST_TIMESTAMP = 946_684_800  # 2000-01-01T00:00:00Z: anything older is a unit mistake


@dataclass(frozen=True)
class EventRules:
    """The limits that depend on settings and on the clock."""

    now: int
    max_future_seconds: int = 86_400


class Invalid(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise Invalid(field, f"'{field}' must be a string")
    if not value or len(value) > MAX_STRING_LENGTH:
        raise Invalid(field, f"'{field}' must be 1 to {MAX_STRING_LENGTH} characters long")
    if "\x00" in value:
        raise Invalid(field, f"'{field}' must not contain NUL characters")
    return value


def check_timestamp(value: Any, rules: EventRules) -> int:
    if isinstance(value, bool):
        raise Invalid("timestamp", "'timestamp' must be unix seconds or an RFC 3339 string")
    if isinstance(value, int):
        ts = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid("timestamp", "'timestamp' must be a finite number")
        ts = math.floor(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise Invalid(
                "timestamp", f"'timestamp' {shown(value)} is not RFC 3339 (e.g. 2026-11-25T10:00:00Z)"
            ) from None
        if parsed.tzinfo is None:
            raise Invalid("timestamp", "'timestamp' needs a time zone (e.g. a trailing Z)")
        ts = math.floor(parsed.timestamp())
    else:
        raise Invalid("timestamp", "'timestamp' must be unix seconds or an RFC 3339 string")
    latest = rules.now + rules.max_future_seconds
    if not EARLIEST_TIMESTAMP <= ts <= latest:
        raise Invalid(
            "timestamp",
            f"'timestamp' {ts} is out of range: it must lie between {EARLIEST_TIMESTAMP} (2000-01-01) "
            f"and {latest} (now plus {rules.max_future_seconds} s)",
        )
    return ts


def _metric(value: Any, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise Invalid(field, f"'{field}' must be a non-negative integer, got {shown(value)}")
    if not 0 <= value <= maximum:
        raise Invalid(field, f"'{field}' must be between 0 and {maximum}, got {value}")
    return int(value)


#: (total, its parts, the part that is left over when the others are given)
TOKEN_IDENTITIES = (
    (
        "input_cache_write_tokens",
        ("input_cache_write_30m_tokens", "input_cache_write_12h_tokens"),
        "input_cache_write_30m_tokens",
    ),
    (
        "input_cached_tokens",
        ("input_cached_text_tokens", "input_cached_audio_tokens", "input_cached_image_tokens"),
        "input_cached_text_tokens",
    ),
    (
        "output_tokens",
        ("output_text_tokens", "output_audio_tokens", "output_image_tokens"),
        "output_text_tokens",
    ),
    (
        "input_uncached_tokens",
        ("input_text_tokens", "input_audio_tokens", "input_image_tokens"),
        "input_text_tokens",
    ),
    (
        "input_tokens",
        ("input_cached_tokens", "input_cache_write_tokens", "input_uncached_tokens"),
        "input_uncached_tokens",
    ),
)


def token_identities(m: dict[str, int], given: set[str]) -> None:
    """Fill the derived token counts of a completions-shaped event and check the rest.

    The official definitions: ``input_tokens`` = cached + cache-write + uncached input;
    the uncached input is text + audio + image, each the *uncached* part of its modality;
    the cached input is cached text + audio + image; cache writes are 30-minute plus
    12-hour writes; output is text + audio + image. A total that is not given is the sum
    of its parts; a part that is not given is what its total leaves.
    """
    *separate, uncached, whole = TOKEN_IDENTITIES
    for identity in separate:
        _settle(m, given, *identity)
    if "input_tokens" in given and "input_uncached_tokens" not in given:
        # The uncached input is what the total leaves, before it is split by modality.
        _settle(m, given, *whole)
    _settle(m, given, *uncached)
    _settle(m, given, *whole)


def _settle(m: dict[str, int], given: set[str], total: str, parts: tuple[str, ...], rest: str) -> None:
    if total not in given:
        m[total] = sum(m[p] for p in parts)
        given.add(total)
        return
    if rest not in given:
        left = m[total] - sum(m[p] for p in parts if p != rest)
        if left < 0:
            others = [p for p in parts if p != rest]
            culprit = next(p for p in others if m[p] > 0)
            raise Invalid(culprit, f"{' + '.join(repr(p) for p in others)} exceed '{total}'")
        m[rest] = left
        given.add(rest)
        return
    if sum(m[p] for p in parts) != m[total]:
        raise Invalid(
            total,
            f"'{total}' must equal {' + '.join(repr(p) for p in parts)} "
            f"({sum(m[p] for p in parts)}), got {m[total]}",
        )


@dataclass(frozen=True)
class _Shape:
    """What an event of one kind may hold, and where each field goes in a store row."""

    fields: frozenset[str]
    dimensions: tuple[tuple[Dimension, int], ...]
    metrics: tuple[tuple[Metric, int], ...]
    #: completions-shaped: the token identities apply
    tokens: bool


def _shape(endpoint: Endpoint) -> _Shape:
    first_dimension, first_metric = 3, 3 + len(DIMENSION_COLUMNS)
    return _Shape(
        fields=frozenset(
            {"id", "type", "timestamp", *(d.name for d in endpoint.dimensions), *endpoint.metric_names}
        ),
        dimensions=tuple((d, first_dimension + DIMENSION_COLUMNS.index(d.name)) for d in endpoint.dimensions),
        metrics=tuple((m, first_metric + METRIC_COLUMNS.index(m.name)) for m in endpoint.metrics),
        tokens="input_uncached_tokens" in endpoint.metric_names,
    )


#: per usage kind, computed once: events are checked by the thousand
SHAPES: dict[str, _Shape] = {name: _shape(endpoint) for name, endpoint in USAGE_KINDS.items()}


def _row(event: Any, rules: EventRules) -> Row:
    if not isinstance(event, dict):
        raise Invalid(None, "an event must be a JSON object")
    if "type" not in event:
        raise Invalid("type", "'type' is required")
    kind = event["type"]
    shape = SHAPES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        raise Invalid("type", f"'type' must be one of: {', '.join(USAGE_KINDS)}; got {shown(kind)}")
    if "id" not in event:
        raise Invalid("id", "'id' is required")
    event_id = _string(event["id"], "id")
    if "timestamp" not in event:
        raise Invalid("timestamp", "'timestamp' is required")
    ts = check_timestamp(event["timestamp"], rules)

    if not shape.fields.issuperset(event):
        name = next(name for name in event if name not in shape.fields)
        raise Invalid(name, f"unknown field {shown(name)} for an event of type '{kind}'")

    row = list(DEFAULT_ROW)
    row[0], row[1], row[2] = event_id, kind, ts
    for d, at in shape.dimensions:
        value = event.get(d.name)
        if value is None:
            value = d.default
        if value is None:
            if d.required:
                raise Invalid(d.name, f"'{d.name}' is required for an event of type '{kind}'")
            continue
        if d.type == "boolean":
            if not isinstance(value, bool):
                raise Invalid(d.name, f"'{d.name}' must be true, false or null")
            row[at] = value
            continue
        row[at] = _string(value, d.name)
        if d.values is not None and value not in d.values:
            raise Invalid(d.name, f"'{d.name}' must be one of: {', '.join(d.values)}; got {shown(value)}")

    if shape.tokens:
        values: dict[str, int] = {}
        given: set[str] = set()
        for m, _ in shape.metrics:
            raw = event.get(m.name)
            if raw is None:
                values[m.name] = m.default
            else:
                values[m.name] = _metric(raw, m.name, m.maximum)
                given.add(m.name)
        token_identities(values, given)
        for m, at in shape.metrics:
            row[at] = values[m.name]
    else:
        for m, at in shape.metrics:
            raw = event.get(m.name)
            row[at] = m.default if raw is None else _metric(raw, m.name, m.maximum)
    return tuple(row)


def parse_events(events: Sequence[Any], rules: EventRules) -> list[Row]:
    """Every event as a store row, or a 400 naming the first bad event and field."""
    rows = []
    for index, event in enumerate(events):
        try:
            rows.append(_row(event, rules))
        except Invalid as invalid:
            param = f"events[{index}]" + (f".{invalid.field}" if invalid.field else "")
            raise bad_request(f"Invalid event at index {index}: {invalid.message}.", param=param) from None
    return rows


def events_from_body(body: Any, max_events: int) -> Sequence[Any]:
    """The list of events in a JSON body ``{"events": [...]}``."""
    if not isinstance(body, dict) or "events" not in body:
        raise bad_request('The body must be a JSON object {"events": [...]}.', param="events")
    events = body["events"]
    if not isinstance(events, list):
        raise bad_request("'events' must be a list of event objects.", param="events")
    check_batch_size(len(events), max_events)
    return events


def check_batch_size(count: int, max_events: int) -> None:
    if count == 0:
        raise bad_request("The batch holds no events.", param="events")
    if count > max_events:
        raise ApiError(
            413,
            f"Too many events in one batch: {count} > {max_events}. Split it into smaller batches.",
            param="events",
        )
