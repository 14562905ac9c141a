"""Bucket arithmetic: unit cases and properties."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from openusage.buckets import DAY, ceil_to, floor_to, iter_buckets, page_of_buckets
from openusage.catalogue import WIDTH_SECONDS

times = st.integers(946_684_800, 4_102_444_800)
widths = st.sampled_from(list(WIDTH_SECONDS))


def test_usage_layout_matches_the_cookbook_capture() -> None:
    # start 2025-01-11 17:31:00, end 2025-02-10 17:31:03 (the captured request).
    buckets = list(iter_buckets(1_736_616_660, 1_739_208_663, "1d"))
    assert buckets[0] == (1_736_616_660, 1_736_640_000)
    assert buckets[1] == (1_736_640_000, 1_736_726_400)
    assert buckets[-1] == (1_739_145_600, 1_739_208_663)
    assert len(buckets) == 31


def test_costs_layout_snaps_to_whole_days() -> None:
    buckets = list(iter_buckets(1_736_616_660, 1_739_208_663, "1d", whole_days=True))
    assert buckets[0] == (1_736_553_600, 1_736_640_000)
    assert buckets[-1] == (1_739_145_600, 1_739_232_000)
    assert all(e - s == DAY for s, e in buckets)


def test_an_end_on_midnight_does_not_add_a_day() -> None:
    assert list(iter_buckets(DAY * 20_000, DAY * 20_002, "1d", whole_days=True)) == [
        (DAY * 20_000, DAY * 20_001),
        (DAY * 20_001, DAY * 20_002),
    ]


@given(start=times, length=st.integers(1, 5 * DAY), width=widths, whole_days=st.booleans())
def test_buckets_tile_the_range(start: int, length: int, width: str, whole_days: bool) -> None:
    end = start + length
    if width != "1d" and length > DAY:
        end = start + length % DAY + 1
    buckets = list(iter_buckets(start, end, width, whole_days=whole_days))
    seconds = WIDTH_SECONDS[width]
    assert buckets, "a non-empty range has at least one bucket"
    for (_, e1), (s2, _) in itertools.pairwise(buckets):
        assert e1 == s2, "buckets touch"
    for s, _ in buckets[1:]:
        assert s % seconds == 0, "interior buckets start on a boundary"
    assert all(0 < e - s <= seconds for s, e in buckets)
    if whole_days:
        assert buckets[0][0] == floor_to(start, seconds) and buckets[-1][1] == ceil_to(end, seconds)
    else:
        assert buckets[0][0] == start and buckets[-1][1] == end


@given(start=times, length=st.integers(1, 3 * DAY), width=widths, limit=st.integers(1, 50))
def test_pages_concatenate_to_all_buckets(start: int, length: int, width: str, limit: int) -> None:
    end = start + (length if width != "1m" else length % 20_000 + 1)
    everything = list(iter_buckets(start, end, width))
    walked: list[tuple[int, int]] = []
    cursor = start
    while True:
        page, more = page_of_buckets(cursor, end, width, limit)
        walked += page
        assert len(page) <= limit
        if not more:
            break
        cursor = page[-1][1]
    assert walked == everything
