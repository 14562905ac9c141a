"""Inserts that fail midway on ClickHouse: the events' part written, a rollup view's not.

A materialized view made to throw on one event id stands in for ClickHouse failing between
an insert's parts. The steps run in processes of their own: chDB opens one folder per
process.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx

from openusage.server.events import EventRules, parse_events
from openusage.store import DuckDBStore

from .conftest import ADMIN_KEY, DAY, run_cli, start_server, stop_server
from .test_clickhouse import run_script

DAY0 = 1_700_006_400

STEPS_SCRIPT = """
import json, pathlib, sys
from openusage.server.events import EventRules, parse_events
from openusage.store import WriteUnfinished, open_store
from openusage.store.clickhouse_connections import ChdbConnection
from openusage.store.clickhouse_journal import JOURNAL_NAME
from openusage.store.clickhouse_rollups import ALL_ROLLUPS

DAY0 = 1_700_006_400
folder, steps = sys.argv[1], sys.argv[2:]


def batch(name):
    # Three events 20 days apart: an insert of parts in two partitions.
    events = [
        {"id": f"{name}-{i}", "type": "completions", "timestamp": DAY0 + i * 20 * 86400,
         "input_tokens": 10 + i, "model": "gpt-4o"}
        for i in range(3)
    ]
    return parse_events(events, EventRules(now=DAY0 + 90 * 86400))


if steps[0] == "mend":  # the connection alone: opening the store would send its journal
    ChdbConnection(pathlib.Path(folder)).command("DROP VIEW IF EXISTS fault_view")
    print("[]")
    sys.exit(0)
