"""The keys of the newest stored events, held in memory, so that a commit learns that its
events are new without reading the events' table.

A retry carries its event's id and timestamp, so a commit must find out which of its
(id, timestamp) keys are stored already. Reading the table for them cost a commit of
2,000 events 8-11 ms at 2M stored events, more past 10M: late events widen every row
group's time range, so the look-up reads a day of events. Most keys are new, and most are
recent; this set answers for them from memory and sends the table only the keys it
cannot rule out.

The set holds a 64-bit hash (DuckDB's ``hash(id, ts)``) of the key of *every* stored
event from its floor hour on, in sorted runs per hour, and at most ``capacity`` of them:
past that its oldest hours are dropped and the floor rises. So a key at or past the floor
whose hash is absent is certainly not stored; a key before the floor, or whose hash is
present (stored, or one of two keys sharing a hash), is looked for in the table.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

HOUR = 3600
#: a floor before every timestamp: an empty store's set is complete
NO_FLOOR = -(2**62)
#: an hour's sorted runs are merged into one past this many (a commit adds one per hour
#: it touches), so that a look-up searches few
MAX_RUNS = 16

Hashes = npt.NDArray[np.uint64]
Stamps = npt.NDArray[np.int64]


class RecentKeys:
    """Hashes of the keys of all stored events from ``floor_hour`` on; not thread-safe (the
    store's writer holds its lock)."""

    def __init__(self, capacity: int, floor_hour: int = NO_FLOOR) -> None:
        """Empty, from ``floor_hour``: the caller adds every stored event's key from there on."""
        self.capacity = capacity
        self.floor_hour = floor_hour
        self.size = 0
        self._hours: dict[int, list[Hashes]] = {}

    def unsure(self, hashes: Hashes, stamps: Stamps) -> npt.NDArray[np.bool_]:
        """Which keys may be stored: before the floor, or with a hash the set holds."""
        hours = stamps // HOUR
        unsure = hours < self.floor_hour
        for hour in np.unique(hours[~unsure]).tolist():
            runs = self._hours.get(hour)
            if runs:
                at = hours == hour
                unsure[at] = _any_holds(runs, hashes[at])
        return unsure

    def add(self, hashes: Hashes, stamps: Stamps) -> None:
        """Note newly stored keys; then drop the oldest hours while the set is over capacity."""
        hours = stamps // HOUR
        for hour in np.unique(hours[hours >= self.floor_hour]).tolist():
            added = np.sort(hashes[hours == hour])
            runs = self._hours.setdefault(hour, [])
            runs.append(added)
            if len(runs) > MAX_RUNS:
                # A stable sort of concatenated sorted runs is a merge (timsort finds the runs).
                runs[:] = [np.sort(np.concatenate(runs), kind="stable")]
            self.size += len(added)
        while self.size > self.capacity:
            oldest = min(self._hours)
            self.size -= sum(len(run) for run in self._hours.pop(oldest))
            self.floor_hour = oldest + 1


def _any_holds(runs: list[Hashes], hashes: Hashes) -> npt.NDArray[np.bool_]:
    found = np.zeros(len(hashes), dtype=np.bool_)
    for run in runs:
        at = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
        found |= run[at] == hashes
    return found


def floor_for(hour_counts: list[tuple[int, int]], capacity: int) -> int:
    """The earliest hour from which, newest first, the events' count stays within capacity
    (``NO_FLOOR`` if all of them do). ``hour_counts``: (hour, events), newest first."""
    total = 0
    floor = NO_FLOOR
    for hour, events in hour_counts:
        total += events
        if total > capacity:
            return hour + 1 if floor == NO_FLOOR else floor
        floor = hour
    return NO_FLOOR


def hour_ranges(hour_counts: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """Hours ``[first, end)`` covering ``hour_counts`` ((hour, events), oldest first), each
    range holding at most ``most`` events unless one hour alone holds more."""
    ranges: list[tuple[int, int]] = []
    first, held = None, 0
    for hour, events in hour_counts:
        if first is not None and held + events > most:
            ranges.append((first, hour))
            first, held = None, 0
        if first is None:
            first = hour
        held += events
    if first is not None:
        ranges.append((first, hour_counts[-1][0] + 1))
    return ranges
