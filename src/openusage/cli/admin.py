"""``openusage projects``, ``limits`` and ``alerts``: the admin API from the terminal.

Each command talks to a running server (or OpenAI's API) through ``AdminApi``; amounts are
given and shown in dollars, sent in cents as the API takes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

import click
from rich.table import Table

from .common import api_errors, api_options, table_console

PROJECT_OPTION = click.option(
    "--project", "project_id", default=None, help="A project's id (default: the organization's own)."
)


def _api(base_url: str, api_key: str) -> Any:
    from ..client import AdminApi

    return AdminApi(api_key, base_url=base_url)


def _show(columns: list[str], rows: Iterable[list[Any]]) -> None:
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    table_console().print(table)


def _dollars(cents: int) -> str:
    return f"${Decimal(cents) / 100:,.2f}"


class Dollars(click.ParamType[int]):
    """An amount like 250 or 99.50 (dollars, to the cent), as cents."""

    name = "DOLLARS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            amount = Decimal(str(value).lstrip("$").replace(",", ""))
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount of dollars like 250 or 99.50", param, ctx)
        if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
            self.fail(f"{value!r} must be dollars to the cent, 0 or more", param, ctx)
        return int(amount * 100)


@click.group()
def projects() -> None:
    """List, create, rename and archive projects."""


@projects.command("list")
@click.option("--archived", is_flag=True, help="Include archived projects.")
@api_options
def projects_list(archived: bool, base_url: str, api_key: str) -> None:
    """Every project: made here or seen in usage (those have no name until given one)."""
    with api_errors(), _api(base_url, api_key) as api:
        rows = [[p.id, p.name, p.status, p.created_at] for p in api.projects(include_archived=archived)]
    _show(["id", "name", "status", "created_at"], rows)


@projects.command("create")
@click.argument("name")
@api_options
def projects_create(name: str, base_url: str, api_key: str) -> None:
    """Make a project named NAME; prints its id."""
    with api_errors(), _api(base_url, api_key) as api:
        click.echo(api.create_project(name).id)


@projects.command("rename")
@click.argument("project_id")
@click.argument("name")
@api_options
def projects_rename(project_id: str, name: str, base_url: str, api_key: str) -> None:
    """Give PROJECT_ID the name NAME (also names a project seen only in usage)."""
    with api_errors(), _api(base_url, api_key) as api:
        api.rename_project(project_id, name)
    click.echo(f"{project_id} is now named {name!r}")


@projects.command("archive")
@click.argument("project_id")
@api_options
def projects_archive(project_id: str, base_url: str, api_key: str) -> None:
    """Archive PROJECT_ID: its proxy keys stop working at once."""
    with api_errors(), _api(base_url, api_key) as api:
        api.archive_project(project_id)
    click.echo(f"{project_id} is archived")


@click.group()
def limits() -> None:
    """Show, set and clear hard spend limits (a month's costs, in USD)."""


@limits.command("show")
@PROJECT_OPTION
@api_options
def limits_show(project_id: str | None, base_url: str, api_key: str) -> None:
    """The hard limit of the organization, or of --project, and whether it is enforcing."""
    with api_errors(), _api(base_url, api_key) as api:
        limit = api.spend_limit(project_id)
    if limit is None:
        click.echo("no spend limit")
        return
    click.echo(f"{_dollars(limit.threshold_amount)} a month, {limit.enforcement.status}")


@limits.command("set")
@click.argument("amount", type=Dollars())
@PROJECT_OPTION
@api_options
def limits_set(amount: int, project_id: str | None, base_url: str, api_key: str) -> None:
    """Set the hard limit to AMOUNT dollars a month: past it, proxied calls get 429."""
    with api_errors(), _api(base_url, api_key) as api:
        limit = api.set_spend_limit(amount, project_id)
    click.echo(f"{_dollars(limit.threshold_amount)} a month, {limit.enforcement.status}")


@limits.command("clear")
@PROJECT_OPTION
@api_options
def limits_clear(project_id: str | None, base_url: str, api_key: str) -> None:
    """Remove the hard limit."""
    with api_errors(), _api(base_url, api_key) as api:
        removed = api.clear_spend_limit(project_id)
    click.echo("spend limit removed" if removed else "there was no spend limit")


@click.group()
def alerts() -> None:
    """List, create and delete spend alerts (an email once a month past an amount)."""


@alerts.command("list")
@PROJECT_OPTION
@api_options
def alerts_list(project_id: str | None, base_url: str, api_key: str) -> None:
    """The spend alerts of the organization, or of --project."""
    with api_errors(), _api(base_url, api_key) as api:
        rows = [
            [a.id, _dollars(a.threshold_amount), ", ".join(a.notification_channel.recipients)]
            for a in api.spend_alerts(project_id)
        ]
    _show(["id", "threshold", "recipients"], rows)


@alerts.command("create")
@click.argument("amount", type=Dollars())
@click.option("--email", "recipients", multiple=True, required=True, help="Who is told; repeat for several.")
@click.option("--subject-prefix", default=None, help="Put before the email's subject, like [usage].")
@PROJECT_OPTION
@api_options
def alerts_create(
    amount: int,
    recipients: tuple[str, ...],
    subject_prefix: str | None,
    project_id: str | None,
    base_url: str,
    api_key: str,
) -> None:
    """Tell --email once a month when the spend reaches AMOUNT dollars; prints the alert's id."""
    with api_errors(), _api(base_url, api_key) as api:
        alert = api.create_spend_alert(
            amount, list(recipients), subject_prefix=subject_prefix, project_id=project_id
        )
    click.echo(alert.id)


@alerts.command("delete")
@click.argument("alert_id")
@PROJECT_OPTION
@api_options
def alerts_delete(alert_id: str, project_id: str | None, base_url: str, api_key: str) -> None:
    """Delete the alert ALERT_ID (of --project, if it is a project's)."""
    with api_errors(), _api(base_url, api_key) as api:
        api.delete_spend_alert(alert_id, project_id)
    click.echo(f"deleted {alert_id}")
