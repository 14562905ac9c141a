"""Which store a URL names: ``duckdb:///file``, ``chdb:///dir``, ``clickhouse[s]://...``,
or a plain path (a DuckDB file, as ``--db`` has always meant)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import EventStore, StoreUnavailable

SCHEMES = ("duckdb", "chdb", "clickhouse", "clickhouses")


def local_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise StoreUnavailable(
            f"{url}: a {parts.scheme}:// store is a local path, like {parts.scheme}:///var/lib/usage"
        )
    if not parts.path:
        raise StoreUnavailable(f"{url}: the URL names no path")
    return Path(unquote(parts.path))


def store_scheme(url: str) -> str:
    """The store's kind: one of ``SCHEMES``; a plain path is a DuckDB file."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if not scheme:
        return "duckdb"
    if scheme not in SCHEMES:
        raise StoreUnavailable(f"{url}: unknown store; use one of {', '.join(s + '://' for s in SCHEMES)}")
    return scheme


def duckdb_path(url: str) -> Path:
    """The file of a DuckDB store URL or plain path."""
    return local_path(url) if "://" in url else Path(url)


def default_memory_limit(url: str) -> str:
    """The memory the store at ``url`` may use when no limit is given, as it is shown."""
    scheme = store_scheme(url)
    if scheme == "duckdb":
        from .duckdb import DEFAULT_MEMORY_LIMIT

        return DEFAULT_MEMORY_LIMIT
    return "90% of RAM" if scheme == "chdb" else "the ClickHouse server's own"


def open_store(
    url: str,
    *,
    memory_limit: str | None = None,
    retention_days: int | None = None,
    held_keys: int | None = None,
) -> EventStore:
    scheme = store_scheme(url)
    if scheme == "duckdb":
        if retention_days is not None:
            raise StoreUnavailable(
                "retention (--retention-days) is kept by ClickHouse stores only, as a TTL; the embedded "
                "store keeps every event"
            )
        from .duckdb import RECENT_KEYS, DuckDBStore

        return DuckDBStore(
            duckdb_path(url),
            memory_limit=memory_limit,
            recent_keys=RECENT_KEYS if held_keys is None else held_keys,
        )
    if held_keys is not None:
        raise StoreUnavailable(
            "held keys (--held-keys) are the embedded store's; a ClickHouse store looks up retries "
            "in its tables and drops repeated inserts by their tokens"
        )
    from .clickhouse import ClickHouseStore
    from .clickhouse_connections import ChdbConnection, ServerConnection

    if scheme == "chdb":
        from .clickhouse_journal import JOURNAL_NAME

        folder = local_path(url)
        return ClickHouseStore(
            ChdbConnection(folder, memory_limit),
            where=url,
            retention_days=retention_days,
            journal=folder / JOURNAL_NAME,  # chDB lets one process at a time write a folder
        )
    shown = urlsplit(url)._replace(netloc=urlsplit(url).hostname or "").geturl()  # no password in messages
    return ClickHouseStore(ServerConnection(url), where=shown, retention_days=retention_days)
