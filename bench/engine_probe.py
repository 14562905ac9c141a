"""Which engine should hold raw events at a year of traffic? A probe, not the store: raw
completion events appended in batches of 10,000 with an exactly-once check, then a day's
GROUP BY, on three layouts, in one run:

- ``duckdb-pk``: today's layout, the event id a VARCHAR PRIMARY KEY (an ART index that stays
  in memory and grows with the events);
- ``duckdb-hash``: no index; a 64-bit hash of the id stored beside it, and a retry found by
  looking for the batch's hashes among the stored events of the batch's own time range (a
  retry carries the same id and timestamp);
- ``chdb``: ClickHouse in-process (PyPI ``chdb``, optional: left out when not installed), a
  MergeTree ordered by (ts, id hash), the same check.

    .venv/bin/python bench/engine_probe.py [--events 10000000] [--only duckdb-hash,chdb]

For each it prints events/s over the first and the last tenth, bytes per event on disk
after a checkpoint, the process's peak memory (RSS), and a day-by-model GROUP BY's time.
Events are made with numpy, so making them does not dominate.
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

DAY0 = 1_790_000_000 - 1_790_000_000 % 86400
BATCH = 10_000
DAYS = 30


def batches(events: int, seed: int = 1) -> Iterator[pa.Table]:
    """Completion events in time order over 30 days, 1 in 50 up to a day late."""
    rng = np.random.default_rng(seed)
    span = DAYS * 86400
    for first in range(0, events, BATCH):
        n = min(BATCH, events - first)
        seq = np.arange(first, first + n)
        ts = DAY0 + (seq * span) // events
        late = rng.random(n) < 0.02
        ts = np.where(late, ts - rng.integers(0, 86400, n), ts)
        ids = pa.array([f"req_{s:012d}_{s * 2654435761 % 1_000_003:07d}" for s in seq.tolist()])
        yield pa.table(
            {
                "id": ids,
                "ts": pa.array(ts, pa.int64()),
                "project_id": pa.array(np.char.add("proj_", (seq % 50).astype(str))),
                "user_id": pa.array(np.char.add("user_", (seq * 7 % 2000).astype(str))),
                "api_key_id": pa.array(np.char.add("key_", (seq * 13 % 500).astype(str))),
                "model": pa.array(np.char.add("model-", (seq * 31 % 20).astype(str))),
                "batch": pa.array(rng.random(n) < 0.07),
                "service_tier": pa.array(np.array(["default", "flex", "priority", "scale"])[seq % 4]),
                "input_tokens": pa.array(rng.integers(20, 20_000, n), pa.int64()),
                "input_cached_tokens": pa.array(rng.integers(0, 1_000, n), pa.int64()),
                "output_tokens": pa.array(rng.integers(1, 2_000, n), pa.int64()),
            }
        )


class Layout(Protocol):
    def append(self, batch: pa.Table) -> int: ...
    def checkpoint(self) -> None: ...
    def group_by_day_and_model(self) -> int: ...
    def close(self) -> None: ...


COLUMNS = (
    "id VARCHAR, ts BIGINT, project_id VARCHAR, user_id VARCHAR, api_key_id VARCHAR, model VARCHAR, "
    "batch BOOLEAN, service_tier VARCHAR, input_tokens BIGINT, input_cached_tokens BIGINT, output_tokens BIGINT"
)
NAMES = "id, ts, project_id, user_id, api_key_id, model, batch, service_tier, input_tokens, input_cached_tokens, output_tokens"
DAY_QUERY = (
    "SELECT ts - ts % 86400 AS d, model, sum(input_tokens), sum(output_tokens) FROM events GROUP BY d, model"
)


class _DuckDB:
    """What the two DuckDB layouts share: a file, a checkpoint, the query."""

    def __init__(self, path: Path, table: str) -> None:
        import duckdb

        self.con = duckdb.connect(str(path))
        # DuckDB 2.0 refuses other work on a connection with an unread result: read them all.
        self.con.execute(f"CREATE TABLE events ({table})").fetchall()

    def checkpoint(self) -> None:
        self.con.execute("CHECKPOINT").fetchall()

    def group_by_day_and_model(self) -> int:
        return len(self.con.execute(DAY_QUERY).fetchall())

    def close(self) -> None:
        self.con.close()


class DuckDBPrimaryKey(_DuckDB):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder / "pk.duckdb", COLUMNS.replace("id VARCHAR", "id VARCHAR PRIMARY KEY", 1))

    def append(self, batch: pa.Table) -> int:
        self.con.register("incoming", batch)
        before = self.con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        self.con.execute(f"INSERT OR IGNORE INTO events SELECT {NAMES} FROM incoming").fetchall()
        self.con.unregister("incoming")
        return int(self.con.execute("SELECT count(*) FROM events").fetchall()[0][0]) - int(before)


class DuckDBHash(_DuckDB):
    """No index: a retry is found among the stored events of the batch's time range."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder / "hash.duckdb", f"id_hash UBIGINT, {COLUMNS}")

    def append(self, batch: pa.Table) -> int:
        self.con.register("incoming", batch)
        self.con.execute("BEGIN TRANSACTION").fetchall()
        # The batch's events already stored (same timestamp, hash and id): found by a range
        # scan on ts, where row-group min/max statistics skip most of a time-ordered table.
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE fresh AS SELECT hash(i.id) AS id_hash, i.* FROM incoming AS i "
            "WHERE NOT EXISTS (SELECT 1 FROM events AS e WHERE e.ts = i.ts AND e.id_hash = hash(i.id) "
            "AND e.id = i.id AND e.ts BETWEEN (SELECT min(ts) FROM incoming) AND (SELECT max(ts) FROM incoming))"
        ).fetchall()
        self.con.execute(f"INSERT INTO events SELECT id_hash, {NAMES} FROM fresh").fetchall()
        ((inserted,),) = self.con.execute("SELECT count(*) FROM fresh").fetchall()
        self.con.execute("COMMIT").fetchall()
        self.con.unregister("incoming")
        return int(inserted)


