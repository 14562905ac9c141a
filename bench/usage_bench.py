"""The usage benchmark: ingest a realistic dataset over HTTP, run a fixed query mix, and
compare each query with a straightforward GROUP BY over the raw events, in the same run.

    .venv/bin/python bench/usage_bench.py                 # 10M completion events (long)
    .venv/bin/python bench/usage_bench.py --events 1000000
    .venv/bin/python bench/usage_bench.py --events 1000000 --store chdb   # ClickHouse in process
    .venv/bin/python bench/usage_bench.py --events 100000000             # 100M (hours; ~30 GB disk)

Prints events/s (batches of 1,000 and single-event requests) with the CPU the server and
the benchmark's own clients spend on each, p50/p99 latency per query,
the time an event takes to become visible, the slowdown of queries during ingestion, disk
bytes per event, peak server memory, and the raw-scan baseline with its ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import duckdb
import httpx
import numpy as np

KEY = "sk-admin-bench-" + "b" * 32
#: coprime to 10^8, so batch numbers map to distinct 8-digit ids; about 0.618 of 10^8, so
#: consecutive batches' ids land far apart, as random ids do (48,271, tried first, kept
#: them nearly in order, which let row-group statistics skip most of a retry's look-up)
SCRAMBLE = 61_803_399
TIMESTAMP = re.compile(rb'"@T(\d+)-(\d+)@"')
DAY = 86400
TIERS = ("default", "flex", "priority", "scale")
MODELS = (
    "gpt-3.5-turbo", "gpt-4-turbo", "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
    "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "gpt-5.1-codex-mini", "gpt-5.2", "gpt-5.3-codex",
    "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5", "codex-mini", "chatgpt-4o-latest",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dataset:
    """Completion events over 30 days: projects own their users and keys.

    Batches arrive in time order, as from gateways reporting as they go, each batch a
    slice of the 30 days; one event in 50 arrives up to a day late.
    """

    def __init__(self, now: int, seed: int = 1, *, random_ids: bool = True) -> None:
        rng = random.Random(seed)
        #: ids in no order, as an upstream's (chatcmpl-...) are; else counting up, as ULIDs do
        self.random_ids = random_ids
        self.now = now
        self.start = now - 30 * DAY
        self.projects = [f"proj_{i:02d}" for i in range(50)]
        self.users = [(f"user-{i:04d}", rng.choice(self.projects)) for i in range(2000)]
        self.keys: dict[str, list[str]] = {}
        for i in range(500):
            self.keys.setdefault(rng.choice(self.projects), []).append(f"key_{i:03d}")
        # Models the bundled price book prices, so that the costs query prices every line
        # (some of their batch prices are not whole billionths a token).
        self.models = list(MODELS)

    def template(self, rng: random.Random, size: int) -> bytes:
        """A batch body whose ids and timestamps carry placeholders, filled in per batch.

        A timestamp placeholder holds the event's place in its batch's slice of time
        (0-999999) and how many seconds late it is.
        """
        events = []
        for i in range(size):
            user, project = rng.choice(self.users)
            keys = self.keys.get(project) or ["key_none"]
            input_tokens = int(rng.lognormvariate(7.3, 1.0)) + 1
            events.append(
                {
                    "id": f"@@@@@@@@-{i}",
                    "type": "completions",
                    "timestamp": f"@T{rng.randrange(10**6)}-{rng.randrange(DAY) if rng.random() < 0.02 else 0}@",
                    "project_id": project,
                    "user_id": user,
                    "api_key_id": rng.choice(keys),
                    "model": rng.choice(self.models),
                    "batch": rng.random() < 0.07,
                    "service_tier": rng.choice(TIERS),
                    "input_tokens": input_tokens,
                    "input_cached_tokens": input_tokens // 3,
                    "output_tokens": int(rng.lognormvariate(5.8, 0.9)) + 1,
                }
            )
        return json.dumps({"events": events}).encode()

    def split(self, template: bytes) -> Template:
        """The template as bytes with fixed-width fields, so a batch is made with array arithmetic.

        Each timestamp placeholder becomes ten digits (seconds until 2286), each id eight.
        """
        text = bytearray()
        places, lates, stamp_at = [], [], []
        end = 0
        for match in TIMESTAMP.finditer(template):
            text += template[end : match.start()]
            stamp_at.append(len(text))
            text += b"0" * 10
            places.append(int(match[1]))
            lates.append(int(match[2]))
            end = match.end()
        text += template[end:]
        array = np.frombuffer(bytes(text), dtype=np.uint8)
        id_at = [m.start() for m in re.finditer(rb"@@@@@@@@", text)]
        return Template(
            array,
            np.add.outer(np.array(stamp_at), np.arange(10)),
            np.add.outer(np.array(id_at), np.arange(8)),
            np.array(places, dtype=np.int64),
            np.array(lates, dtype=np.int64),
        )

    def body(self, template: Template, number: int, batches: int) -> bytes:
        """Batch ``number``: its ids, and its timestamps in its slice (of ``batches``) of time."""
        slice_start = self.start + (self.now - self.start) * (number % batches) // batches
        slice_length = max(1, (self.now - self.start) // batches)
        stamps = np.maximum(
            self.start, slice_start + slice_length * template.places // 10**6 - template.lates
        )
        text = template.text.copy()
        text[template.stamp_at] = digits(stamps, 10)
        batch_id = number * SCRAMBLE % 10**8 if self.random_ids else number
        text[template.id_at] = digits(np.array([batch_id]), 8)
        return text.tobytes()


def digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """Each number as ``width`` ASCII digits, one row per number."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (numbers[:, None] // powers % 10 + ord("0")).astype(np.uint8)


