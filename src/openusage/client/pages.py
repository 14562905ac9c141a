"""Pages that walk on by themselves, and their export to rows, pandas and CSV.

A call returns the first page, typed. Iterating it yields every bucket of every page,
fetching the later pages lazily; ``iter_pages()`` yields the pages themselves.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, Generic

from pydantic import PrivateAttr

from .models import Bucket, R, UsageResponse

if TYPE_CHECKING:
    import pandas


def result_rows(buckets: Iterable[Bucket[Any]]) -> Iterator[dict[str, Any]]:
    """One flat row per result, with its bucket's start and end first."""
    for bucket in buckets:
        for result in bucket.results:
            row: dict[str, Any] = {"start_time": bucket.start_time, "end_time": bucket.end_time}
            for name, value in result.model_dump().items():
                if isinstance(value, dict):
                    # Costs' amount becomes amount_value and amount_currency.
                    row.update({f"{name}_{k}": v for k, v in value.items()})
                else:
                    row[name] = value
            yield row


def rows_to_pandas(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install 'openusage[pandas]'") from None
    frame = pandas.DataFrame.from_records(rows)
    for column in ("start_time", "end_time"):
        if column in frame:
            frame[column] = pandas.to_datetime(frame[column], unit="s", utc=True)
    return frame


def rows_to_csv(rows: list[dict[str, Any]], file: IO[str] | None = None) -> str | None:
    """Write CSV to ``file``, or return it as a string when no file is given."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    target = file if file is not None else io.StringIO()
    writer = csv.DictWriter(target, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return target.getvalue() if isinstance(target, io.StringIO) and file is None else None


class UsagePage(UsageResponse[R], Generic[R]):
    """A page of a sync client; iterating it walks every later page."""

    _fetch: Callable[[str], UsagePage[R]] | None = PrivateAttr(default=None)

    def iter_pages(self) -> Iterator[UsagePage[R]]:
        page = self
        yield page
        while page.has_more and page.next_page and page._fetch is not None:
            page = page._fetch(page.next_page)
            yield page

    def __iter__(self) -> Iterator[Bucket[R]]:  # type: ignore[override]
        for page in self.iter_pages():
            yield from page.data

    def to_rows(self) -> list[dict[str, Any]]:
        """Every result of every page, one flat row each."""
        return list(result_rows(self))

    def to_pandas(self) -> pandas.DataFrame:
        return rows_to_pandas(self.to_rows())

    def to_csv(self, file: IO[str] | None = None) -> str | None:
        return rows_to_csv(self.to_rows(), file)


class AsyncUsagePage(UsageResponse[R], Generic[R]):
    """A page of an async client; ``async for`` walks every later page."""

    _fetch: Callable[[str], Awaitable[AsyncUsagePage[R]]] | None = PrivateAttr(default=None)

    async def iter_pages(self) -> AsyncIterator[AsyncUsagePage[R]]:
        page = self
        yield page
        while page.has_more and page.next_page and page._fetch is not None:
            page = await page._fetch(page.next_page)
            yield page

    async def __aiter__(self) -> AsyncIterator[Bucket[R]]:
        async for page in self.iter_pages():
            for bucket in page.data:
                yield bucket

    async def to_rows(self) -> list[dict[str, Any]]:
        return list(result_rows([bucket async for bucket in self]))

    async def to_pandas(self) -> pandas.DataFrame:
        return rows_to_pandas(await self.to_rows())

    async def to_csv(self, file: IO[str] | None = None) -> str | None:
        return rows_to_csv(await self.to_rows(), file)
