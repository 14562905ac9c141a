"""Copying events from one store to another, in the order they were stored.

The target counts an event it holds already (same id and timestamp) as a duplicate, so a
copy can be run again, or resumed from any earlier place, without counting anything
twice; copying in storing order keeps the gauge's rule that a later report wins a tie.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .base import EventStore

#: events read and written at a time
BATCH_EVENTS = 20_000


@dataclass(frozen=True)
class Step:
    """One batch copied: the source's place reached, and what the target made of it."""

    place: int
    read: int
    copied: int
    duplicates: int


def copy_events(
    source: EventStore,
    target: EventStore,
    *,
    after: int = 0,
    until: int | None = None,
    batch: int = BATCH_EVENTS,
) -> Iterator[Step]:
    """Copy the events stored after place ``after`` (up to ``until``, if given), a batch at
    a time; each step is durable in the target before it is yielded."""
    while until is None or after < until:
        stored = source.stored_events(after, batch)
        if until is not None:
            stored = [(place, row) for place, row in stored if place <= until]
        if not stored:
            return
        result = target.append([row for _, row in stored])
        after = stored[-1][0]
        yield Step(place=after, read=len(stored), copied=result.inserted, duplicates=result.duplicates)