class Template(NamedTuple):
    """A batch body, and where its timestamps (with each one's place and lateness) and ids go."""

    text: np.ndarray
    stamp_at: np.ndarray
    id_at: np.ndarray
    places: np.ndarray
    lates: np.ndarray


def wait_for_health(port: int) -> None:
    """Until the server on ``port`` answers."""
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)


def send_batches(
    url: str, data: Dataset, templates: list[Template], batches: int, clients: int
) -> list[float]:
    """The dataset's batches 0 to ``batches - 1`` sent to ``url`` from ``clients`` clients at
    once; when each was acknowledged, in order."""
    numbers = iter(range(batches))
    lock = threading.Lock()
    finished: list[float] = []
    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}

    def client() -> None:
        with httpx.Client(headers=headers, timeout=120) as http:
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                body = data.body(templates[number % len(templates)], number, batches)
                http.post(url, content=body).raise_for_status()
                with lock:
                    finished.append(time.perf_counter())

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return finished


def query_mix(data: Dataset, now: int) -> dict[str, dict[str, Any]]:
    """The queries measured, by name: each an endpoint (``path``) and its parameters."""
    day0 = now - now % DAY
    return {
        "1d x 31 by model": {"path": "completions", "start_time": day0 - 30 * DAY, "limit": 31, "group_by": "model"},
        "1m x 1440 ungrouped": {"path": "completions", "start_time": now - DAY, "bucket_width": "1m", "limit": 1440},
        "1h x 168 by project, model, filtered": {
            "path": "completions", "start_time": now - 7 * DAY, "bucket_width": "1h", "limit": 168,
            "group_by": "project_id,model", "project_ids": ",".join(data.projects[:5]), "models": f"{MODELS[0]},{MODELS[1]}",
        },
        "users and keys of one project, 1d x 30": {
            "path": "completions", "start_time": day0 - 29 * DAY, "limit": 31, "group_by": "user_id,api_key_id",
            "project_ids": data.projects[0],
        },
        "costs 1d x 180 by line item": {
            "path": "costs", "start_time": day0 - 179 * DAY, "limit": 180, "group_by": "line_item",
        },
    }  # fmt: skip


