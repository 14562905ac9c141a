"""The thin layer under the ClickHouse store: run SQL in chDB, or on a ClickHouse server.

Both take the same SQL text; only how rows come back and how a table is sent differ.
Neither driver is installed by default (``pip install 'openusage[chdb]'`` or
``'openusage[clickhouse]'``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from .base import StoreOutOfMemory, StoreUnavailable, memory_bytes

#: SQL ClickHouse parses in one statement (its default is 256 KiB): a query's filters may
#: name 1,000 values of 256 characters of up to 4 bytes each, in several dimensions
MAX_QUERY_BYTES = 16 * 2**20


#: an insert's settings: dropped when its token repeats a recent insert's, views included
def dedup_settings(token: str) -> dict[str, str | int]:
    return {"insert_deduplication_token": token, "deduplicate_blocks_in_dependent_materialized_views": 1}


@contextmanager
def memory_named() -> Iterator[None]:
    """A query past ClickHouse's memory limit (its own, or the server's as a whole) fails
    as ``StoreOutOfMemory``, which the server answers with a 503 naming it, not as a fault."""
    try:
        yield
    except Exception as exc:  # the drivers' errors have no common base
        text = str(exc).strip()
        if "(MEMORY_LIMIT_EXCEEDED)" not in text:
            raise
        reason = text.splitlines()[0].removesuffix("(MEMORY_LIMIT_EXCEEDED)").strip().rstrip(".")
        reason = reason.split("DB::Exception: ")[-1]
        raise StoreOutOfMemory(f"ClickHouse ran out of memory ({reason})") from None


class Connection(Protocol):
    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a query, as Python values (128-bit sums as ints, decimals as Decimal)."""
        ...

    def command(self, sql: str) -> None: ...

    def insert(self, table: str, data: pa.Table, token: str) -> None:
        """Insert the whole table, synchronously: when this returns, ClickHouse has it. An
        insert with the ``token`` of one of the table's last 1,000 inserts is dropped,
        with what its materialized views would have added."""
        ...

    def close(self) -> None: ...


def _python_values(table: pa.Table) -> list[tuple[Any, ...]]:
    """Arrow columns as Python values; chDB hands 128-bit integers over as 16 raw bytes."""
    columns = []
    for column in table.columns:
        if pa.types.is_fixed_size_binary(column.type) and column.type.byte_width == 16:
            columns.append(
                [None if v is None else int.from_bytes(v, "little", signed=True) for v in column.to_pylist()]
            )
        else:
            columns.append(column.to_pylist())
    return list(zip(*columns, strict=True))


class ChdbConnection:
    """ClickHouse in this process, its data in a directory."""

    def __init__(self, path: Path, memory_limit: str | None = None, config_file: Path | None = None) -> None:
        """``memory_limit`` (like 2GB) bounds ClickHouse's memory as a whole
        (``max_server_memory_usage``); a query that would pass it fails. ``config_file``:
        a ClickHouse server configuration (the tests define a cluster in one)."""
        options = [] if memory_limit is None else [f"max_server_memory_usage={memory_bytes(memory_limit)}"]
        options += [] if config_file is None else [f"config-file={config_file}"]
        settings = "?" + "&".join(options) if options else ""
        try:
            import chdb
        except ImportError:
            raise StoreUnavailable("chdb:// stores need chDB: pip install 'openusage[chdb]'") from None
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._con = chdb.connect(f"file:{path}{settings}")  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            # chDB opens one directory per process and says little when it is taken.
            raise StoreUnavailable(
                f"cannot open {path} with chDB (is it in use by another process, such as a "
                f"running server?): {str(exc).splitlines()[0]}"
            ) from None
        # chDB's one session serves one statement at a time.
        self._lock = threading.Lock()
        self._con.query(f"SET max_query_size = {MAX_QUERY_BYTES}")  # kept by the session

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock, memory_named():
            return _python_values(self._con.query(sql, "ArrowTable"))

    def command(self, sql: str) -> None:
        with self._lock:
            self._con.query(sql)

    def insert(self, table: str, data: pa.Table, token: str) -> None:
        settings = ", ".join(f"{k} = {v!r}" for k, v in dedup_settings(token).items())
        with self._lock:
            # chDB reads a Python variable named in the query: ``incoming`` is that variable.
            incoming = data  # noqa: F841
            self._con.query(f"INSERT INTO {table} SETTINGS {settings} SELECT * FROM Python(incoming)")

    def close(self) -> None:
        with self._lock:
            self._con.close()


class ServerConnection:
    """A ClickHouse server or cluster over HTTP(S), through clickhouse-connect."""

    def __init__(self, url: str) -> None:
        try:
            import clickhouse_connect
        except ImportError:
            raise StoreUnavailable(
                "clickhouse:// stores need clickhouse-connect: pip install 'openusage[clickhouse]'"
            ) from None
        parts = urlsplit(url)
        database = parts.path.strip("/") or "default"
        self._client_args: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "port": parts.port or (8443 if parts.scheme == "clickhouses" else 8123),
            "username": unquote(parts.username or "default"),
            "password": unquote(parts.password or ""),
            "database": database,
            "secure": parts.scheme == "clickhouses",
            # An insert returns once written: no async insert left pending, and through a
            # Distributed table only once every shard has its rows.
            "settings": {
                "async_insert": 0,
                "distributed_foreground_insert": 1,
                "max_query_size": MAX_QUERY_BYTES,
            },
        }
        self._make = clickhouse_connect.get_client
        self._local = threading.local()
        self._client()  # fail now, with the reason, rather than at the first request

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make(**self._client_args)
        return client

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with memory_named():
            return [tuple(r) for r in self._client().query(sql).result_rows]

    def command(self, sql: str) -> None:
        self._client().command(sql)

    def insert(self, table: str, data: pa.Table, token: str) -> None:
        self._client().insert_arrow(table, data, settings=dedup_settings(token))

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
