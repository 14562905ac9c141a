"""``openusage ingest``: events from a file into a server, batch by batch.

Safe to run again on the same file: event ids make the server skip what it has, so a run
that stopped half-way is resumed by running it again. A batch the server refuses is stored
not at all; the report names its first bad line. With ``--rejects FILE`` the good events of
a batch are stored and every bad line goes to FILE with its line number and reason.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import click
import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..catalogue import USAGE_ENDPOINTS
from ..client.retry import RetryPolicy
from .common import EXIT_REFUSED, EXIT_REJECTED, EXIT_UNREACHABLE, INGEST_KEY_ENV, server_options

METRICS = {m.name for e in USAGE_ENDPOINTS for m in e.metrics}
BOOLEANS = {d.name for e in USAGE_ENDPOINTS for d in e.dimensions if d.type == "boolean"}
_EVENT_INDEX = re.compile(r"^events\[(\d+)\]")


@dataclass
class Line:
    """One event as read, with the line of the file it came from."""

    number: int
    event: Any = None
    error: str | None = None


@dataclass
class Report:
    sent: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)
    rejected_events: int = 0
    #: where bad lines go when the good ones of their batch are to be stored anyway
    rejects: IO[str] | None = None

    def reject(self, line: Line, reason: str) -> None:
        """One bad line, set aside for the user to fix and send again."""
        assert self.rejects is not None
        self.rejects.write(orjson.dumps({"line": line.number, "error": reason, "event": line.event}).decode())
        self.rejects.write("\n")
        self.rejected.append(f"line {line.number}: {reason}")
        self.rejected_events += 1


def _csv_value(name: str, value: str) -> Any:
    if name in METRICS or (name == "timestamp" and value.lstrip("-").isdigit()):
        try:
            return int(value)
        except ValueError:
            return value  # the server says what is wrong with it
    if name in BOOLEANS:
        return {"true": True, "false": False}.get(value.lower(), value)
    return value


class TextSource(Protocol):
    def read(self, size: int = -1, /) -> str: ...
    def __iter__(self) -> Iterator[str]: ...


def read_lines(stream: TextSource, kind: str) -> Iterator[Line]:
    """Events of an NDJSON, JSON or CSV stream, each with its line number."""
    if kind == "json":
        try:
            document = orjson.loads(stream.read())
        except orjson.JSONDecodeError as exc:
            yield Line(1, error=f"not valid JSON: {exc}")
            return
        events = document.get("events") if isinstance(document, dict) else document
        if not isinstance(events, list):
            yield Line(1, error='expected a list of events or {"events": [...]}')
            return
        for index, item in enumerate(events):
            yield Line(index + 1, item)
    elif kind == "csv":
        reader = csv.DictReader(stream)
        for row in reader:
            width = len(reader.fieldnames or ())
            if None in row:  # more values than the header names
                yield Line(reader.line_num, error=f"{width + len(row[None])} values, the header has {width}")
                continue
            if any(v is None for v in row.values()):  # fewer values than the header names
                given = sum(v is not None for v in row.values())
                yield Line(reader.line_num, error=f"{given} values, the header has {width}")
                continue
            event = {k: _csv_value(k, v) for k, v in row.items() if k and v != ""}
            yield Line(reader.line_num, event)
    else:
        for number, text in enumerate(stream, start=1):
            if not text.strip():
                continue
            try:
                yield Line(number, orjson.loads(text))
            except orjson.JSONDecodeError as exc:
                yield Line(number, error=f"not valid JSON: {exc}")


def batches(lines: Iterator[Line], size: int) -> Iterator[list[Line]]:
    batch: list[Line] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def send(client: httpx.Client, url: str, batch: list[Line], policy: RetryPolicy, report: Report) -> None:
    """Send one batch, trying again on the failures worth it; record what came of it.

    With ``report.rejects``, bad lines are set aside one by one and the rest is sent again
    until it is stored.
    """
    if report.rejects is not None:
        for line in [line for line in batch if line.error]:
            report.reject(line, str(line.error))
        batch = [line for line in batch if not line.error]
    local = next((line for line in batch if line.error), None)
    if local is not None:
        report.rejected.append(f"line {local.number}: {local.error} (its batch of {len(batch)} was not sent)")
        report.rejected_events += len(batch)
        return
    while batch:
        response = _post(client, url, batch, policy)
        if response.status_code == 200:
            answer = response.json()
            report.sent += len(batch)
            report.inserted += answer["inserted"]
            report.duplicates += answer["duplicates"]
            return
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = {"message": response.text[:200], "param": None}
        if response.status_code in (401, 403) or response.status_code >= 500:
            click.echo(f"Error: the server answered {response.status_code}: {error.get('message')}", err=True)
            raise SystemExit(EXIT_REFUSED if response.status_code < 500 else EXIT_UNREACHABLE)
        found = _EVENT_INDEX.match(error.get("param") or "")
        if found and report.rejects is not None:
            # Set the bad event aside and send the rest of its batch again.
            bad = batch[int(found.group(1))]
            report.reject(bad, str(error.get("message")))
            batch = [line for line in batch if line is not bad]
            continue
        where = (
            f"line {batch[int(found.group(1))].number}"
            if found
            else f"lines {batch[0].number}-{batch[-1].number}"
        )
        report.rejected.append(f"{where}: {error.get('message')} (its batch of {len(batch)} was not stored)")
        report.rejected_events += len(batch)
        return


def _post(client: httpx.Client, url: str, batch: list[Line], policy: RetryPolicy) -> httpx.Response:
    body = orjson.dumps({"events": [line.event for line in batch]})
    attempt = 0
    while True:
        attempt += 1
        try:
            response = client.post(url, content=body, headers={"content-type": "application/json"})
        except httpx.TransportError as exc:
            if not policy.should_retry(attempt, None):
                raise click.ClickException(f"could not reach {url}: {exc}") from None
            time.sleep(policy.delay(attempt, None))
            continue
        if response.status_code >= 400 and policy.should_retry(attempt, response):
            time.sleep(policy.delay(attempt, response))
            continue
        return response


def _kind(path: str, given: str) -> str:
    if given != "auto":
        return given
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".json": "json"}.get(suffix, "ndjson")


@click.command()
@click.argument("source", type=click.Path(exists=True, allow_dash=True, dir_okay=False))
@click.option(
    "--format",
    "kind",
    type=click.Choice(["auto", "ndjson", "json", "csv"]),
    default="auto",
    show_default=True,
    help="The file's format; auto goes by its ending (.csv, .json, else NDJSON).",
)
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Store the good events of each batch and write every bad line here, as NDJSON "
    '{"line", "error", "event"}, to fix and send again. Without it a batch is all or nothing.',
)
@server_options(key_env=INGEST_KEY_ENV)
def ingest(
    source: str, kind: str, batch_size: int, rejects: Path | None, base_url: str, api_key: str
) -> None:
    """Send the usage events of SOURCE (a file, or - for standard input) to a server.

    NDJSON has one event per line; JSON is a list of events or {"events": [...]}; CSV has
    a header row of event fields. Running it again is safe: events already stored are
    counted as duplicates, not added twice.
    """
    url = base_url.rstrip("/") + "/organization/usage/events"
    # utf-8-sig: spreadsheet programs start "CSV UTF-8" with a byte-order mark.
    stream: IO[str] = sys.stdin if source == "-" else open(source, encoding="utf-8-sig")  # noqa: SIM115
    size = None if source == "-" else Path(source).stat().st_size
    report = Report(rejects=rejects.open("w", encoding="utf-8") if rejects else None)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("ingesting"),
        BarColumn(),
        MofNCompleteColumn() if size is None else TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    counted = _Counting(stream) if size is not None else stream
    with stream, progress, httpx.Client(headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as client:
        task = progress.add_task("ingest", total=size)
        try:
            for batch in batches(read_lines(counted, _kind(source, kind)), batch_size):
                send(client, url, batch, RetryPolicy(max_retries=5), report)
                progress.update(
                    task, completed=counted.position if isinstance(counted, _Counting) else report.sent
                )
        except UnicodeDecodeError as exc:
            report.rejected.append(
                f"{source} is not UTF-8 text (byte {exc.start} of a chunk read: {exc.reason}); "
                "save it as UTF-8 and run again: what was sent is kept"
            )
        finally:
            if report.rejects is not None:
                report.rejects.close()
    click.echo(
        f"{report.sent} events sent: {report.inserted} stored, {report.duplicates} already there"
        + (f"; {report.rejected_events} in rejected batches" if report.rejected else "")
        + "."
    )
    for line in report.rejected:
        click.echo(f"rejected: {line}", err=True)
    if rejects is not None and report.rejected_events:
        click.echo(f"{report.rejected_events} rejected lines written to {rejects}", err=True)
    if report.rejected:
        raise SystemExit(EXIT_REJECTED)


class _Counting:
    """A text stream that counts the bytes read, for the progress bar."""

    def __init__(self, inner: IO[str]) -> None:
        self._inner = inner
        self.position = 0

    def read(self, size: int = -1, /) -> str:
        text = self._inner.read(size)
        self.position += len(text.encode())
        return text

    def readline(self, size: int = -1, /) -> str:
        text = self._inner.readline(size)
        self.position += len(text.encode())
        return text

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
