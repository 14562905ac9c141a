"""The ``openusage`` command: a thin shell over the library."""

from __future__ import annotations

import os

import click

from .admin import alerts, limits, projects
from .clickhouse import clickhouse
from .gateway import fake_upstream
from .ingest import ingest
from .migrate import migrate
from .prices import prices
from .query import costs, usage
from .rollups import rollups
from .server import backup, demo, keys, serve
from .shrink import shrink

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="openusage")
def main() -> None:
    """An OpenAI-compatible organization Usage & Costs API: serve it, fill it, query it."""
    # Databases, keys and backups hold secrets and usage: every file made is the user's alone.
    os.umask(0o077)


for command in (
    serve, demo, keys, ingest, usage, costs, prices, backup, shrink, rollups, clickhouse, migrate,
    fake_upstream, projects, limits, alerts,
):  # fmt: skip
    main.add_command(command)

__all__ = ["main"]
