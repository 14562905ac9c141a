"""The CLI's server commands end to end: demo data, the first key, keys while serving."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from openusage.catalogue import USAGE_ENDPOINTS
from openusage.store import Aggregation
from openusage.store.rollup_tables import rollups_path
from openusage.store.rollups import ROLLUPS

from .conftest import DAY, Server, start_server, stop_server

#: a midnight after the demo's days (made relative to now)
DAY0_DEMO = int(time.time()) // DAY * DAY


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openusage", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("demo")
    made = run_cli("demo", "--db", str(tmp / "usage.duckdb"), "--days", "14")
    assert made.returncode == 0, made.stderr
    assert re.match(r"\d+ events stored", made.stdout)
    running = start_server(tmp)
    yield running
    stop_server(running)


def test_demo_fills_every_endpoint(demo_server: Server) -> None:
    start = int(time.time()) - 14 * DAY
    for endpoint in USAGE_ENDPOINTS:
        buckets = demo_server.walk(endpoint.path, {"start_time": start, "limit": 31})
        non_empty = [b for b in buckets if b["results"]]
        assert len(non_empty) >= 12, endpoint.name


def test_demo_usage_looks_like_real_usage(demo_server: Server) -> None:
    start = int(time.time()) - 14 * DAY
    path = "/organization/usage/completions"
    grouped = demo_server.walk(
        path, {"start_time": start, "group_by": ["project_id", "model", "batch", "service_tier"]}
    )
    results = [r for b in grouped for r in b["results"]]
    assert len({r["project_id"] for r in results}) >= 3
    assert len({r["model"] for r in results}) >= 5
    assert {r["batch"] for r in results} == {True, False}
    assert {"default", "flex", "priority"} <= {r["service_tier"] for r in results}
    totals = Counter[str]()
    for r in results:
        totals.update(
            {k: r[k] for k in ("input_tokens", "input_cached_tokens", "output_tokens", "num_model_requests")}
        )
    assert 0.1 < totals["input_cached_tokens"] / totals["input_tokens"] < 0.8
    assert 500 < totals["input_tokens"] / totals["num_model_requests"] < 20_000
    # The working day shows: afternoons (UTC) are busier than nights.
    hourly = demo_server.walk(path, {"start_time": start, "bucket_width": "1h", "limit": 168})
    by_hour = Counter[int]()
    for bucket in hourly:
        by_hour[bucket["start_time"] % DAY // 3600] += sum(r["num_model_requests"] for r in bucket["results"])
    assert by_hour[16] > 2 * by_hour[3]


def test_demo_again_adds_only_new_hours(tmp_path: Path) -> None:
    db = str(tmp_path / "again.duckdb")
    first = run_cli("demo", "--db", db, "--days", "2")
    second = run_cli("demo", "--db", db, "--days", "2")
    stored = int(first.stdout.split()[0])
    again = int(second.stdout.split()[0])
    assert stored > 500 and again < stored * 0.05


def test_serve_without_any_key_makes_an_admin_key_and_prints_it_once(tmp_path: Path) -> None:
    running = start_server(tmp_path, env={"OPENUSAGE_ADMIN_KEY": ""})
    try:
        log = running.log_path.read_text()
        keys = re.findall(r"sk-admin-[A-Za-z0-9_-]{20,}", log)
        assert len(keys) == 1
        assert (
            running.get(
                "/organization/usage/embeddings", {"start_time": int(time.time()) - DAY}, key=keys[0]
            ).status_code
            == 200
        )
        listed = running.cli("keys", "list")
        assert keys[0] not in listed.stdout and "admin" in listed.stdout
    finally:
        stop_server(running)
    # A second start finds the key and prints none.
    again = start_server(tmp_path, env={"OPENUSAGE_ADMIN_KEY": ""})
    stop_server(again)
    assert "sk-admin-" not in again.log_path.read_text()


def test_rollups_show_and_rebuild_a_damaged_rollup(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "rollups.duckdb"
    assert run_cli("demo", "--db", str(db), "--days", "2").returncode == 0

    def day_model_rows() -> int:
        shown = run_cli("rollups", "show", "--db", str(db))
        assert shown.returncode == 0, shown.stderr
        assert "0 events not rolled up yet" in shown.stdout
        line = next(x for x in shown.stdout.splitlines() if "completions" in x and "day_model" in x)
        return int(line.split("│")[-2].strip().replace(",", ""))

    rows = day_model_rows()
    assert rows > 0
    con = duckdb.connect(rollups_path(str(db)))
    con.execute("DELETE FROM rollup_completions_day_model")
    con.close()
    assert day_model_rows() == 0
    rebuilt = run_cli("rollups", "rebuild", "--db", str(db))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert re.match(r"rollups rebuilt: [\d,]+ rows", rebuilt.stdout)
    assert day_model_rows() == rows


def test_rollups_show_and_rebuild_on_chdb(tmp_path: Path) -> None:
    """The same commands with --store: a ClickHouse rollup emptied by hand is filled again
    with what the raw events hold."""
    db, folder = tmp_path / "demo.duckdb", tmp_path / "store"
    store = f"chdb://{folder}"
    assert run_cli("demo", "--db", str(db), "--days", "2").returncode == 0
    moved = run_cli("migrate", "--from", str(db), "--to", store, "--state", str(tmp_path / "state.json"))
    assert moved.returncode == 0, moved.stderr

    def chdb(sql: str) -> str:
        """One statement in the chDB directory, from a process of its own (chDB opens one
        directory per process)."""
        script = (
            "import sys, pathlib; from openusage.store.clickhouse_connections import ChdbConnection; "
            "c = ChdbConnection(pathlib.Path(sys.argv[1])); sql = sys.argv[2]; "
            "print(c.rows(sql) if sql.startswith('SELECT') else c.command(sql)); c.close()"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(folder), sql], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def shown_rows() -> int:
        shown = run_cli("rollups", "show", "--store", store)
        assert shown.returncode == 0, shown.stderr
        assert "0 events not rolled up yet" in shown.stdout
        line = next(x for x in shown.stdout.splitlines() if "completions" in x and "day_model" in x)
        return int(line.split("│")[-2].strip().replace(",", ""))

    raw = chdb("SELECT toString(sum(input_tokens)) FROM events WHERE kind = 'completions'")
    rolled = "SELECT toString(sum(input_tokens)) FROM rollup_completions_day_model"
    assert chdb(rolled) == raw
    chdb("TRUNCATE TABLE rollup_completions_day_model")
    assert shown_rows() == 0
    for _ in range(2):  # the second time over full tables: nothing counted twice
        rebuilt = run_cli("rollups", "rebuild", "--store", store)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert re.match(r"rollups rebuilt: [\d,]+ rows", rebuilt.stdout)
        assert chdb(rolled) == raw
    day_model = next(r for r in ROLLUPS["completions"] if r.name == "day_model")
    keys = ", ".join(["b", *day_model.dimensions])
    groups = chdb(f"SELECT count() FROM (SELECT DISTINCT {keys} FROM {day_model.table})")
    assert shown_rows() == int(groups.strip("[](),"))  # one insert: one row per bucket and group


def test_shrink_gives_free_blocks_back_and_keeps_every_answer(tmp_path: Path) -> None:
    from openusage.store import DuckDBStore

    db = tmp_path / "shrink.duckdb"
    assert run_cli("demo", "--db", str(db), "--days", "3").returncode == 0
    store = DuckDBStore(db)
    store.rebuild_rollups()  # the rollups written again: their old blocks are now free
    queries = [
        query
        for endpoint in USAGE_ENDPOINTS
        for query in [
            Aggregation(
                kind=endpoint.name,
                buckets=[(start, start + DAY) for start in range(DAY0_DEMO - 5 * DAY, DAY0_DEMO + DAY, DAY)],
                width_seconds=DAY,
                group_by=endpoint.group_fields[:2],
                filters={},
                metrics=endpoint.metric_names,
                gauge=endpoint.has_gauge,
            )
        ]
    ]
    answers = [store.aggregate(q) for q in queries]
    store.close()
    files = [db, Path(rollups_path(str(db)))]
    before = sum(f.stat().st_size for f in files)

    shrunk = run_cli("shrink", "--db", str(db))
    assert shrunk.returncode == 0, shrunk.stderr
    assert re.match(rf"{re.escape(str(db))}: [\d.,]+ MiB -> [\d.,]+ MiB", shrunk.stdout)
    assert sum(f.stat().st_size for f in files) < before
    # nothing left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shrink.duckdb", "shrink.duckdb.rollups"]
    store = DuckDBStore(db)
    try:
        assert [store.aggregate(q) for q in queries] == answers
        assert any(answers)
    finally:
        store.close()


def test_shrink_refuses_a_database_in_use(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        refused = run_cli("shrink", "--db", str(tmp_path / "usage.duckdb"))
    finally:
        stop_server(running)
    assert refused.returncode == 1
    assert "in use by another process" in refused.stderr


def test_shrink_says_a_file_it_cannot_read_is_not_a_database_not_that_it_is_in_use(tmp_path: Path) -> None:
    """Reached only when a file changes between shrink's opening of the store and its copy
    of each file (a race), so the copy is asked directly."""
    from openusage.store.base import StoreUnavailable
    from openusage.store.shrink import _rewrite

    garbled = tmp_path / "garbled.duckdb"
    garbled.write_bytes(b"not a database " * 1000)
    with pytest.raises(StoreUnavailable, match="as a DuckDB database") as refused:
        _rewrite(garbled)
    assert "in use" not in str(refused.value)
    assert garbled.read_bytes() == b"not a database " * 1000  # left as it was


def test_rollup_commands_refuse_a_database_in_use(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        refused = run_cli("rollups", "rebuild", "--db", str(tmp_path / "usage.duckdb"))
    finally:
        stop_server(running)
    assert refused.returncode == 1
    assert "in use by another process" in refused.stderr


def test_the_price_book_prices_everything_the_demo_makes(demo_server: Server) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "openusage", "prices", "check", "--days", "15"],
        env={**os.environ, "OPENAI_ADMIN_KEY": demo_server.admin_key, "OPENUSAGE_URL": demo_server.api},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "has a price" in checked.stdout


def test_the_demo_has_agents_traffic_and_both_cache_retentions(demo_server: Server) -> None:
    start = int(time.time()) - 14 * DAY
    for path in ("/organization/usage/completions", "/organization/usage/decisions"):
        buckets = demo_server.walk(path, {"start_time": start, "group_by": "api_source"})
        sources = Counter[str]()
        for r in (r for b in buckets for r in b["results"]):
            sources[r["api_source"]] += r["num_model_requests"]
            assert (
                r["input_cache_write_tokens"]
                == r["input_cache_write_30m_tokens"] + r["input_cache_write_12h_tokens"]
            )
        assert set(sources) == {"agents_api", "unlabeled"} and sources["unlabeled"] > sources["agents_api"]
    whole = demo_server.walk("/organization/usage/completions", {"start_time": start})
    assert sum(r["input_cache_write_12h_tokens"] for b in whole for r in b["results"]) > 0
    assert sum(r["input_cache_write_30m_tokens"] for b in whole for r in b["results"]) > 0
