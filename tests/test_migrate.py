"""``openusage migrate`` moves events between the embedded store and ClickHouse (chDB) and
back: every endpoint answers the same on the copy as on the original; interrupted by a
SIGKILL, it goes on where it stopped and nothing is counted twice."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from openusage.catalogue import USAGE_ENDPOINTS

from .conftest import DAY, run_cli, start_server, stop_server


def answers(folder: Path, store: str, start: int) -> dict[str, Any]:
    """Every usage endpoint and costs, by day and by hour with groups, from a server on
    ``store``, up to the same end (the demo's events reach the present)."""
    end = start + 4 * DAY
    folder.mkdir()
    running = start_server(folder, "--lookback-days", "0", "--store", store)
    try:
        pages: dict[str, Any] = {}
        for endpoint in USAGE_ENDPOINTS:
            path = f"/organization/{'costs' if endpoint.is_costs else 'usage/' + endpoint.name}"
            pages[path] = running.page(path, {"start_time": start, "end_time": end, "limit": 7})["data"]
            if not endpoint.is_costs:
                grouped = {"start_time": end - 2 * DAY, "end_time": end, "bucket_width": "1h", "limit": 48}
                grouped["group_by"] = "project_id"
                pages[path + " by hour"] = running.page(path, grouped)["data"]
        return pages
    finally:
        stop_server(running)


def test_there_and_back_again_every_answer_is_the_same(tmp_path: Path) -> None:
    chdb, back_file = f"chdb://{tmp_path / 'copy.chdb'}", f"duckdb://{tmp_path / 'back.duckdb'}"
    made = run_cli("demo", "--db", "original.duckdb", "--days", "3", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    there = run_cli(
        "migrate", "--from", "original.duckdb", "--to", f"chdb://{tmp_path / 'copy.chdb'}", cwd=tmp_path
    )
    assert there.returncode == 0, there.stderr
    events = int(made.stdout.split()[0])
    assert there.stdout.startswith(f"{events} events copied, 0 already there")
    back = run_cli("migrate", "--from", chdb, "--to", back_file, cwd=tmp_path)
    assert back.returncode == 0 and back.stdout.startswith(f"{events} events copied"), back.stderr

    start = int(time.time()) - 3 * DAY
    start -= start % DAY  # the 4 days from here hold every demo event
    original = answers(tmp_path / "a", str(tmp_path / "original.duckdb"), start)
    assert any(bucket["results"] for page in original.values() for bucket in page)
    assert answers(tmp_path / "b", chdb, start) == original
    assert answers(tmp_path / "c", back_file, start) == original

    again = run_cli(
        "migrate", "--from", "original.duckdb", "--to", f"chdb://{tmp_path / 'copy.chdb'}", cwd=tmp_path
    )
    assert again.stdout.startswith("0 events copied, 0 already there"), "a second run copies only what is new"


def test_an_interrupted_migration_goes_on_where_it_stopped(tmp_path: Path) -> None:
    made = run_cli("demo", "--db", "original.duckdb", "--days", "3", cwd=tmp_path)
    events = int(made.stdout.split()[0])
    command = ["migrate", "--from", "original.duckdb", "--to", "copy.duckdb", "--batch-size", "20"]
    command += ["--state", "state.json"]
    state = tmp_path / "state.json"
    running = subprocess.Popen(
        [sys.executable, "-m", "openusage", *command],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (state.exists() and json.loads(state.read_text())["place"] >= 500):
        assert running.poll() is None and time.monotonic() < deadline, (
            "the migration ended before it was killed"
        )
        time.sleep(0.01)
    running.send_signal(signal.SIGKILL)
    running.wait()
    reached = json.loads(state.read_text())["place"]
    assert reached < events

    resumed = run_cli(*command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    copied, duplicates = map(int, re.findall(r"\d+", resumed.stdout)[:2])
    # It read from the place kept; only the batch stored after the last save was there.
    assert copied + duplicates == events - reached and duplicates <= 20
    start = int(time.time()) - 3 * DAY
    start -= start % DAY
    original = answers(tmp_path / "a", str(tmp_path / "original.duckdb"), start)
    assert answers(tmp_path / "b", str(tmp_path / "copy.duckdb"), start) == original
