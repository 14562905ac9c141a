"""A batch of events held column by column, as the server's fast path checks a batch and
as DuckDB reads one: turning columns into rows and back cost the server about 1.6 ms of
Python a batch of 1,000 events, under the interpreter lock. Rows are made only for
whoever asks for them (a row-wise engine, a retry's look-up)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np

from .base import COLUMNS, DEFAULT_ROW, Row

#: a column's values: a list, or 64-bit integers in an array
Column = list[Any] | np.ndarray

_DEFAULTS = dict(zip(COLUMNS, DEFAULT_ROW, strict=True))


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
                [default] * n if held is None else held.tolist() if isinstance(held, np.ndarray) else held
                for held, default in zip(map(self.columns.get, COLUMNS), DEFAULT_ROW, strict=True)
            )
            self._rows = list(zip(*listed, strict=True))
        return self._rows

    def values(self, name: str) -> list[Any]:
        """One column's values as Python objects, its default where it is not held."""
        held = self.columns.get(name)
        if held is None:
            return [_DEFAULTS[name]] * self._size
        return held.tolist() if isinstance(held, np.ndarray) else held


def distinct_values(rows: Sequence[Row], name: str) -> set[Any]:
    """The values one column of a batch holds, whether the batch is columns or rows."""
    if isinstance(rows, EventColumns):
        return set(rows.values(name))
    at = COLUMNS.index(name)
    return {row[at] for row in rows}
