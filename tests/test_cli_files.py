"""What the CLI does with the files and settings a new user gives it: missing, mis-encoded
or ragged files, spreadsheets' byte-order marks, rejected lines set aside, the keys and
URLs of the environment, a mistyped database, and output piped to another program."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DAY, Server, event


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # No COLUMNS here: output is piped, as into a file or another program.
    base = {
        k: v for k, v in os.environ.items() if k not in ("COLUMNS", "OPENAI_ADMIN_KEY", "OPENUSAGE_ADMIN_KEY")
    }
    return subprocess.run(
        [sys.executable, "-m", "openusage", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**base, **(env or {})},
        cwd=cwd,
    )


def to(server: Server) -> dict[str, str]:
    """The environment the README tells a user to set: the official client's key name."""
    return {"OPENAI_ADMIN_KEY": server.admin_key, "OPENUSAGE_URL": server.api}


def lines(*events: object) -> str:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)


def stored(server: Server, day0: int) -> int:
    page = server.page("/organization/usage/embeddings", {"start_time": day0, "end_time": day0 + DAY})
    return sum(r["input_tokens"] for b in page["data"] for r in b["results"])


def test_a_missing_file_is_a_command_line_error(server: Server, tmp_path: Path) -> None:
    done = run("ingest", str(tmp_path / "nope.ndjson"), env=to(server))
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_a_file_that_is_not_utf8_is_said_so(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "latin1.ndjson"
    day0 = server.window(1)
    # "café" in Latin-1, as an old spreadsheet export would write it
    source.write_bytes(b'{"id": "caf\xe9", "type": "embeddings", "timestamp": %d}\n' % (day0 + 1))
    done = run("ingest", str(source), env=to(server))
    assert done.returncode == 1
    assert "not UTF-8" in done.stderr and "Traceback" not in done.stderr


def test_ragged_csv_rows_are_refused_naming_the_line(server: Server, tmp_path: Path) -> None:
    day0 = server.window(1)
    source = tmp_path / "ragged.csv"
    source.write_text(
        "id,type,timestamp,input_tokens\n"
        f"r1-{day0},embeddings,{day0 + 1},5\n"
        f"r2-{day0},embeddings,{day0 + 2}\n"  # short: a metric would be stored as 0
        f"r3-{day0},embeddings,{day0 + 3},7,99\n"  # long: a value would be dropped
    )
    done = run("ingest", str(source), "--batch-size", "1", env=to(server))
    assert done.returncode == 1
    assert "line 3: 3 values, the header has 4" in done.stderr
    assert "line 4: 5 values, the header has 4" in done.stderr
    assert stored(server, day0) == 5


def test_a_csv_with_a_byte_order_mark_is_read(server: Server, tmp_path: Path) -> None:
    day0 = server.window(1)
    source = tmp_path / "excel.csv"
    source.write_bytes(
        "\ufeffid,type,timestamp,input_tokens\n".encode() + f"bom-{day0},embeddings,{day0 + 1},11\n".encode()
    )
    done = run("ingest", str(source), env=to(server))
    assert done.returncode == 0, done.stderr
    assert stored(server, day0) == 11


def test_rejected_lines_go_to_a_file_and_the_good_ones_are_stored(server: Server, tmp_path: Path) -> None:
    day0 = server.window(1)
    source = tmp_path / "mixed.ndjson"
    source.write_text(
        lines(
            event("embeddings", day0 + 1, f"g1-{day0}", input_tokens=1),
            "{not json",
            event("embeddings", day0 + 2, f"b1-{day0}", input_tokens=-4),
            event("embeddings", day0 + 3, f"g2-{day0}", input_tokens=20),
        )
    )
    # By default a batch is all or nothing.
    assert run("ingest", str(source), env=to(server)).returncode == 1
    assert stored(server, day0) == 0
    rejects = tmp_path / "rejects.ndjson"
    done = run("ingest", str(source), "--rejects", str(rejects), env=to(server))
    assert done.returncode == 1
    assert stored(server, day0) == 21
    set_aside = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in set_aside] == [2, 3]
    assert "not valid JSON" in set_aside[0]["error"] and set_aside[0]["event"] is None
    assert "input_tokens" in set_aside[1]["error"] and set_aside[1]["event"]["id"] == f"b1-{day0}"
    assert "2 rejected lines written to" in done.stderr


@pytest.mark.parametrize(
    "command", [("keys", "list"), ("keys", "create"), ("keys", "revoke", "key_x"), ("rollups", "show")]
)
def test_a_mistyped_database_is_named_and_never_made(tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "typo.duckdb"
    done = run(*command, "--db", str(missing))
    assert done.returncode == 1
    assert f"no database at {missing}" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_command_uses_the_same_default_database(tmp_path: Path) -> None:
    made = run("demo", "--days", "1", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    key = run("keys", "create", cwd=tmp_path)
    assert key.returncode == 0, key.stderr
    listed = run("keys", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "admin" in listed.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith((".wal", "-wal", "-shm"))) == [
        "openusage.duckdb",
        "openusage.duckdb.rollups",
        "openusage.keys.sqlite",
    ]
    assert (
        "openusage demo" in Path("scripts/demo.sh").read_text()
        and "--db" not in Path("scripts/demo.sh").read_text()
    )


def test_piped_tables_are_never_cut(server: Server) -> None:
    day0 = server.window(1)
    model = "gpt-4.1-mini-2025-04-14-fine-tuned-for-a-very-long-name"
    server.ingest_ok(
        [event("completions", day0 + 1, model=model, project_id="proj_" + "x" * 40, input_tokens=3)]
    )
    window = ["--start", str(day0), "--end", str(day0 + DAY)]
    done = run("usage", "completions", *window, "--group-by", "model,project_id", env=to(server))
    assert done.returncode == 0, done.stderr
    assert model in done.stdout and "proj_" + "x" * 40 in done.stdout


def test_a_size_gauge_shows_its_latest_value_in_binary_units(server: Server) -> None:
    day0 = server.window(3)
    project = f"proj-gauge-{day0}"
    server.ingest_ok(
        [
            event(
                "vector_stores",
                day0 + 1,
                project_id=project,
                vector_store_id=f"vs-{day0}",
                usage_bytes=3 * 2**30,
            )
        ]
    )
    window = ["--start", str(day0), "--end", str(day0 + 3 * DAY), "--project-ids", project]
    done = run("usage", "vector_stores", *window, env=to(server))
    assert done.returncode == 0, done.stderr
    footer = next(line for line in done.stdout.splitlines() if "latest" in line)
    assert "3 GiB" in footer  # not 9 GiB summed over three days, and not "3.22B"


def test_a_batch_of_only_bad_events_is_set_aside_line_by_line(server: Server, tmp_path: Path) -> None:
    """Each refusal names one event; more than a thousand of them in one batch are set
    aside one after the other (no recursion to run out of)."""
    day0 = server.window(1)
    source = tmp_path / "bad.ndjson"
    source.write_text(
        lines(*(event("embeddings", day0 + 1, f"neg-{day0}-{i}", input_tokens=-1) for i in range(1_050)))
    )
    rejects = tmp_path / "rejects.ndjson"
    done = run("ingest", str(source), "--batch-size", "1050", "--rejects", str(rejects), env=to(server))
    assert done.returncode == 1, done.stderr[-500:]
    assert len(rejects.read_text().splitlines()) == 1_050
    assert stored(server, day0) == 0
