"""``openusage usage KIND`` and ``openusage costs``: query any Usage API, print or chart it."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ..catalogue import COSTS, USAGE_KINDS, WIDTH_SECONDS, Endpoint
from ..client.pages import result_rows, rows_to_csv
from .common import TIME, api_errors, api_options, table_console

FORMATS = ("table", "csv", "json", "ndjson")
TIME_FORMATS = {"1d": "%Y-%m-%d", "1h": "%Y-%m-%d %H:00", "1m": "%Y-%m-%d %H:%M"}


def human(value: float) -> str:
    """1234567 -> 1.23M: numbers a person reads at a glance."""
    magnitude = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"


def human_bytes(value: float) -> str:
    """A size in binary units: 188 GiB, not 188B (which reads as billions)."""
    for power, suffix in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if abs(value) >= 1024**power:
            return f"{value / 1024**power:.3g} {suffix}"
    return f"{int(value)} bytes"


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def fetch_rows(
    endpoint: Endpoint, api_key: str, base_url: str, start: int, end: int, arguments: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every result of every page, with a progress bar on a terminal."""
    from ..client import UsageApi

    width = arguments.get("bucket_width") or endpoint.default_width
    seconds = WIDTH_SECONDS[width]
    pages = max(1, math.ceil((end - start) / seconds / (arguments.get("limit") or 1)))
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("pages"), BarColumn(), MofNCompleteColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    with api_errors(), progress, UsageApi(api_key, base_url=base_url) as api:
        task = progress.add_task("pages", total=pages)
        for page in getattr(api, endpoint.method)(start, end, **arguments).iter_pages():
            rows += result_rows(page.data)
            progress.advance(task)
    return rows


def metric_columns(endpoint: Endpoint, chosen: Sequence[str]) -> list[str]:
    if endpoint.is_costs:
        return ["amount_value"]
    if chosen:
        unknown = [m for m in chosen if m not in endpoint.metric_names]
        if unknown:
            raise click.BadParameter(
                f"{', '.join(unknown)}: {endpoint.name} has {', '.join(endpoint.metric_names)}",
                param_hint="--metric",
            )
        return list(chosen)
    return list(endpoint.metric_names[:4])


def print_table(
    endpoint: Endpoint, rows: list[dict[str, Any]], group_by: list[str], metrics: list[str], width: str
) -> None:
    table = Table(title=f"{endpoint.name} by {', '.join(group_by) or 'bucket'}", show_footer=True)
    # A gauge's sum over buckets means nothing: its footer is the last bucket's size.
    last_start = max((r["start_time"] for r in rows), default=None)
    table.add_column("start (UTC)", footer="latest" if endpoint.has_gauge else "total")
    for name in group_by:
        table.add_column(name)
    extra = ["quantity", "quantity_unit"] if endpoint.is_costs and "line_item" in group_by else []
    shown = _money if endpoint.is_costs else human_bytes if endpoint.has_gauge else human
    for name in metrics:
        counted = [r for r in rows if r["start_time"] == last_start] if endpoint.has_gauge else rows
        total = sum(r.get(name) or 0 for r in counted)
        label = "amount (USD)" if name == "amount_value" else name
        table.add_column(label, justify="right", footer=shown(total))
    for name in extra:
        table.add_column(name, justify="right" if name == "quantity" else "left")
    for row in rows:
        cells = [datetime.fromtimestamp(row["start_time"], UTC).strftime(TIME_FORMATS[width])]
        cells += ["—" if row.get(g) is None else str(row[g]) for g in group_by]
        cells += [shown(row.get(m) or 0) for m in metrics]
        cells += [
            human(row["quantity"]) if n == "quantity" and row.get(n) is not None else str(row.get(n) or "")
            for n in extra
        ]
        table.add_row(*cells)
    table_console().print(table)


