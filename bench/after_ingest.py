"""A server that has just ingested against a fresh one over the same files, side by side.

    .venv/bin/python bench/after_ingest.py                     # 2M completion events
    .venv/bin/python bench/after_ingest.py --events 10000000

Server X ingests the usage benchmark's dataset (batches of 1,000 from 4 clients) and
settles; its files are then copied for server Y, which starts fresh over them. The query
mix runs on both, request by request in turn, so that both see the machine alike. Prints
each query's p50 on each, with the minor page faults and the CPU each server spends a
request: the benchmark measures its queries on a server that has just ingested, and at 10M
such a server answered the 9,700-result page in 71.6 ms where a fresh one over the same
files took 35.8 (docs/performance.md, twenty-fifth session: memory given back to the system
between requests, and faulted in again).
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from usage_bench import KEY, Dataset, free_port, query_mix, query_url, send_batches, settle, wait_for_health

FILES = ("bench.duckdb", "bench.duckdb.rollups", "bench.keys.sqlite")


class Server:
    """``openusage serve`` over the database in ``folder``, started and settled."""

    def __init__(self, folder: Path) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}/v1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "openusage", "serve", "--db", str(folder / FILES[0]), "--port", str(port)],
            env={**os.environ, "OPENUSAGE_ADMIN_KEY": KEY},
            stdout=(folder / "server.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        atexit.register(self.process.kill)
        wait_for_health(port)
        settle(self.process.pid)

    def counters(self) -> tuple[int, float]:
        """Minor page faults and CPU seconds so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[7]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest(server: Server, data: Dataset, events: int, clients: int) -> float:
    """The dataset's ``events`` sent in batches of 1,000; events/s."""
    templates = [data.split(data.template(random.Random(n), 1000)) for n in range(50)]
    started = time.perf_counter()
    send_batches(f"{server.base}/organization/usage/events", data, templates, events // 1000, clients)
    return events // 1000 * 1000 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=30, help="runs of each query on each server")
    args = parser.parse_args()

    folders = {name: Path(tempfile.mkdtemp(prefix=f"openusage-{name}-")) for name in "XY"}
    for folder in folders.values():  # registered first, so it runs after the servers are killed
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    now = int(time.time())
    data = Dataset(now)
    ingested = Server(folders["X"])
    rate = ingest(ingested, data, args.events, clients=4)
    print(
        f"X ingested {args.events:,} events at {rate:,.0f} events/s; settled {settle(ingested.process.pid):.0f} s later"
    )
    for name in FILES:  # settled: everything is in the files, and nothing writes them
        shutil.copy(folders["X"] / name, folders["Y"] / name)
    servers = {"X, just ingested": ingested, "Y, fresh": Server(folders["Y"])}

    print(
        f"\nqueries alternating X and Y ({args.repeat} runs each): p50 ms, minor page faults and ms of CPU a request"
    )
    client = httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=300)
    for query, params in query_mix(data, now).items():
        times: dict[str, list[float]] = {label: [] for label in servers}
        for server in servers.values():  # a fresh server reads its blocks in first: not measured
            url, rest = query_url(server.base, params)
            client.get(url, params=rest).raise_for_status()
        before = {label: server.counters() for label, server in servers.items()}
        for _ in range(args.repeat):
            for label, server in servers.items():
                url, rest = query_url(server.base, params)
                started = time.perf_counter()
                client.get(url, params=rest).raise_for_status()
                times[label].append((time.perf_counter() - started) * 1000)
        figures: list[str] = []
        for label, server in servers.items():
            faults, cpu = (after - then for after, then in zip(server.counters(), before[label], strict=True))
            figures.append(
                f"{label} {statistics.median(times[label]):6.1f} ({faults / args.repeat:6,.0f} faults, "
                f"{cpu / args.repeat * 1000:5.1f} ms CPU)"
            )
        print(f"  {query:40s} " + "   ".join(figures))


if __name__ == "__main__":
    main()
