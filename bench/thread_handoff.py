"""How much a thread that calls into DuckDB or Arrow gets done beside a thread running
plain Python (as the server's writer beside its event loop), against the same thread alone,
in the same run, at Python's default switch interval and at shorter ones.

Such a call gives up the interpreter lock, once or several times, and must take it back
from the busy thread, which lets go only when asked, a switch interval later: beside a busy
thread a call costs a few intervals, whatever its own work.

    .venv/bin/python bench/thread_handoff.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable

import duckdb
import pyarrow as pa


def calls_per_second(call: Callable[[], object], seconds: float, busy: bool) -> float:
    """How many times ``call`` runs a second in a thread, beside a busy thread or not."""
    stop = threading.Event()
    done = [0]

    def work() -> None:
        while not stop.is_set():
            call()
            done[0] += 1

    def spin() -> None:
        while not stop.is_set():
            for _ in range(1000):
                pass

    threads = [threading.Thread(target=work)] + ([threading.Thread(target=spin)] if busy else [])
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return done[0] / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    con = duckdb.connect()
    con.execute("CREATE TABLE t (n BIGINT)")
    cursor = con.cursor()

    def commit() -> None:
        cursor.execute("BEGIN TRANSACTION")
        cursor.execute("INSERT INTO t VALUES (1)")
        cursor.execute("COMMIT")

    calls: dict[str, Callable[[], object]] = {
        "DuckDB SELECT 1": lambda: cursor.execute("SELECT 1").fetchall(),
        "DuckDB insert and commit": commit,
        "Arrow array of 16 integers": lambda: pa.array(range(16)),
    }
    default = sys.getswitchinterval()
    print(f"calls a second in one thread: alone, beside a busy Python thread (ratio)   {args.seconds} s each")
    for interval in (default, 0.001, 0.0002):
        sys.setswitchinterval(interval)
        print(f"switch interval {interval * 1000:g} ms")
        for name, call in calls.items():
            alone = calls_per_second(call, args.seconds, busy=False)
            beside = calls_per_second(call, args.seconds, busy=True)
            print(f"  {name:28} {alone:10,.0f} {beside:10,.1f}   ({beside / alone:.4f}x)")
    sys.setswitchinterval(default)


if __name__ == "__main__":
    main()
