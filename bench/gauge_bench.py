"""The vector-store gauge at two sizes: the store's query (deltas and a running sum, linear in
the reports) against the straightforward one (each store's last report per bucket end, a
join of buckets and reports), in the same run, on the same data.

    .venv/bin/python bench/gauge_bench.py [--stores 5000] [--reports 50000] [--repeat 3]

It also runs the store's query from 4 threads at once (4 concurrent requests to a server
run it so) and prints their median time and the process's memory meanwhile.

Reports are spread over the two days before the query's minute buckets (1m x 1440), by
project (10 projects). The second size is ten times the first; there the straightforward
query is left out: it joins every bucket with every report (720M rows at 500k reports),
which takes tens of GB of memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from openusage.buckets import iter_buckets
from openusage.store import Aggregation, DuckDBStore

DAY0 = 1_700_006_400

STRAIGHTFORWARD = """
WITH ends AS (SELECT unnest($1::BIGINT[]) AS b, unnest($2::BIGINT[]) AS b_end),
latest AS (
    SELECT ends.b, vector_store_id, arg_max_null(usage_bytes, [ts, seq]) AS value,
           arg_max_null(project_id, [ts, seq]) AS project_id
    FROM ends JOIN events ON events.kind = 'vector_stores' AND events.ts < ends.b_end
    GROUP BY ends.b, vector_store_id)
SELECT b, project_id, sum(value)::HUGEINT FROM latest WHERE value > 0 GROUP BY b, project_id
"""


def fill(store: DuckDBStore, stores: int, reports: int) -> None:
    """Reports made in the database itself, so making them does not dominate the run."""
    store._con.execute(
        "INSERT INTO events (seq, id, kind, ts, project_id, vector_store_id, usage_bytes) "
        "SELECT i + 1, 'r' || i, 'vector_stores', $1 + (i * 7919) % (2 * 86400), "
        "'proj_' || (i % $3) % 10, 'vs_' || (i % $3), (i * 104729) % 1000000000 "
        "FROM range($2) AS t(i)",
        [DAY0 - 86400, reports, stores],
    )


def durations(run: Callable[[], object], repeat: int) -> list[float]:
    """The seconds each of ``repeat`` runs took."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def timed(run: Callable[[], object], repeat: int) -> float:
    return statistics.median(durations(run, repeat)) * 1000


def rss_mib() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def concurrently(run: Callable[[], object], threads: int, repeat: int) -> tuple[float, float, float]:
    """``run`` from ``threads`` threads at once, ``repeat`` times each: the median time of
    one run, the memory before and the peak memory meanwhile (sampled every 5 ms)."""
    before = peak = rss_mib()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, rss_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(threads) as pool:
            times = [
                t
                for future in [pool.submit(durations, run, repeat) for _ in range(threads)]
                for t in future.result()
            ]
    finally:
        done.set()
        sampler.join()
    return statistics.median(times) * 1000, before, peak


def measure(stores: int, reports: int, repeat: int, *, baseline: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gauge.duckdb"
        store = DuckDBStore(path)
        fill(store, stores, reports)
        # Opened again: the store learns what it holds when it opens (the reports were
        # made behind its back, and a store that knows of no report answers none).
        store.close()
        store = DuckDBStore(path)
        try:
            buckets = list(iter_buckets(DAY0, DAY0 + 86400, "1m"))
            query = Aggregation(
                kind="vector_stores",
                buckets=buckets,
                width_seconds=60,
                group_by=("project_id",),
                filters={},
                metrics=("usage_bytes",),
                gauge=True,
            )
            ours_ms = timed(lambda: store.aggregate(query), repeat)
            together_ms, before, peak = concurrently(lambda: store.aggregate(query), 4, repeat)
            line = (
                f"{reports:>9,} reports of {stores:>6,} stores, 1m x 1440 by project: store {ours_ms:8.1f} ms"
                f"   4 at once {together_ms:8.1f} ms each, memory {before:,.0f} -> peak {peak:,.0f} MiB"
            )
            if baseline:
                params = [[b[0] for b in buckets], [b[1] for b in buckets]]
                plain = store._con.execute(STRAIGHTFORWARD, params).fetchall()
                assert sorted((b, (p,), (v,)) for b, p, v in plain) == sorted(store.aggregate(query))
                plain_ms = timed(lambda: store._con.execute(STRAIGHTFORWARD, params).fetchall(), repeat)
                line += f"   straightforward {plain_ms:9.1f} ms   ({plain_ms / ours_ms:5.1f}x)"
        finally:
            store.close()
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", type=int, default=5_000)
    parser.add_argument("--reports", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    measure(args.stores, args.reports, args.repeat, baseline=True)
    measure(args.stores * 10, args.reports * 10, args.repeat, baseline=False)


if __name__ == "__main__":
    main()
