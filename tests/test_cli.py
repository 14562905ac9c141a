"""The CLI end to end against a running server: ingest, query in every format, charts,
errors and exit codes, and the reference docs kept in sync with --help."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy
import pytest
from matplotlib import image

from openusage.cli.common import parse_time
from openusage.cli.reference import render

from .conftest import DAY, Server, event

ROOT = Path(__file__).parent.parent


def cli(server: Server | None, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if server is not None:
        env |= {
            "OPENUSAGE_URL": server.api,
            "OPENAI_ADMIN_KEY": server.admin_key,
            "OPENUSAGE_ADMIN_KEY": server.admin_key,
        }
    return subprocess.run(
        [sys.executable, "-m", "openusage", *args], capture_output=True, text=True, timeout=120, check=False,
        env=env, input=stdin,
    )  # fmt: skip


def completions(day0: int, count: int) -> list[dict[str, Any]]:
    return [
        event("completions", day0 + 600 * i, f"cli-{day0}-{i}", model=f"m{i % 3}", project_id=f"p{i % 2}",
              input_tokens=100 * (i + 1), output_tokens=i, batch=i % 4 == 0)
        for i in range(count)
    ]  # fmt: skip


def test_reference_docs_match_the_help() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == render(), (
        "run: python -m openusage.cli.reference docs/cli.md"
    )


def test_ingest_then_query_back_in_every_format(server: Server, tmp_path: Path) -> None:
    day0 = server.window(1)
    events = completions(day0, 30)
    source = tmp_path / "events.ndjson"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    first = cli(server, "ingest", str(source), "--batch-size", "7")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "30 events sent: 30 stored, 0 already there."
    again = cli(server, "ingest", str(source))  # resumable: a second run adds nothing
    assert again.stdout.strip() == "30 events sent: 0 stored, 30 already there."

    window = ["--start", str(day0), "--end", str(day0 + DAY), "--group-by", "model"]
    per_model = {f"m{k}": sum(e["input_tokens"] for e in events if e["model"] == f"m{k}") for k in range(3)}

    as_csv = cli(server, "usage", "completions", *window, "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["model"]: int(r["input_tokens"]) for r in rows} == per_model

    as_json = json.loads(cli(server, "usage", "completions", *window, "--format", "json").stdout)
    assert {r["model"]: r["input_tokens"] for r in as_json} == per_model
    assert all(r["start_time"] == day0 for r in as_json)

    as_ndjson = [
        json.loads(line)
        for line in cli(server, "usage", "completions", *window, "--format", "ndjson").stdout.splitlines()
    ]
    assert as_ndjson == as_json

    table = cli(server, "usage", "completions", *window, "--metric", "input_tokens,num_model_requests")
    assert table.returncode == 0, table.stderr
    assert "m0" in table.stdout and "total" in table.stdout
    total = sum(per_model.values())
    assert f"{total / 1000:.3g}k" in table.stdout  # human-readable total
    (total_row,) = [line for line in table.stdout.splitlines() if line.lstrip("│ ").startswith("total")]
    assert [cell.strip() for cell in total_row.split("│")[1:-1]][-1] == "30"  # 30 requests

    filtered = json.loads(
        cli(
            server, "usage", "completions", *window, "--batch", "--project-ids", "p0", "--format", "json"
        ).stdout
    )
    wanted = [e for e in events if e["batch"] and e["project_id"] == "p0"]
    assert sum(r["num_model_requests"] for r in filtered) == len(wanted)


def test_json_csv_and_stdin_sources(server: Server, tmp_path: Path) -> None:
    day0 = server.window(1)
    events = completions(day0, 6)
    as_json = tmp_path / "events.json"
    as_json.write_text(json.dumps({"events": events[:2]}))
    assert cli(server, "ingest", str(as_json)).stdout.startswith("2 events sent: 2 stored")
    as_csv = tmp_path / "events.csv"
    with as_csv.open("w", newline="") as f:
        writer = csv.DictWriter(
            f,
            fieldnames=[
                "id",
                "type",
                "timestamp",
                "model",
                "project_id",
                "input_tokens",
                "output_tokens",
                "batch",
            ],
        )
        writer.writeheader()
        writer.writerows(
            {k: str(v).lower() if isinstance(v, bool) else v for k, v in e.items()} for e in events[2:4]
        )
    result = cli(server, "ingest", str(as_csv))
    assert result.stdout.startswith("2 events sent: 2 stored"), result.stderr
    piped = cli(server, "ingest", "-", stdin="".join(json.dumps(e) + "\n" for e in events[4:]))
    assert piped.stdout.startswith("2 events sent: 2 stored")
    back = json.loads(
        cli(
            server, "usage", "completions", "--start", str(day0), "--end", str(day0 + DAY), "--format", "json"
        ).stdout
    )
    assert back[0]["input_tokens"] == sum(e["input_tokens"] for e in events)


def test_a_bad_file_is_reported_and_its_rejected_batch_stores_nothing(server: Server, tmp_path: Path) -> None:
    day0 = server.window(1)
    events = completions(day0, 6)
    events[2]["input_tokens"] = -5  # line 3, in the second batch of two
    lines = [json.dumps(e) for e in events]
    lines[4] = "{not json"  # line 5, in the third batch
    source = tmp_path / "bad.ndjson"
    source.write_text("\n".join(lines) + "\n")
    result = cli(server, "ingest", str(source), "--batch-size", "2")
    assert result.returncode == 1
    assert result.stdout.strip() == "2 events sent: 2 stored, 0 already there; 4 in rejected batches."
    assert "rejected: line 3: Invalid event at index 0: 'input_tokens' must be between 0" in result.stderr
    assert "rejected: line 5: not valid JSON" in result.stderr
    back = json.loads(
        cli(
            server, "usage", "completions", "--start", str(day0), "--end", str(day0 + DAY), "--format", "json"
        ).stdout
    )
    assert back[0]["num_model_requests"] == 2  # only the first batch


def is_a_real_chart(path: Path) -> None:
    pixels = image.imread(path)
    assert pixels.shape[:2] == (550, 1100)
    colours = numpy.unique(pixels.reshape(-1, pixels.shape[2]).round(2), axis=0)
    assert len(colours) > 20, "more than a blank canvas"
    assert (pixels[:, :, :3] < 0.9).mean() > 0.02, "a real share of the canvas is drawn on"


def test_charts_for_usage_and_costs(server: Server, tmp_path: Path) -> None:
    day0 = server.window(3)
    priced = [
        event("completions", day0 + d * DAY + 60 * i, model="gpt-4o", project_id=f"p{i % 3}",
              input_tokens=10_000 * (d + 1), output_tokens=500)
        for d in range(3)
        for i in range(50)
    ]  # fmt: skip
    server.ingest_ok(completions(day0, 200) + priced)
    window = ["--start", str(day0), "--end", str(day0 + 3 * DAY)]
    usage_png, costs_png = tmp_path / "usage.png", tmp_path / "costs.png"
    made = cli(
        server,
        "usage",
        "completions",
        *window,
        "--bucket",
        "1h",
        "--group-by",
        "model",
        "--chart",
        str(usage_png),
    )
    assert made.returncode == 0, made.stderr
    is_a_real_chart(usage_png)
    made = cli(
        server, "costs", *window, "--group-by", "project_id", "--chart", str(costs_png), "--format", "csv"
    )
    assert made.returncode == 0, made.stderr
    is_a_real_chart(costs_png)


def test_server_errors_are_one_line_with_exit_codes(server: Server) -> None:
    refused = cli(server, "usage", "completions", "--since", "2d", "--limit", "999")
    assert refused.returncode == 3
    assert refused.stderr.strip().splitlines() == [
        "Error: the server answered 400: Invalid value for 'limit': 999. With bucket_width=1d it must be "
        "between 1 and 31. (parameter: limit)"
    ]
    wrong_key = cli(server, "costs", "--api-key", "sk-nope")
    assert wrong_key.returncode == 3 and "401" in wrong_key.stderr and "sk-nope" not in wrong_key.stderr
    unreachable = cli(server, "usage", "embeddings", "--base-url", "http://127.0.0.1:9/v1")
    assert unreachable.returncode == 4 and unreachable.stderr.startswith("Error:")
    usage_error = cli(server, "usage", "embeddings", "--bucket", "1w")
    assert usage_error.returncode == 2
    bad_time = cli(server, "usage", "embeddings", "--since", "last tuesday")
    assert bad_time.returncode == 2 and "is not a time" in bad_time.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", 1_800_000_000),
        ("7d", 1_800_000_000 - 7 * DAY),
        ("12h", 1_800_000_000 - 12 * 3600),
        ("30m", 1_800_000_000 - 1800),
        ("2w", 1_800_000_000 - 14 * DAY),
        ("2026-11-01", 1_793_491_200),
        ("2026-11-01T12:00", 1_793_491_200 + 12 * 3600),
        ("2026-11-01T12:00:00+02:00", 1_793_491_200 + 10 * 3600),
        ("1700000000", 1_700_000_000),
    ],
)
def test_time_expressions(text: str, expected: int) -> None:
    assert parse_time(text, now=1_800_000_000) == expected


def test_decisions_api_source_and_line_items_from_the_command_line(server: Server) -> None:
    day0 = server.window(1)
    server.ingest_ok(
        [
            event("decisions", day0 + 1, model="gpt-5", input_tokens=100, api_source="agents_api"),
            event("decisions", day0 + 2, model="gpt-5", input_tokens=30),
        ]
    )
    window = ["--start", str(day0), "--end", str(day0 + DAY), "--format", "json"]
    by_source = json.loads(cli(server, "usage", "decisions", *window, "--group-by", "api_source").stdout)
    assert {r["api_source"]: r["input_tokens"] for r in by_source} == {"agents_api": 100, "unlabeled": 30}
    lines = cli(server, "costs", *window, "--group-by", "line_item", "--line-items", "gpt-5, input")
    assert lines.returncode == 0, lines.stderr
    assert {r["line_item"] for r in json.loads(lines.stdout)} == {"gpt-5, input"}
