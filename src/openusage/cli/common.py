"""What the commands share: options, settings, time expressions, errors and exit codes.

Exit codes scripts can rely on: 0 done; 1 done, but something was rejected or is unpriced;
2 the command line is wrong; 3 the server refused the request (4xx); 4 the server could not
be reached or failed (5xx).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from ..settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

EXIT_REJECTED = 1
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4
DEFAULT_URL = "http://127.0.0.1:8000/v1"

DB_OPTION = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The event database file (default: openusage.duckdb, or $OPENUSAGE_DB).",
)

STORE_OPTION = click.option(
    "--store",
    "store_url",
    default=None,
    metavar="URL",
    help="The store instead of --db: duckdb:///FILE, chdb:///DIR (ClickHouse in this process) or "
    "clickhouse[s]://USER:PASSWORD@HOST:PORT/DATABASE (default: $OPENUSAGE_STORE).",
)

PRICES_OPTION = click.option(
    "--prices",
    "prices_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML file of prices that take precedence over the bundled price book.",
)


#: where an admin key is looked for, in order: the official client's name first
ADMIN_KEY_ENV = ("OPENAI_ADMIN_KEY", "OPENUSAGE_ADMIN_KEY")
#: ingestion also takes a key of the ingest scope
INGEST_KEY_ENV = ("OPENUSAGE_INGEST_KEY", *ADMIN_KEY_ENV)
#: where the server's URL is looked for, in order
URL_ENV = ("OPENUSAGE_URL", "OPENAI_BASE_URL")


def server_options(key_env: tuple[str, ...] = ADMIN_KEY_ENV) -> Callable[[F], F]:
    """``--base-url`` and ``--api-key``, with the environment as fallback, said in --help."""

    def decorate(function: F) -> F:
        names = ", then ".join(f"${name}" for name in key_env)
        function = click.option(
            "--api-key",
            envvar=list(key_env),
            required=True,
            help=f"The key to send (default: {names}).",
        )(function)
        function = click.option(
            "--base-url",
            envvar=list(URL_ENV),
            default=DEFAULT_URL,
            show_default=True,
            help="The Usage API to talk to: this project's server or https://api.openai.com/v1 "
            f"(default: ${URL_ENV[0]}, then ${URL_ENV[1]}).",
        )(function)
        return function

    return decorate


def api_options(function: F) -> F:
    """``--base-url`` and an admin ``--api-key``."""
    return server_options()(function)


def settings(**overrides: Any) -> Settings:
    return Settings.from_env(**overrides)


def existing_database(db_path: Path | None) -> Settings:
    """The settings of a command that works on the server's database, which must exist:
    opening a mistyped path would make an empty database and act on that instead."""
    chosen = settings(db_path=db_path)
    if not chosen.db_path.exists():
        raise click.ClickException(
            f"no database at {chosen.db_path}: give the one the server uses with --db "
            f"(or $OPENUSAGE_DB), or start the server once to make it"
        )
    return chosen


def existing_keyring(db_path: Path | None) -> Path:
    """The key file of a server, which keeps it beside its database (on any store)."""
    chosen = settings(db_path=db_path)
    if not chosen.db_path.exists() and not chosen.resolved_keyring_path.exists():
        raise click.ClickException(
            f"no database at {chosen.db_path}, nor keys beside it: give the --db the server uses "
            f"(or $OPENUSAGE_DB), or start the server once to make it"
        )
    return chosen.resolved_keyring_path


_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: float | None = None) -> int:
    """Unix seconds from what a person types: ``now``, ``7d`` (ago), ``2026-11-01``,
    ``2026-11-01T12:00`` (UTC unless a zone is given), or unix seconds."""
    now = time.time() if now is None else now
    value = text.strip().lower()
    if value == "now":
        return int(now)
    if value.isdigit():
        return int(value)
    relative = _RELATIVE.match(value)
    if relative:
        return int(now) - int(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time: use now, 7d, 12h, 2026-11-01, 2026-11-01T12:00 or unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


class TimeParam(click.ParamType[int]):
    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        return parse_time(str(value))


TIME = TimeParam()


@contextmanager
def api_errors() -> Iterator[None]:
    """Errors of the API as one clear line each, with an exit code scripts can rely on."""
    from ..client import APIConnectionError, APIStatusError

    try:
        yield
    except APIStatusError as error:
        param = f" (parameter: {error.param})" if error.param else ""
        click.echo(f"Error: the server answered {error.status_code}: {_message(error)}{param}", err=True)
        raise SystemExit(EXIT_REFUSED if error.status_code < 500 else EXIT_UNREACHABLE) from None
    except APIConnectionError as error:
        click.echo(f"Error: {error.message}", err=True)
        raise SystemExit(EXIT_UNREACHABLE) from None


def _message(error: Any) -> str:
    message = str(error.message)
    prefix = f"{error.status_code} "
    return message[len(prefix) :] if message.startswith(prefix) else message


def table_console() -> Console:
    """A console for tables: as wide as the terminal, or unlimited when piped, so that
    nothing is cut to 80 columns in a file or another program."""
    console = Console()
    return console if console.is_terminal else Console(width=100_000)
