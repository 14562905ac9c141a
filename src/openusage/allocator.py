"""How DuckDB's allocator hands memory back, set before DuckDB is loaded.

DuckDB allocates through a jemalloc of its own, which gives freed pages back to the system
within about a second (its decay time). A query a moment later takes them again, and each
page faults in afresh: a page of 9,700 results faulted about 8,000 pages (30 MB) in a
server that had just ingested and 3,000 in a fresh one, and took 55 against 45 ms
(docs/performance.md, twenty-fifth session). With ten seconds, about 1,000 either way,
and 36 ms. jemalloc reads ``DUCKDB_JE_MALLOC_CONF`` once, when DuckDB's library loads;
one set by the user is kept.
"""

from __future__ import annotations

import os

#: how long freed pages stay with DuckDB's allocator before they go back to the system
DECAY_MS = 10_000

os.environ.setdefault("DUCKDB_JE_MALLOC_CONF", f"dirty_decay_ms:{DECAY_MS},muzzy_decay_ms:{DECAY_MS}")
