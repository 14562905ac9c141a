"""Query parameters of the read endpoints: parsed and checked against the catalogue.

Arrays arrive in three encodings and all are accepted: repeated keys
(``group_by=a&group_by=b``), brackets (``group_by[]=a``, what the official Python SDK
sends) and comma-joined (``group_by=a,b``). A filter value in the repeated or bracket
encoding is taken exactly as sent, commas and spaces included; a key given once, without
brackets, is split at its commas (and the parts trimmed) when it has any. Unknown
parameters are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..catalogue import Endpoint
from .errors import bad_request, shown

# Unix seconds from 1970 up to the end of year 9999.
MAX_TIMESTAMP = 253_402_300_799
MAX_VALUE_LENGTH = 256


@dataclass(frozen=True)
class UsageQuery:
    """One checked request to a read endpoint."""

    endpoint: Endpoint
    start_time: int
    end_time: int | None
    width: str
    limit: int
    group_by: tuple[str, ...]
    #: dimension name -> the values it may take (a boolean dimension: one bool)
    filters: dict[str, tuple[str | bool, ...]]
    page: str | None

    def canonical(self) -> str:
        """The parameters a cursor is bound to (all but ``limit`` and ``page``)."""
        return json.dumps(
            [
                self.endpoint.path,
                self.start_time,
                self.end_time,
                self.width,
                sorted(self.group_by),
                sorted((k, sorted(map(str, v))) for k, v in self.filters.items()),
            ],
            separators=(",", ":"),
        )


def _scalar(items: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in items if k == name]
    if len(values) > 1:
        raise bad_request(f"Parameter '{name}' was given more than once.", param=name)
    return values[0] if values else None


def _array(
    items: Sequence[tuple[str, str]], name: str, max_values: int, *, exact: bool = True, joinable: bool = True
) -> list[str] | None:
    """The values of an array parameter.

    ``exact`` keeps each repeated or bracket value whole (filters); a key given once
    without brackets is comma-joined unless the values are not ``joinable``.
    """
    given = [(k, v) for k, v in items if k in (name, name + "[]")]
    if not given:
        return None
    # One plain key holding commas is the comma-joined encoding, however the commas were
    # sent (a client library writes them as %2C).
    joined = len(given) == 1 and given[0][0] == name and "," in given[0][1]
    if not exact or (joined and joinable):
        values = [part.strip() for _, v in given for part in v.split(",") if part.strip()]
    else:
        values = [v for _, v in given if v]
    if len(values) > max_values:
        raise bad_request(f"Too many values for '{name}': at most {max_values} are allowed.", param=name)
    for value in values:
        if len(value) > MAX_VALUE_LENGTH:
            raise bad_request(
                f"A value of '{name}' is longer than {MAX_VALUE_LENGTH} characters.", param=name
            )
    return list(dict.fromkeys(values))


def _digits(raw: str) -> int | None:
    """Plain ASCII digits as an int; Python's int() would also take signs, underscores and
    other scripts' digits, which no client sends on purpose."""
    if not raw or len(raw) > 20 or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def _timestamp(items: Sequence[tuple[str, str]], name: str) -> int | None:
    raw = _scalar(items, name)
    if raw is None:
        return None
    value = _digits(raw)
    if value is None:
        raise bad_request(
            f"Invalid value for '{name}': expected unix seconds (an integer), got {shown(raw)}.", param=name
        )
    if not 0 <= value <= MAX_TIMESTAMP:
        raise bad_request(
            f"Invalid value for '{name}': {value} is outside 0..{MAX_TIMESTAMP} (unix seconds).", param=name
        )
    return value


def _boolean(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise bad_request(f"Invalid value for '{name}': expected true or false, got {shown(raw)}.", param=name)


def parse_query(endpoint: Endpoint, items: Sequence[tuple[str, str]], *, max_array_values: int) -> UsageQuery:
    """Check every parameter the endpoint knows; raise a 400 naming the first bad one."""
    start_time = _timestamp(items, "start_time")
    if start_time is None:
        raise bad_request("Missing required parameter: 'start_time'.", param="start_time")
    end_time = _timestamp(items, "end_time")
    if end_time is not None and end_time <= start_time:
        raise bad_request(
            f"Invalid value for 'end_time': it must be after 'start_time' ({end_time} <= {start_time}).",
            param="end_time",
        )

    width = _scalar(items, "bucket_width")
    if width is None:
        width = endpoint.default_width
    if width not in endpoint.limits:
        allowed = ", ".join(repr(w) for w in endpoint.widths)
        raise bad_request(
            f"Invalid value for 'bucket_width': {shown(width)}. Supported values are: {allowed}.",
            param="bucket_width",
        )
    bounds = endpoint.limits[width]

    raw_limit = _scalar(items, "limit")
    limit = bounds.default
    if raw_limit is not None:
        parsed = _digits(raw_limit)
        if parsed is None:
            raise bad_request(
                f"Invalid value for 'limit': expected an integer, got {shown(raw_limit)}.", param="limit"
            )
        limit = parsed
        if not 1 <= limit <= bounds.maximum:
            raise bad_request(
                f"Invalid value for 'limit': {limit}. With bucket_width={width} it must be "
                f"between 1 and {bounds.maximum}.",
                param="limit",
            )

    group_by: tuple[str, ...] = ()
    # Field names hold no commas, so group_by is split in every encoding.
    requested = _array(items, "group_by", max_array_values, exact=False)
    if requested:
        allowed_fields = endpoint.group_fields
        for name in requested:
            if name not in allowed_fields:
                raise bad_request(
                    f"Invalid value for 'group_by': {shown(name)}. Supported fields are: "
                    f"{', '.join(allowed_fields)}.",
                    param="group_by",
                )
        # Catalogue order, so that equal sets of fields are one query.
        group_by = tuple(f for f in allowed_fields if f in requested)

    filters: dict[str, tuple[str | bool, ...]] = {}
    for param, dimension in endpoint.filters.items():
        if dimension.type == "boolean":
            raw = _scalar(items, param)
            if raw is not None:
                filters[dimension.name] = (_boolean(raw, param),)
            continue
        values = _array(items, param, max_array_values, joinable=dimension.joinable)
        if values is None:
            continue
        if dimension.values is not None:
            for value in values:
                if value not in dimension.values:
                    raise bad_request(
                        f"Invalid value for '{param}': {shown(value)}. Supported values are: "
                        f"{', '.join(dimension.values)}.",
                        param=param,
                    )
        if values:
            filters[dimension.name] = tuple(values)

    page = _scalar(items, "page") or None
    return UsageQuery(
        endpoint=endpoint,
        start_time=start_time,
        end_time=end_time,
        width=width,
        limit=limit,
        group_by=group_by,
        filters=filters,
        page=page,
    )
