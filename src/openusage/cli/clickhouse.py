"""Commands for stores on ClickHouse."""

from __future__ import annotations

import click


@click.group()
def clickhouse() -> None:
    """Set up a ClickHouse server or cluster as the store (see docs/clickhouse.md)."""


@clickhouse.command("schema")
@click.option(
    "--cluster", default=None, metavar="NAME", help="Print the replicated, distributed form for NAME."
)
@click.option(
    "--retention-days",
    type=click.IntRange(min=1),
    default=None,
    help="Delete events this many days after their time (a TTL on the events' table).",
)
def clickhouse_schema(cluster: str | None, retention_days: int | None) -> None:
    """Print the tables' DDL. The server makes them on one server by itself; on a cluster
    run this once (clickhouse-client --multiquery < schema.sql) before the first server starts."""
    from ..store.clickhouse import schema_sql

    for statement in schema_sql(cluster, retention_days):
        click.echo(statement + ";\n")