def _money(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"${value:.6f}"


def output(
    endpoint: Endpoint,
    rows: list[dict[str, Any]],
    fmt: str,
    group_by: list[str],
    metrics: list[str],
    width: str,
) -> None:
    if fmt == "csv":
        rows_to_csv(rows, sys.stdout)
    elif fmt == "json":
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif fmt == "ndjson":
        for row in rows:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
    else:
        print_table(endpoint, rows, group_by, metrics, width)


def query_options(endpoint: Endpoint) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options of a query command, from the endpoint's catalogue entry."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        group_fields = ", ".join(endpoint.group_fields)
        options = [
            click.option(
                "--since", type=TIME, default=None, help="Start as a time ago: 7d, 12h, 30m (default 7d)."
            ),
            click.option(
                "--start", type=TIME, default=None, help="Start: 2026-11-01, 2026-11-01T12:00 or unix s."
            ),
            click.option("--end", type=TIME, default=None, help="End, exclusive (default now)."),
            click.option(
                "--bucket",
                type=click.Choice(endpoint.widths),
                default=endpoint.default_width,
                show_default=True,
            ),
            click.option(
                "--group-by",
                "group_by",
                multiple=True,
                help=f"Group by (repeat or comma-join): {group_fields}.",
            ),
            click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True),
            click.option(
                "--chart",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Also draw a chart to this PNG file.",
            ),
            click.option(
                "--limit", type=click.IntRange(1, None), default=None, help="Buckets per page asked for."
            ),
        ]
        if not endpoint.is_costs:
            options.append(
                click.option(
                    "--metric",
                    "metrics",
                    multiple=True,
                    help="Metrics the table and chart show (default: the first four); CSV, JSON and "
                    "NDJSON always hold every field.",
                )
            )
        for param, dimension in endpoint.filters.items():
            if dimension.type == "boolean":
                options.append(
                    click.option(
                        f"--{param}/--no-{param}", default=None, help=f"Only {dimension.name} true or false."
                    )
                )
            else:
                if dimension.values:
                    help_text = f"Only these {dimension.name} values ({', '.join(dimension.values)})."
                else:
                    help_text = f"Only this {dimension.name}, exactly; repeat for several."
                options.append(
                    click.option(f"--{param.replace('_', '-')}", param, multiple=True, help=help_text)
                )
        for option in reversed(options):
            function = option(function)
        return api_options(function)

    return decorate


def run_query(endpoint: Endpoint, base_url: str, api_key: str, params: dict[str, Any]) -> None:
    now = int(time.time())
    end = params.pop("end") or now
    start = params.pop("start") or params.pop("since") or now - 7 * 86400
    params.pop("since", None)
    if start >= end:
        raise click.BadParameter("the start must be before the end", param_hint="--start/--since")
    fmt, chart = params.pop("fmt"), params.pop("chart")
    width = params.pop("bucket")
    group_by = _split(params.pop("group_by"))
    metrics = metric_columns(endpoint, _split(params.pop("metrics", ())))
    arguments: dict[str, Any] = {
        "bucket_width": width,
        "group_by": group_by or None,
        "limit": params.pop("limit"),
    }
    for param, dimension in endpoint.filters.items():
        value = params.pop(param)
        if dimension.type == "boolean":
            arguments[param] = value
        elif value:
            # Ids and line items may hold commas ("gpt-5, input"): each option is one value.
            arguments[param] = _split(value) if dimension.values else list(value)
    if arguments["limit"] is None:
        arguments["limit"] = endpoint.limits[width].maximum
    rows = fetch_rows(endpoint, api_key, base_url, start, end, arguments)
    output(endpoint, rows, fmt, group_by, metrics, width)
    if chart is not None:
        from .charts import draw_chart

        draw_chart(endpoint, rows, group_by, metrics[0], (start, end, width), chart)
        click.echo(f"chart written to {chart}", err=True)


def usage_command(endpoint: Endpoint) -> click.Command:
    @click.command(
        name=endpoint.name,
        help=f"{endpoint.summary} ({endpoint.path})",
        short_help=f"{endpoint.name.replace('_', ' ')} usage",
    )
    @query_options(endpoint)
    def command(base_url: str, api_key: str, **params: Any) -> None:
        run_query(endpoint, base_url, api_key, params)

    return command


@click.group()
def usage() -> None:
    """Query usage of one kind, print it as a table, CSV, JSON or NDJSON, or chart it."""


for _endpoint in USAGE_KINDS.values():
    usage.add_command(usage_command(_endpoint))


@click.command(help=f"{COSTS.summary} Print them, export them, or chart them by day.")
@query_options(COSTS)
def costs(base_url: str, api_key: str, **params: Any) -> None:
    run_query(COSTS, base_url, api_key, params)
