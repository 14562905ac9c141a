"""Commands about prices: what a model costs, and what usage has no price."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from .common import EXIT_REJECTED, PRICES_OPTION, api_errors, api_options, table_console


@click.group()
def prices() -> None:
    """Show prices, and find usage that has none."""


@prices.command("show")
@click.argument("model")
@click.option(
    "--day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="The day (default: today, UTC)."
)
@PRICES_OPTION
def prices_show(model: str, day: datetime | None, prices_path: Path | None) -> None:
    """The price of each kind of usage of MODEL, and where it comes from."""
    from ..costs import PriceBook
    from ..costs.pricebook import DATASET_FIELDS

    book = PriceBook.from_file(prices_path)
    when = (day or datetime.now(UTC)).date()
    table = Table("item", "variant", "price", "source", title=f"{model} on {when}")
    for item, (_, per, _) in DATASET_FIELDS.items():
        tokens = per == 1_000_000
        for batch, tier in (
            ((False, None), (True, None), (False, "flex"), (False, "priority"))
            if tokens
            else ((False, None),)
        ):
            quote = book.quote(model, item, when, batch=batch, service_tier=tier)
            if quote is None:
                continue
            variant = "batch" if batch else (tier or "standard")
            price = f"${quote.usd * 1_000_000:.4f} per million" if tokens else f"${quote.usd:.6f} each"
            table.add_row(item, variant, price, quote.source)
    for rule in book.rules_for(model):
        item = f"{rule.item} ({rule.variant})" if rule.variant else rule.item
        dates = f", from {rule.start}" if rule.start else ""
        table.add_row(item, "standard", "$" + format(rule.usd, "f") + " each", f"{rule.source}{dates}")
    if not table.row_count:
        raise click.ClickException(f"no price known for {model!r} on {when}: add one with --prices FILE")
    table_console().print(table)


@prices.command("check")
@api_options
@click.option(
    "--days", type=click.IntRange(1, 365), default=30, show_default=True, help="How far back to look."
)
def prices_check(base_url: str, api_key: str, days: int) -> None:
    """List the usage of the last DAYS days that has no price; exit 1 when there is any."""
    from ..client import UsageApi

    unpriced: dict[str, tuple[float, str]] = {}
    with api_errors(), UsageApi(api_key, base_url=base_url) as api:
        page = api.usage_costs(int(time.time()) - days * 86400, group_by=["line_item"], limit=180)
        for bucket in page:
            for result in bucket.results:
                if result.line_item and result.line_item.endswith("(unpriced)"):
                    quantity, unit = unpriced.get(result.line_item, (0.0, result.quantity_unit or ""))
                    unpriced[result.line_item] = (quantity + (result.quantity or 0), unit)
    if not unpriced:
        click.echo(f"Every line item of the last {days} days has a price.")
        return
    click.echo(f"{len(unpriced)} line items of the last {days} days have no price:")
    for name, (quantity, unit) in sorted(unpriced.items()):
        click.echo(f"  {name.removesuffix(' (unpriced)')}: {quantity:,.0f} {unit}")
    click.echo("Add their prices in a TOML file and serve with --prices FILE.")
    sys.exit(EXIT_REJECTED)
