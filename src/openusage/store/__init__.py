"""Event storage behind one narrow interface."""

from .base import (
    AggregateRow,
    Aggregation,
    AppendResult,
    EncodedBucket,
    EventStore,
    ResultShape,
    StoreFull,
    StoreOutOfMemory,
    StoreRestarting,
    StoreUnavailable,
    WriteUnfinished,
)
from .duckdb import DuckDBStore
from .urls import open_store

__all__ = [
    "AggregateRow",
    "Aggregation",
    "AppendResult",
    "DuckDBStore",
    "EncodedBucket",
    "EventStore",
    "ResultShape",
    "StoreFull",
    "StoreOutOfMemory",
    "StoreRestarting",
    "StoreUnavailable",
    "WriteUnfinished",
    "open_store",
]
