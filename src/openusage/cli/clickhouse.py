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
def clickhouse_schema(cluster: str | None) -> None:
    """Print the tables' DDL. The server makes them on one server by itself; on a cluster
    run this once (clickhouse-client --multiquery < schema.sql) before the first server starts."""
    from ..store.clickhouse import schema_sql

    for statement in schema_sql(cluster):
        click.echo(statement + ";\n")
