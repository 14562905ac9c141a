"""Event storage behind one narrow interface."""

from .base import AggregateRow, Aggregation, AppendResult, EventStore, StoreFull, StoreUnavailable
from .duckdb import DuckDBStore
from .urls import open_store

__all__ = [
    "AggregateRow",
    "Aggregation",
    "AppendResult",
    "DuckDBStore",
    "EventStore",
    "StoreFull",
    "StoreUnavailable",
    "open_store",
]
