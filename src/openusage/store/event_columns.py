"""A batch of events held column by column, as the server's fast path checks a batch and
as DuckDB reads one: turning its columns into rows and back cost the server about 1.6 ms
of Python a batch of 1,000 events, under the interpreter lock. Rows are made only for
whoever asks for them (a row-wise engine)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

from .base import COLUMN_DEFAULTS, COLUMNS, DEFAULT_ROW, Row

#: a column's values, one an event
Column = list[Any]


class EventColumns(Sequence[Row]):
    """``size`` events as the store's columns by name; a column not held is at its default
    (``DEFAULT_ROW``) in every event."""

    def __init__(self, columns: Mapping[str, Column], size: int) -> None:
        self.columns = dict(columns)
        self._size = size
        self._rows: list[Row] | None = None

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | Sequence[Row]:
        return self.rows()[index]

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows())

    def rows(self) -> list[Row]:
        """The events as rows, made once."""
        if self._rows is None:
            n = self._size
            listed = (
                [default] * n if held is None else held
                for held, default in zip(map(self.columns.get, COLUMNS), DEFAULT_ROW, strict=True)
            )
            self._rows = list(zip(*listed, strict=True))
        return self._rows


def distinct_values(rows: Sequence[Row], name: str) -> set[Any]:
    """The values one column of a batch holds, whether the batch is columns or rows."""
    if isinstance(rows, EventColumns):
        held = rows.columns.get(name)
        return {COLUMN_DEFAULTS[name]} if held is None else set(held)
    at = COLUMNS.index(name)
    return {row[at] for row in rows}
