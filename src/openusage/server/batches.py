"""A batch of events decoded and checked in one pass, for the common case of a valid one.

``events.py`` states the rules and names the first bad field; it costs about 10 µs an
event in Python. Here msgspec decodes the body straight into one typed struct per event
kind (types, lengths, ranges, enumerated values and unknown fields checked in C, about
1 µs an event), and only what msgspec cannot say is left to Python: timestamps, defaults
and the token identities. Anything unusual (a wrong field, a float count, a NUL, an
empty or oversized batch) returns None, and the caller takes the careful path, which
either accepts the batch the same way or says exactly what is wrong with it.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from ..catalogue import USAGE_KINDS, Dimension, Endpoint, Metric
from ..store.base import Row
from ..store.event_columns import Column, EventColumns
from .events import (
    MAX_STRING_LENGTH,
    SHAPES,
    EventRules,
    Invalid,
    check_timestamp,
    token_identities,
)

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STRING_LENGTH)]


def _dimension_type(dimension: Dimension) -> Any:
    if dimension.type == "boolean":
        return bool | None
    if dimension.values is not None:
        return Literal[dimension.values] | None
    return _Text | None


def _struct(endpoint: Endpoint) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any, Any]] = [("id", _Text, msgspec.NODEFAULT)]
    fields.append(("timestamp", int | float | str, msgspec.NODEFAULT))
    fields += [(d.name, _dimension_type(d), None) for d in endpoint.dimensions]
    fields += [
        (m.name, Annotated[int, msgspec.Meta(ge=0, le=m.maximum)] | None, None) for m in endpoint.metrics
    ]
    return msgspec.defstruct(
        f"{endpoint.name}_event",
        fields,
        tag_field="type",
        tag=endpoint.name,
        forbid_unknown_fields=True,
        array_like=False,
    )


STRUCTS: dict[str, type[msgspec.Struct]] = {name: _struct(e) for name, e in USAGE_KINDS.items()}
_ANY_EVENT = functools.reduce(operator.or_, STRUCTS.values())  # one struct per kind, told apart by "type"
_Batch = msgspec.defstruct("Batch", [("events", list[_ANY_EVENT])])  # type: ignore[valid-type]
_decoder = msgspec.json.Decoder(_Batch)
KIND_OF = {struct: kind for kind, struct in STRUCTS.items()}


Columns = dict[str, Column]


class _Column(list[int]):
    """A metric's values for a group of events, for ``events.token_identities``: sums and
    differences element by element, and a comparison is true when any element makes it
    so, which is when that function refuses an event; so the rules run as written, on a
    whole column at once."""

    def __add__(self, other: Any) -> _Column:  # type: ignore[override]
        return _Column(map(operator.add, self, other))

    def __radd__(self, other: Any) -> _Column:
        return self if other == 0 else _Column(map(operator.add, other, self))  # sum() starts at 0

    def __sub__(self, other: Any) -> _Column:
        return _Column(map(operator.sub, self, other))

    def __lt__(self, other: Any) -> bool:
        return bool(min(self) < other)

    def __gt__(self, other: Any) -> bool:
        return bool(max(self) > other)

    def __ne__(self, other: object) -> bool:
        return list.__ne__(self, other)


def _kind_columns(kind: str, events: list[Any], rules: EventRules) -> Columns:
    """The store's columns for events of one kind, by column name."""
    shape = SHAPES[kind]
    n = len(events)
    columns: Columns = {"id": [e.id for e in events], "kind": [kind] * n}
    stamps = [e.timestamp for e in events]
    if all(type(v) is int for v in stamps):  # the usual case: the range of two is checked
        check_timestamp(min(stamps), rules)
        check_timestamp(max(stamps), rules)
        columns["ts"] = stamps
    else:
        columns["ts"] = [check_timestamp(v, rules) for v in stamps]
    for d, _ in shape.dimensions:
        column = list(map(operator.attrgetter(d.name), events))
        if d.default is not None:
            column = [d.default if v is None else v for v in column]
        elif d.required and None in column:
            raise Invalid(d.name, "required")
        columns[d.name] = column
    values = {m.name: list(map(operator.attrgetter(m.name), events)) for m, _ in shape.metrics}
    if shape.tokens:
        return columns | _settled(shape.metrics, values, n)
    for m, _ in shape.metrics:
        columns[m.name] = [m.default if v is None else v for v in values[m.name]]
    return columns


def _settled(metrics: tuple[tuple[Metric, int], ...], given_values: Columns, n: int) -> Columns:
    """The token counts of completions-shaped events with every identity applied. Events
    that give the same counts are settled together; a batch is mostly one such group."""
    names = [m.name for m, _ in metrics]
    defaults = {m.name: m.default for m, _ in metrics}
    missing = {name: given_values[name].count(None) for name in names}
    if all(count in (0, n) for count in missing.values()):  # every event gives the same counts
        return _settled_alike(given_values, {name for name in names if not missing[name]}, defaults, n)
    groups: dict[tuple[bool, ...], list[int]] = {}
    signatures = zip(*([v is not None for v in given_values[name]] for name in names), strict=True)
    for place, signature in enumerate(signatures):
        groups.setdefault(signature, []).append(place)
    settled: Columns = {name: [0] * n for name in names}
    for signature, places in groups.items():
        given = {name for name, g in zip(names, signature, strict=True) if g}
        values = {name: [given_values[name][i] for i in places] for name in given}
        for name, column in _settled_alike(values, given, defaults, len(places)).items():
            whole = settled[name]
            for place, value in zip(places, column, strict=True):
                whole[place] = value
    return settled


def _settled_alike(given_values: Columns, given: set[str], defaults: dict[str, int], n: int) -> Columns:
    """The token counts of ``n`` events that all give the counts named in ``given``."""
    group = {
        name: _Column(given_values[name]) if name in given else _Column([default] * n)
        for name, default in defaults.items()
    }
    token_identities(group, given)  # type: ignore[arg-type]
    # Plain lists: a _Column added to a list with += would be summed into it.
    return {name: list(column) for name, column in group.items()}


#: fewer events than this are handed on as rows (making columns of one event cost more)
FEW_EVENTS = 64


def _columns(kind: str, events: list[Any], rules: EventRules) -> Sequence[Row]:
    """Events of one kind as columns, or as rows if they are few (the store reads a run of
    batches of rows into columns at once)."""
    columns = EventColumns(_kind_columns(kind, events, rules), len(events))
    return columns if len(events) >= FEW_EVENTS else columns.rows()


def fast_rows(body: bytes, rules: EventRules, max_events: int) -> Sequence[Row] | None:
    """The store rows of a valid ``{"events": [...]}`` body (as columns when the events are
    of one kind, as a batch mostly is), or None to take the careful path (which gives the
    same rows, or the precise error)."""
    if b"\\u0000" in body:  # JSON spells a NUL only so; the careful path refuses it by name
        return None
    try:
        events = _decoder.decode(body).events  # type: ignore[attr-defined]
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not 0 < len(events) <= max_events:
        return None
    kinds = [KIND_OF[type(event)] for event in events]
    try:
        if len(set(kinds)) == 1:
            return _columns(kinds[0], events, rules)
        rows: list[Row] = [()] * len(events)
        for kind in set(kinds):  # each kind apart, back in the batch's order
            places = [i for i, k in enumerate(kinds) if k == kind]
            for place, row in zip(places, _columns(kind, [events[i] for i in places], rules), strict=True):
                rows[place] = row
        return rows
    except Invalid:
        return None