def query_url(base: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A query of the mix as a URL under ``base`` and its query parameters."""
    path = params["path"]
    url = f"{base}/organization/costs" if path == "costs" else f"{base}/organization/usage/{path}"
    return url, {k: v for k, v in params.items() if k != "path"}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(function: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShare:
    """The CPU the server and this benchmark's own clients use from now on: on one machine
    they share its cores, so a rate is bound by what both spend on each event."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._server = cpu_seconds(pid)
        self._clients = time.process_time()

    def per(self, count: int, elapsed: float, what: str) -> str:
        server = cpu_seconds(self._pid) - self._server
        clients = time.process_time() - self._clients
        return (
            f"the server {server / count * 1e6:,.1f} us per {what} ({server / elapsed:.2f} cores), "
            f"the benchmark's clients {clients / count * 1e6:,.1f} us ({clients / elapsed:.2f} cores); "
            f"{os.cpu_count()} cores"
        )


def ingest_key(db: Path) -> str:
    """A new key of the ingest scope for the server of ``db``."""
    made = subprocess.run(
        [sys.executable, "-m", "openusage", "keys", "create", "--db", str(db), "--scope", "ingest"],
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.split()[0]


async def single_events(url: str, headers: dict[str, str], count: int, clients: int, now: int) -> None:
    """``count`` single-event requests from ``clients`` concurrent clients on one event loop.
    aiohttp spends 0.15-0.2 ms of CPU a request here, httpx in threads 0.55-0.65 ms: CPU the
    server on the same cores would otherwise not have (docs/performance.md, eighteenth
    session)."""
    numbers = iter(range(count))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def client() -> None:
            for number in numbers:
                event = {
                    "id": f"single-{number}",
                    "type": "completions",
                    "timestamp": now - 60,
                    "input_tokens": 5,
                }
                async with session.post(url, json={"events": [event]}) as response:
                    response.raise_for_status()
                    await response.read()

        await asyncio.gather(*(client() for _ in range(clients)))


def settle(pid: int, limit: float = 600.0) -> float:
    """Wait until the server is idle (under 5% of a core for three seconds in a row): the
    rolling up, compaction and quiet checkpoint of what was just ingested are done, so
    quiet queries are measured quiet. The seconds it took."""
    started = time.perf_counter()
    idle = 0
    while idle < 3 and time.perf_counter() - started < limit:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        idle = idle + 1 if cpu_seconds(pid) - before < 0.05 else 0
    return time.perf_counter() - started


class RawEvents:
    """The stored events read in-process once the server has stopped, for the baseline."""

    def __init__(self, store: str, folder: Path) -> None:
        self.folder = folder
        self.duckdb = self.chdb = None
        if store == "duckdb":
            self.duckdb = duckdb.connect(str(folder / "bench.duckdb"))
            self.duckdb.execute("CHECKPOINT")
            # the rollups' file beside it, for the blocks in use
            self.duckdb.execute(f"ATTACH '{folder / 'bench.duckdb.rollups'}' AS rollups")
            self.duckdb.execute("CHECKPOINT rollups")
        else:
            import chdb

            self.chdb = chdb.connect(f"file:{folder / 'bench.chdb'}")

    def rows(self, sql: str) -> list[Any]:
        if self.duckdb is not None:
            return self.duckdb.execute(sql).fetchall()
        return [tuple(row.values()) for row in self.chdb.query(sql, "ArrowTable").to_pylist()]

    def used_bytes(self) -> int | None:
        """DuckDB: the files' blocks in use (the rest are free blocks it keeps for reuse)."""
        if self.duckdb is None:
            return None
        ((used,),) = self.rows("SELECT sum(used_blocks * block_size) FROM pragma_database_size()")
        return int(used)

    def disk_bytes(self) -> int:
        """The store's files: the DuckDB files (events and rollups) and their logs, or the chDB directory."""
        others = {"server.log", "bench.keys.sqlite"}
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file() and p.name not in others)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent ingesting clients")
    parser.add_argument("--single", type=int, default=3000, help="single-event requests to send")
    parser.add_argument("--repeat", type=int, default=20, help="runs of each query")
    parser.add_argument("--store", choices=["duckdb", "chdb"], default="duckdb")
    parser.add_argument("--memory-limit", default=None, help="the server's --memory-limit (DuckDB)")
    parser.add_argument(
        "--ids",
        choices=["random", "counting"],
        default="random",
        help="event ids in no order (as an upstream's are) or counting up (as ULIDs do)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the store's folder after the run")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="openusage-bench-"))
    if args.keep:
        print(f"the store: {folder}")
    else:  # registered first, so it runs after the server is killed (exit handlers run last first)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    db = folder / "bench.duckdb"
    port = free_port()
    now = int(time.time())
    data = Dataset(now, random_ids=args.ids == "random")
    templates = [data.split(data.template(random.Random(n), 1000)) for n in range(50)]
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openusage",
            "serve",
            *(
                ["--db", str(db)]
                if args.store == "duckdb"
                else ["--store", f"chdb://{folder / 'bench.chdb'}"]
            ),
            *(["--memory-limit", args.memory_limit] if args.memory_limit else []),
            "--port",
            str(port),
            "--lookback-days",
            "0",
        ],
        env={**os.environ, "OPENUSAGE_ADMIN_KEY": KEY},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    atexit.register(server.kill)  # a failed run must not leave the server holding its file
    base = f"http://127.0.0.1:{port}/v1"
    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    wait_for_health(port)
    print(
        f"dataset: {args.events:,} completion events over 30 days, 50 projects, 2,000 users, 500 keys, 20 models"
    )

    # Ingestion in batches of 1,000 from several clients.
    batches = args.events // 1000
    started, cpu = time.perf_counter(), CpuShare(server.pid)
    finished = send_batches(f"{base}/organization/usage/events", data, templates, batches, args.clients)
    elapsed = time.perf_counter() - started
    print(
        f"ingest, batches of 1,000: {batches * 1000 / elapsed:,.0f} events/s ({elapsed:.1f} s)"
        f"   target >= 150,000"
    )
    print(f"  CPU {cpu.per(batches * 1000, elapsed, 'event')}")
    tenth = batches // 10
    if tenth:
        first = tenth * 1000 / (finished[tenth - 1] - started)
        last = tenth * 1000 / (finished[-1] - finished[-tenth - 1])
        print(f"  first tenth {first:,.0f} events/s, last tenth {last:,.0f} events/s   target: last >= first")

    # Measured on a settled server, so the rolling up of the batches above is not counted
    # in what a single event costs (before the fifteenth session it was).
    print(f"  settled (rolling up and compaction done) {settle(server.pid):.0f} s later")
    # Deployments send events with ingest keys, which the server finds in its key file (the
    # configured admin key it checks without one); chDB's server keeps its keys elsewhere.
    key, sender = "the configured admin key", headers
    if args.store == "duckdb":
        key, sender = "an ingest key", {**headers, "Authorization": f"Bearer {ingest_key(db)}"}
    started, cpu = time.perf_counter(), CpuShare(server.pid)
    asyncio.run(
        single_events(f"{base}/organization/usage/events", sender, args.single, args.clients * 4, now)
    )
    elapsed = time.perf_counter() - started
    print(f"ingest, single-event requests ({key}): {args.single / elapsed:,.0f} requests/s   target >= 3,000")
    print(f"  CPU {cpu.per(args.single, elapsed, 'request')}")

    day0 = now - now % DAY
    some_projects = data.projects[:5]
    queries = query_mix(data, now)
    client = httpx.Client(headers=headers, timeout=300)
    print(
        f"\nthe server settled (its background rolling up and compaction done) {settle(server.pid):.0f} s later"
    )

    def run(params: dict[str, Any]) -> Callable[[], Any]:
        url, rest = query_url(base, params)
        return lambda: client.get(url, params=rest).raise_for_status()

    def walk_minutes() -> None:
        params: dict[str, Any] = {
            "start_time": now - 7 * DAY,
            "end_time": now,
            "bucket_width": "1m",
            "limit": 1440,
        }
        while True:
            page = (
                client.get(f"{base}/organization/usage/completions", params=params).raise_for_status().json()
            )
            if not page["has_more"]:
                return
            params["page"] = page["next_page"]

    print(
        f"\nqueries over HTTP ({args.repeat} runs each): p50 / p99 ms"
        "   targets: p50 <= 10, p99 <= 30; a 9,700-result page <= 40; costs p50 <= 50"
    )
    http_p50: dict[str, float] = {}
    for name, params in queries.items():
        times = timed(run(params), args.repeat)
        http_p50[name] = statistics.median(times)
        print(f"  {name:42s} {http_p50[name]:9.1f} {percentile(times, 0.99):9.1f}")
    walk = timed(walk_minutes, max(3, args.repeat // 5))
    http_p50["walk 7 days of minute buckets"] = statistics.median(walk)
    print(
        f"  {'walk 7 days of minute buckets (7 pages)':42s} {statistics.median(walk):9.1f} {max(walk):9.1f}"
    )

    # Visibility: one event in, how long until a query shows it.
    marker = {
        "id": "visible-1",
        "type": "completions",
        "timestamp": now - 30,
        "model": "marker",
        "input_tokens": 1,
    }
    started = time.perf_counter()
    client.post(f"{base}/organization/usage/events", json={"events": [marker]}).raise_for_status()
    while not client.get(
        f"{base}/organization/usage/completions", params={"start_time": now - 60, "models": "marker"}
    ).json()["data"][0]["results"]:
        time.sleep(0.001)
    print(
        f"\nan ingested event is visible after {(time.perf_counter() - started) * 1000:.1f} ms"
        "   target <= 1,000"
    )

    # Queries while ingesting.
    stop = threading.Event()

    def background_ingest() -> None:
        number = batches
        with httpx.Client(headers=headers, timeout=120) as writer:
            while not stop.is_set():
                body = data.body(templates[number % len(templates)], number, batches)
                writer.post(f"{base}/organization/usage/events", content=body).raise_for_status()
                number += 1

    ingesting = threading.Thread(target=background_ingest)
    ingesting.start()
    loaded = {
        name: statistics.median(timed(run(params), max(3, args.repeat // 4)))
        for name, params in queries.items()
    }
    stop.set()
    ingesting.join()
    worst = max(loaded, key=lambda name: loaded[name] / http_p50[name])
    print(
        f"queries while ingesting: worst p50 slowdown {loaded[worst] / http_p50[worst]:.1f}x ({worst}: "
        f"{loaded[worst]:.1f} ms)   target <= 2x"
    )

    memory = "?"
    status = Path(f"/proc/{server.pid}/status")
    if status.exists():
        memory = next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("VmHWM"))
    server.terminate()
    server.wait()
    client.close()
    stored = RawEvents(args.store, folder)
    ((events,),) = stored.rows("SELECT count(*) FROM events")
    disk = stored.disk_bytes()
    print(
        f"disk: {disk / events:.1f} bytes per event ({disk / 1e6:.0f} MB for {events:,} events)"
        "   target <= 60"
    )
    used = stored.used_bytes()
    if used is not None:
        print(f"  in blocks in use: {used / events:.1f} bytes per event (the file's free blocks are reused)")
    print(
        f"peak server memory: {int(memory) / 1024:.0f} MiB   target <= 1,024"
        if memory != "?"
        else "peak server memory: unknown"
    )

    # The baseline: the same questions as plain GROUP BY queries over the raw events table.
    raw = {
        "1d x 31 by model": (
            "SELECT ts - ts % 86400 AS b, model, sum(input_tokens), sum(output_tokens) FROM events "
            f"WHERE kind = 'completions' AND ts >= {day0 - 30 * DAY} AND ts < {now} GROUP BY ALL"
        ),
        "1m x 1440 ungrouped": (
            "SELECT ts - ts % 60 AS b, sum(input_tokens), sum(output_tokens) FROM events "
            f"WHERE kind = 'completions' AND ts >= {now - DAY} AND ts < {now} GROUP BY ALL"
        ),
        "1h x 168 by project, model, filtered": (
            "SELECT ts - ts % 3600 AS b, project_id, model, sum(input_tokens) FROM events WHERE kind = 'completions' "
            f"AND ts >= {now - 7 * DAY} AND project_id IN ({', '.join(repr(p) for p in some_projects)}) "
            f"AND model IN ('{MODELS[0]}', '{MODELS[1]}') GROUP BY ALL"
        ),
        "users and keys of one project, 1d x 30": (
            "SELECT ts - ts % 86400 AS b, user_id, api_key_id, sum(input_tokens) FROM events WHERE kind = 'completions' "
            f"AND ts >= {day0 - 29 * DAY} AND project_id = '{data.projects[0]}' GROUP BY ALL"
        ),
        "costs 1d x 180 by line item": (
            "SELECT ts - ts % 86400 AS b, model, batch, service_tier, sum(input_uncached_tokens), "
            "sum(input_cached_tokens), sum(output_tokens) FROM events "
            f"WHERE ts >= {day0 - 179 * DAY} GROUP BY ALL"
        ),
        "walk 7 days of minute buckets": (
            "SELECT ts - ts % 60 AS b, sum(input_tokens) FROM events "
            f"WHERE kind = 'completions' AND ts >= {now - 7 * DAY} AND ts < {now} GROUP BY ALL"
        ),
    }
    print(
        "\nbaseline: plain GROUP BY over raw events in-process, p50 ms, and the ratio baseline / HTTP"
        "   targets: >= 1x at 1M, >= 20x at 100M"
    )
    for name, sql in raw.items():
        base_p50 = statistics.median(timed(lambda sql=sql: stored.rows(sql), max(3, args.repeat // 4)))
        print(f"  {name:42s} {base_p50:9.1f}   ratio {base_p50 / http_p50[name]:5.2f}x")


if __name__ == "__main__":
    main()
