"""The gateway's cost: the same calls straight to an upstream and through the gateway, in one run.

    .venv/bin/python bench/gateway_bench.py
    .venv/bin/python bench/gateway_bench.py --calls 2000 --seconds 20

The upstream is ``openusage fake-upstream`` on this machine; the gateway records into a
fresh DuckDB file. Prints p50/p99 latency of non-streamed chat completions, the time to a
stream's first chunk, and requests/s from concurrent clients, direct and through the
gateway, with the added cost next to its target.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ADMIN_KEY = "sk-admin-bench-" + "g" * 32
BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "How many tokens is this?"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def started(args: list[str], ready: str, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "openusage", *args],
        env={**os.environ, "OPENUSAGE_ADMIN_KEY": ADMIN_KEY},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    atexit.register(process.kill)
    while True:
        try:
            httpx.get(ready, timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.05)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latencies(client: httpx.Client, url: str, key: str, calls: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        client.post(url, json=BODY, headers=headers).raise_for_status()
        times.append((time.perf_counter() - began) * 1000)
    return times


def first_chunks(client: httpx.Client, url: str, key: str, calls: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        with client.stream("POST", url, json={**BODY, "stream": True}, headers=headers) as response:
            chunks = response.iter_raw()
            next(chunks)
            times.append((time.perf_counter() - began) * 1000)
            for _ in chunks:
                pass
    return times


async def throughput(url: str, key: str, clients: int, seconds: float) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    done = 0
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                (await client.post(url, json=BODY, headers=headers)).raise_for_status()
                done += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return done / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls for the latencies")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for requests/s")
    parser.add_argument("--seconds", type=float, default=10, help="length of each requests/s run")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="openusage-gateway-bench-"))
    # Registered first, so it runs after the servers are killed (exit handlers run last first).
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    upstream_port, gateway_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    gateway = f"http://127.0.0.1:{gateway_port}/v1"
    started(["fake-upstream", "--port", str(upstream_port)], upstream + "/models", folder / "upstream.log")
    db = folder / "bench.duckdb"
    serve = ["serve", "--db", str(db), "--port", str(gateway_port), "--upstream", upstream]
    server = started(serve, gateway.removesuffix("/v1") + "/health", folder / "server.log")
    made = subprocess.run(
        [sys.executable, "-m", "openusage", "keys", "create", "--db", str(db), "--scope", "proxy",
         "--project", "proj_bench"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = made.stdout.strip()

    with httpx.Client(timeout=60) as client:
        for url in (upstream, gateway):  # warm both paths up
            latencies(client, url + "/chat/completions", key, 50)
        direct = latencies(client, upstream + "/chat/completions", "unused", args.calls)
        through = latencies(client, gateway + "/chat/completions", key, args.calls)
        direct_first = first_chunks(client, upstream + "/chat/completions", "unused", args.calls // 2)
        through_first = first_chunks(client, gateway + "/chat/completions", key, args.calls // 2)

    def row(name: str, a: list[float], b: list[float], target: str) -> None:
        p50a, p50b = statistics.median(a), statistics.median(b)
        p99a, p99b = percentile(a, 0.99), percentile(b, 0.99)
        print(
            f"  {name:36s} {p50a:7.2f} {p99a:7.2f}   {p50b:7.2f} {p99b:7.2f}   "
            f"+{p50b - p50a:5.2f} +{p99b - p99a:5.2f}   {target}"
        )

    print(f"{args.calls:,} sequential calls each, ms:          direct p50/p99   gateway p50/p99   added")
    row("chat completion, not streamed", direct, through, "target: added p50 <= 1, p99 <= 5")
    row("stream, time to first chunk", direct_first, through_first, "target: added p50 <= 1")
    direct_rate = asyncio.run(
        throughput(upstream + "/chat/completions", "unused", args.clients, args.seconds)
    )
    through_rate = asyncio.run(throughput(gateway + "/chat/completions", key, args.clients, args.seconds))
    print(
        f"requests/s from {args.clients} clients: direct {direct_rate:,.0f}, through the gateway "
        f"{through_rate:,.0f}   target >= 1,000"
    )
    status = Path(f"/proc/{server.pid}/status")
    if status.exists():
        peak = next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("VmHWM"))
        print(f"gateway peak memory: {int(peak) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
