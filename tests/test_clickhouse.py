"""The ClickHouse store's own parts: the cluster DDL, and a real ClickHouse server when one
is given. Everything else about the store runs in the server's tests, on chDB."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from openusage.server.events import EventRules, parse_events
from openusage.store.base import Aggregation
from openusage.store.clickhouse import ClickHouseStore, schema_sql

DAY0 = 1_700_006_400


def test_the_cluster_schema_is_valid_clickhouse_and_replicated() -> None:
    import chdb

    statements = schema_sql("usage_cluster")
    for statement in statements:
        # formatQuery parses a statement without running it: a typo fails here.
        chdb.query(f"SELECT formatQuery({_literal(statement)})", "CSV")
    local, distributed, version = statements
    assert "ON CLUSTER usage_cluster" in local and "ReplicatedMergeTree(" in local
    assert "Distributed(usage_cluster, currentDatabase(), events_local, cityHash64(id))" in distributed
    assert "ReplicatedMergeTree(" in version

    # The shard tables hold exactly the columns of the single-server table.
    def columns(ddl: str) -> str:
        return ddl.split("(", 1)[1].split(") ENGINE")[0]

    assert columns(local) == columns(schema_sql()[0])


def test_the_schema_command_prints_what_the_store_makes() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "openusage", "clickhouse", "schema", "--cluster", "c1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == "".join(s + ";\n\n" for s in schema_sql("c1"))


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.fixture
def server_store() -> Iterator[ClickHouseStore]:
    url = os.environ.get("CLICKHOUSE_URL")
    if not url:
        pytest.skip("CLICKHOUSE_URL is not set: no ClickHouse server to test against (chDB runs the rest)")
    from openusage.store.clickhouse_connections import ServerConnection

    database = f"openusage_test_{uuid.uuid4().hex[:8]}"
    admin = ServerConnection(url)
    admin.command(f"CREATE DATABASE {database}")
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    store = ClickHouseStore(ServerConnection(f"{base}/{database}"), where=database)
    try:
        yield store
    finally:
        store.close()
        admin.command(f"DROP DATABASE {database}")
        admin.close()


def test_a_clickhouse_server_stores_once_and_sums(server_store: ClickHouseStore) -> None:
    events = [
        {"id": f"e{i}", "type": "embeddings", "timestamp": DAY0 + i, "model": "m", "input_tokens": 2**40}
        for i in range(10)
    ]
    rows = parse_events(events, EventRules(now=DAY0))
    assert server_store.append(rows).inserted == 10
    assert server_store.append(rows[:5]).duplicates == 5
    query = Aggregation(
        kind="embeddings",
        buckets=[(DAY0, DAY0 + 86_400)],
        width_seconds=86_400,
        group_by=("model",),
        filters={},
        metrics=("input_tokens",),
    )
    assert server_store.aggregate(query) == [(DAY0, ("m",), (10 * 2**40,))]