store = open_store("chdb://" + folder)
con = store._con
out = []
for step in steps:
    if step == "fault":
        con.command("CREATE TABLE IF NOT EXISTS fault_sink (x UInt8) ENGINE = Null")
        con.command(
            "CREATE MATERIALIZED VIEW fault_view TO fault_sink AS "
            "SELECT throwIf(id = 'poison-1') AS x FROM events"
        )
    elif step == "heal":
        con.command("DROP VIEW fault_view")
    elif step.startswith("send:"):
        try:
            result = store.append(batch(step[5:]))
            out.append([step, {"inserted": result.inserted, "duplicates": result.duplicates}])
        except WriteUnfinished as exc:
            out.append([step, {"error": str(exc)}])
    elif step == "totals":
        totals = {"events": con.rows("SELECT toString(sum(input_tokens)) FROM events")[0][0]}
        for rollup in ALL_ROLLUPS:
            if rollup.kind == "completions":
                sql = f"SELECT toString(sum(input_tokens)) FROM {rollup.table}"
                totals[rollup.name] = con.rows(sql)[0][0]
        totals["seqs"] = con.rows("SELECT count() - uniqExact(seq) FROM events")[0][0]
        out.append([step, totals])
    elif step == "problem":
        out.append([step, store.problem()])
    elif step == "rebuild":
        store.rebuild_rollups()
    elif step == "redefine":  # as if a later version defined this rollup another way
        con.command("INSERT INTO rollup_definitions VALUES ('rollup_completions_day', 'another')")
    elif step == "tear":  # as if the process died while it wrote the journal
        journal = pathlib.Path(folder) / JOURNAL_NAME
        journal.write_bytes(journal.read_bytes()[: journal.stat().st_size // 2])
print(json.dumps(out))
store.close()
"""


def run_steps(folder: Path, *steps: str) -> list[tuple[str, Any]]:
    return [(step, value) for step, value in run_script(STEPS_SCRIPT, str(folder), *steps)]


def totals_after(folder: Path) -> dict[str, Any]:
    ((_, totals),) = run_steps(folder, "totals")
    return dict(totals)


def complete(totals: dict[str, Any], tokens: int) -> bool:
    """Every table sums ``tokens`` and no event number is used twice."""
    sums = {name: value for name, value in totals.items() if name != "seqs"}
    return set(sums.values()) == {str(tokens)} and totals["seqs"] == 0


def short(totals: dict[str, Any]) -> bool:
    """Some rollup sums less than the events: the failure this file is about happened."""
    return any(int(value or 0) < int(totals["events"]) for name, value in totals.items() if name != "seqs")


def test_an_insert_that_failed_midway_is_completed_before_the_next(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    steps = run_steps(
        folder,
        *("fault", "send:poison", "totals", "problem", "send:other"),
        *("heal", "send:poison", "problem", "totals", "send:other", "totals"),
    )
    (failed, during, problem, refused, retried, healthy, mended, other, after) = (v for _, v in steps)
    assert "failed midway" in failed["error"]
    assert during["events"] == str(10 + 11 + 12) and short(during)
    assert "failed midway" in problem
    # Nothing new is taken while the earlier insert cannot be completed.
    assert "failed midway" in refused["error"]
    # The client's retry finds its events stored, after the insert was completed.
    assert retried == {"inserted": 0, "duplicates": 3}
    assert healthy is None
    assert complete(mended, 33)
    assert other == {"inserted": 3, "duplicates": 0}
    assert complete(after, 66)  # numbered after the failed insert's events, not over them
    assert complete(totals_after(folder), 66)


def test_an_unfinished_insert_is_not_sent_again_once_the_rollups_are_made_again(tmp_path: Path) -> None:
    """Rollups made again from the raw events hold what part of an insert was stored, and
    no longer know its token: it must not be sent into them."""
    folder = tmp_path / "store"
    (_, failed), (_, other) = run_steps(folder, "fault", "send:poison", "rebuild", "heal", "send:other")
    assert "failed midway" in failed["error"]
    assert other == {"inserted": 3, "duplicates": 0}
    assert complete(totals_after(folder), 66)
    assert complete(totals_after(folder), 66)  # opened twice: no second copy either


def test_a_completed_insert_is_not_sent_into_rollups_made_since(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    run_steps(folder, "send:first", "redefine")
    assert complete(totals_after(folder), 33)  # this opening made the day rollup again
    assert complete(totals_after(folder), 33)


def test_a_journal_torn_while_it_was_written_is_ignored(tmp_path: Path) -> None:
    """Its insert never began: the store opens as if there were none, and takes writes."""
    folder = tmp_path / "store"
    run_steps(folder, "send:first", "tear")
    steps = run_steps(folder, "problem", "send:second", "totals")
    assert [value for _, value in steps[:2]] == [None, {"inserted": 3, "duplicates": 0}]
    assert complete(steps[2][1], 66)


def test_a_server_that_dies_with_an_insert_unfinished_completes_it_when_it_starts(tmp_path: Path) -> None:
    folder = tmp_path / "usage.chdb"
    run_steps(folder, "fault")
    running = start_server(tmp_path, "--lookback-days", "0", store="chdb")
    events = [
        {"id": f"poison-{i}", "type": "completions", "timestamp": DAY0 + i * 20 * DAY, "input_tokens": 10 + i}
        for i in range(3)
    ]

    def send() -> httpx.Response:
        return httpx.post(
            f"{running.base_url}/v1/organization/usage/events",
            json={"events": events},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=60,
        )

    try:
        failed = send()
        assert failed.status_code == 503, failed.text
        assert failed.headers["retry-after"] == "1"
        assert "failed midway" in failed.json()["error"]["message"]
        health = httpx.get(f"{running.base_url}/health", timeout=10).json()
        assert health["status"] == "degraded" and "failed midway" in health["reason"]
    finally:
        running.process.send_signal(signal.SIGKILL)
        running.process.wait()
    run_steps(folder, "mend")
    running = start_server(tmp_path, "--lookback-days", "0", store="chdb")
    try:
        assert httpx.get(f"{running.base_url}/health", timeout=10).json() == {"status": "ok"}
        retried = send()
        assert retried.status_code == 200, retried.text
        assert (retried.json()["inserted"], retried.json()["duplicates"]) == (0, 3)
    finally:
        stop_server(running)
    assert complete(totals_after(folder), 33)


def test_a_migration_stopped_by_an_unfinished_insert_says_so_and_goes_on_when_run_again(
    tmp_path: Path,
) -> None:
    source = DuckDBStore(tmp_path / "source.duckdb")
    events = [
        {"id": f"{name}-{i}", "type": "completions", "timestamp": DAY0 + i * 20 * DAY, "input_tokens": 10 + i}
        for name in ("first", "poison", "last")
        for i in range(3)
    ]
    source.append(parse_events(events, EventRules(now=DAY0 + 90 * DAY)))
    source.close()
    target = tmp_path / "target.chdb"
    run_steps(target, "fault")
    migrate = ("migrate", "--from", str(tmp_path / "source.duckdb"), "--to", f"chdb://{target}")
    state = ("--state", str(tmp_path / "state.json"), "--batch-size", "3")
    stopped = run_cli(*migrate, *state)
    assert stopped.returncode == 1
    assert "3 events copied, up to place 3" in stopped.stderr
    assert "failed midway" in stopped.stderr and "Run it again" in stopped.stderr
    run_steps(target, "mend")
    done = run_cli(*migrate, *state)
    assert done.returncode == 0, done.stderr
    # The insert cut short is completed when the target opens; its events were stored already.
    assert "3 events copied, 3 already there" in done.stdout
    assert complete(totals_after(target), 3 * 33)
