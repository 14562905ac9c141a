"""Time buckets: pure arithmetic on unix seconds, all in UTC, all half-open ``[start, end)``.

Usage buckets start exactly at the requested start (a partial first bucket), then follow
the UTC boundaries of the width, and the last one is cut at the effective end. Costs
buckets are whole UTC days: the first snaps down to midnight, the last is the whole day
that holds the effective end, so it may end in the future.
"""

from __future__ import annotations

from collections.abc import Iterator

from .catalogue import WIDTH_SECONDS

DAY = 86400


def floor_to(ts: int, width_seconds: int) -> int:
    """The boundary at or before ``ts``."""
    return ts - ts % width_seconds


def ceil_to(ts: int, width_seconds: int) -> int:
    """The boundary at or after ``ts``."""
    return -(-ts // width_seconds) * width_seconds


def iter_buckets(start: int, end: int, width: str, *, whole_days: bool = False) -> Iterator[tuple[int, int]]:
    """Every bucket from ``start`` up to the effective ``end``, oldest first.

    ``whole_days`` gives the costs layout; otherwise the usage layout.
    """
    seconds = WIDTH_SECONDS[width]
    if whole_days:
        start = floor_to(start, seconds)
        end = ceil_to(end, seconds)
    cursor = start
    while cursor < end:
        bucket_end = min(floor_to(cursor, seconds) + seconds, end)
        yield cursor, bucket_end
        cursor = bucket_end


def page_of_buckets(
    page_start: int, end: int, width: str, limit: int, *, whole_days: bool = False
) -> tuple[list[tuple[int, int]], bool]:
    """Up to ``limit`` buckets from ``page_start``, and whether more remain before ``end``."""
    buckets: list[tuple[int, int]] = []
    for bucket in iter_buckets(page_start, end, width, whole_days=whole_days):
        if len(buckets) == limit:
            return buckets, True
        buckets.append(bucket)
    return buckets, False