class ChDB:
    def __init__(self, folder: Path) -> None:
        from chdb import session

        self.session = session.Session(str(folder / "chdb"))
        self.session.query("CREATE DATABASE IF NOT EXISTS probe")
        self.session.query(
            "CREATE TABLE probe.events (id_hash UInt64, id String, ts Int64, project_id LowCardinality(String), "
            "user_id String, api_key_id String, model LowCardinality(String), batch Bool, "
            "service_tier LowCardinality(String), input_tokens Int64, input_cached_tokens Int64, "
            "output_tokens Int64) ENGINE = MergeTree PARTITION BY intDiv(ts, 86400 * 30) ORDER BY (ts, id_hash) "
            "SETTINGS fsync_after_insert = 1, fsync_part_directory = 1"
        )

    def append(self, batch: pa.Table) -> int:
        incoming = batch  # noqa: F841 - read by name by the Python() table function
        lo, hi = pa.compute.min(batch["ts"]).as_py(), pa.compute.max(batch["ts"]).as_py()
        stored = self.session.query(
            f"SELECT count() FROM probe.events WHERE ts BETWEEN {lo} AND {hi} "
            "AND id_hash IN (SELECT cityHash64(id) FROM Python(incoming))",
            "CSV",
        )
        self.session.query(
            f"INSERT INTO probe.events SELECT cityHash64(id), * FROM Python(incoming) "
            f"WHERE (cityHash64(id), ts) NOT IN (SELECT id_hash, ts FROM probe.events "
            f"WHERE ts BETWEEN {lo} AND {hi})"
        )
        return batch.num_rows - int(str(stored).strip() or 0)

    def checkpoint(self) -> None:
        self.session.query("OPTIMIZE TABLE probe.events FINAL")

    def group_by_day_and_model(self) -> int:
        result = self.session.query(DAY_QUERY.replace("FROM events", "FROM probe.events"), "CSV")
        return len(str(result).splitlines())

    def close(self) -> None:
        self.session.close()


LAYOUTS: dict[str, Callable[[Path], Any]] = {
    "duckdb-pk": DuckDBPrimaryKey,
    "duckdb-hash": DuckDBHash,
    "chdb": ChDB,
}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(name: str, events: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix=f"probe-{name}-"))
    try:
        layout = LAYOUTS[name](folder)
        tenth = max(1, events // BATCH // 10)
        rates: list[float] = []
        inserted = 0
        started = window = time.perf_counter()
        first_batch = None
        for n, batch in enumerate(batches(events), start=1):
            first_batch = first_batch or batch
            inserted += layout.append(batch)
            if n % tenth == 0:
                now = time.perf_counter()
                rates.append(tenth * BATCH / (now - window))
                window = now
        elapsed = time.perf_counter() - started
        assert first_batch is not None
        retried = layout.append(first_batch)  # a retry of the first batch: nothing new
        layout.checkpoint()
        query_started = time.perf_counter()
        groups = layout.group_by_day_and_model()
        query_ms = (time.perf_counter() - query_started) * 1000
        layout.close()
        size = folder_bytes(folder)
        print(
            f"{name:12s} {events:>11,} events  {events / elapsed:>9,.0f} ev/s "
            f"(first tenth {rates[0]:>9,.0f}, last {rates[-1]:>9,.0f})  {size / events:6.1f} B/event  "
            f"peak RSS {peak_rss_mib():7.0f} MiB  day x model {query_ms:7.1f} ms "
            f"({groups} groups)  stored {inserted:,}, retry stored {retried}"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--only", default=",".join(LAYOUTS), help="layouts to probe, comma-joined")
    args = parser.parse_args()
    names = args.only.split(",")
    if len(names) > 1:
        # One process a layout, so that each one's peak memory is its own.
        for name in names:
            subprocess.run(
                [sys.executable, __file__, "--events", str(args.events), "--only", name], check=True
            )
        return
    (name,) = names
    if name == "chdb":
        try:
            import chdb  # noqa: F401
        except ImportError:
            print("chdb         not installed: pip install chdb (about 534 MB) to probe it")
            return
    probe(name, args.events)


if __name__ == "__main__":
    main()
