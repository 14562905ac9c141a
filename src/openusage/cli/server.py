"""Commands that run and feed the server: serve, demo, keys."""

from __future__ import annotations

import gc
import socket
import sqlite3
import time
from dataclasses import replace
from itertools import islice
from pathlib import Path

import click

from ..admin.notify import smtp_problem
from ..keyring import SCOPES, Keyring
from ..server.connections import (
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    MIN_BODY_RATE,
    allow_many_connections,
    connection_limits,
)
from ..server.events import MAX_STRING_LENGTH
from ..settings import Settings, admin_key_problem
from ..store.duckdb import RECENT_KEYS
from .common import (
    DB_OPTION,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    PRICES_OPTION,
    STORE_OPTION,
    api_options,
    existing_keyring,
)
from .common import settings as _settings

#: the collector's thresholds in the server: a costs page makes ~150,000 short-lived
#: objects, and with Python's default (700, 10, 10) 18 costs requests of 25 ran a full
#: collection, ~13 ms each; 1M-event bench: costs p50 52-58 -> 34 ms, the minute walk
#: 159-181 -> 118 ms (docs/performance.md). Garbage in cycles waits a little longer.
GC_THRESHOLDS = (50_000, 20, 10)


@click.command()
@DB_OPTION
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@click.option(
    "--lookback-days",
    type=int,
    default=None,
    help="How far back start_time may reach (default 365, like OpenAI); 0 turns the check off.",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Requests a minute each key may make; beyond it the server answers 429 (default: no limit).",
)
@click.option(
    "--auth-failures-per-minute",
    type=click.IntRange(min=0),
    default=None,
    help="Failed authentications a minute one client address may make before the server "
    "answers 429 (default 30; 0 turns the limit off).",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    default=HEADER_TIMEOUT,
    show_default=True,
    help="Seconds a client has to send a request's line and headers; an idle connection is "
    "closed after this long (kept-alive ones after 5 s).",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1),
    default=BODY_TIMEOUT,
    show_default=True,
    help=f"Seconds a client has to send a request's body, plus one for each {MIN_BODY_RATE} bytes "
    "it has sent: a slow upload goes on, a trickle gets 408.",
)
@click.option(
    "--memory-limit",
    default=None,
    help="Memory the store may use, like 2GB: DuckDB spills to disk beyond it, chDB fails the query "
    "(default: DuckDB 512MB, chDB 90% of RAM). On DuckDB a limit far below the default can fail "
    "writes and, at worst, stop the database until a restart (docs/performance.md).",
)
@click.option(
    "--held-keys",
    type=click.IntRange(min=0, max=1_000_000_000),
    default=None,
    help="The embedded store: how many of the newest stored events' keys to hold in memory, 8 bytes "
    "each, so that a commit looks in the table only for older keys and possible retries "
    f"(default {RECENT_KEYS:,}; 0 looks up every key).",
)
@click.option(
    "--retention-days",
    type=click.IntRange(min=1),
    default=None,
    help="ClickHouse stores: delete events (and their rollups) this many days after their time, "
    "as a TTL set on the tables (default: keep everything, or the TTL the tables have).",
)
@STORE_OPTION
@click.option(
    "--upstream",
    "upstream_url",
    default=None,
    metavar="URL",
    help="Also be a gateway: forward OpenAI's model endpoints under /v1 to this base URL (like "
    "https://api.openai.com/v1) for proxy keys, and record their usage (default: "
    "$OPENUSAGE_UPSTREAM_URL; the upstream's key from $OPENUSAGE_UPSTREAM_API_KEY).",
)
@click.option(
    "--upstream-timeout",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds to wait for the upstream's answer or a stream's next chunk (default 600); "
    "beyond it the caller gets 504.",
)
@click.option(
    "--spend-check-seconds",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds between sums of the month's spend against spend limits and alerts (default 10).",
)
@click.option(
    "--smtp-url",
    default=None,
    metavar="URL",
    help="Send spend alerts by email through smtp[s]://[USER:PASSWORD@]HOST[:PORT] "
    "(default: $OPENUSAGE_SMTP_URL; none: alerts are logged).",
)
@click.option("--smtp-from", default=None, help="The sender of alert emails (default openusage@localhost).")
@click.option(
    "--alert-webhook",
    "alert_webhook_url",
    default=None,
    metavar="URL",
    help="Also POST each spend alert as JSON to URL, signed with $OPENUSAGE_ALERT_WEBHOOK_SECRET "
    "(header X-Openusage-Signature: sha256=HMAC).",
)
@PRICES_OPTION
def serve(
    db_path: Path | None,
    upstream_url: str | None,
    upstream_timeout: float | None,
    spend_check_seconds: float | None,
    smtp_url: str | None,
    smtp_from: str | None,
    alert_webhook_url: str | None,
    store_url: str | None,
    retention_days: int | None,
    host: str | None,
    port: int | None,
    lookback_days: int | None,
    rate_limit: int | None,
    auth_failures_per_minute: int | None,
    header_timeout: float,
    body_timeout: float,
    memory_limit: str | None,
    held_keys: int | None,
    prices_path: Path | None,
) -> None:
    """Serve the Usage API on the embedded database."""
    import uvicorn

    from ..server import create_app
    from ..server.logs import logging_config
    from ..store import StoreUnavailable, open_store
    from ..store.urls import default_memory_limit, store_scheme

    settings = _settings(
        db_path=db_path,
        host=host,
        port=port,
        rate_limit_per_minute=rate_limit,
        prices_path=prices_path,
        db_memory_limit=memory_limit,
        held_keys=held_keys,
        store_url=store_url,
        retention_days=retention_days,
        upstream_url=upstream_url,
        upstream_timeout=upstream_timeout,
        spend_check_seconds=spend_check_seconds,
        smtp_url=smtp_url,
        smtp_from=smtp_from,
        alert_webhook_url=alert_webhook_url,
    )
    if settings.smtp_url is not None and (problem := smtp_problem(settings.smtp_url)):
        raise click.ClickException(f"the server cannot start: {problem}")
    if settings.alert_webhook_url is not None and (
        problem := url_problem(settings.alert_webhook_url, "webhook")
    ):
        raise click.ClickException(f"the server cannot start: {problem}")
    if settings.upstream_url is not None and (problem := url_problem(settings.upstream_url, "upstream")):
        raise click.ClickException(f"the server cannot start: {problem}")
    if lookback_days is not None:
        settings = replace(settings, lookback_days=lookback_days or None)
    if auth_failures_per_minute is not None:
        settings = replace(settings, auth_failures_per_minute=auth_failures_per_minute or None)
    if settings.admin_key is not None and (problem := admin_key_problem(settings.admin_key)):
        raise click.ClickException(f"the server cannot start: {problem}")
    allow_many_connections()
    # Bind first: a busy port is found out before anything is announced or made.
    try:
        listener = socket.create_server((settings.host, settings.port))
    except OSError as exc:
        raise click.ClickException(
            f"the server cannot listen on {settings.host}:{settings.port} ({exc.strerror}): "
            "is another server running there? Choose another port with --port."
        ) from None
    try:
        store = open_store(
            settings.store,
            memory_limit=settings.db_memory_limit,
            retention_days=settings.retention_days,
            held_keys=settings.held_keys,
        )
        keyring = Keyring(settings.resolved_keyring_path)
    except (StoreUnavailable, sqlite3.Error) as exc:
        listener.close()
        raise click.ClickException(f"the server cannot start: {exc}") from None
    for path in exposed_files(settings):
        click.echo(f"Warning: {path} can be read by other users of this machine; chmod 600 it.", err=True)
    if settings.admin_key is None and keyring.active_count() == 0:
        key, secret = keyring.create("admin", "first admin key")
        click.echo(f"No API key existed, so an admin key was made ({key.id}). It is shown this once:")
        click.echo(f"\n    {secret}\n")
    base = f"http://{settings.host}:{settings.port}/v1"
    memory = settings.db_memory_limit or default_memory_limit(settings.store)
    held = RECENT_KEYS if settings.held_keys is None else settings.held_keys
    keys = f", {held:,} keys held" if store_scheme(settings.store) == "duckdb" else ""
    click.echo(f"Usage API on {base}  (store {settings.store}, memory limit {memory}{keys})")
    click.echo(f"Dashboard on http://{settings.host}:{settings.port}/")
    if settings.upstream_url:
        click.echo(
            f"Gateway: model calls to {base} with a proxy key go to {settings.upstream_url}; "
            "make a key with: openusage keys create --scope proxy --project PROJECT_ID"
        )
    week_ago = int(time.time()) - 7 * 86400
    click.echo(
        f'Try: curl -H "Authorization: Bearer $OPENAI_ADMIN_KEY" '
        f'"{base}/organization/usage/completions?start_time={week_ago}&group_by=model"'
    )
    # On SIGTERM or Ctrl-C uvicorn finishes the requests in flight, the app's shutdown closes
    # the store, and the process ends with the signal.
    config = uvicorn.Config(
        create_app(settings, keyring=keyring, store=store, close_store=True),
        log_config=logging_config(),
        access_log=False,
        **connection_limits(header_timeout, body_timeout),
    )
    # What exists now (modules, the price data, the app) lives as long as the process: kept
    # out of every later collection, a full one no longer walks it (50 ms of a costs page).
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    uvicorn.Server(config).run(sockets=[listener])


def url_problem(url: str, what: str) -> str | None:
    """Why the URL of the upstream (or the webhook) cannot be used, or None."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"the {what} URL {url!r} is not a URL ({exc})"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"the {what} URL {url!r} must be http(s)://HOST[:PORT]/PATH"
    return None


def exposed_files(settings: Settings) -> list[Path]:
    """The server's files that other local users may read: keys, secret and usage."""
    db = settings.db_path
    files = [db, db.with_name(db.name + ".rollups")]
    candidates = [*files, *(f.with_name(f.name + ".wal") for f in files), settings.resolved_keyring_path]
    return [p for p in candidates if p.exists() and p.stat().st_mode & 0o077]


@click.command()
@DB_OPTION
@click.option(
    "--days", type=click.IntRange(1, 366), default=30, show_default=True, help="Days of history to make."
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the generator.")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Multiply the traffic by this.")
def demo(db_path: Path | None, days: int, seed: int, scale: float) -> None:
    """Fill the database with realistic synthetic usage of every kind.

    Run it while no server holds the database open.
    """
    from ..demo import demo_events
    from ..server.events import EventRules, parse_events
    from ..store import DuckDBStore, StoreFull, StoreUnavailable

    settings = _settings(db_path=db_path)
    now = int(time.time())
    events = demo_events(now - days * 86400, now, seed=seed, scale=scale)
    try:
        store = DuckDBStore(settings.db_path)
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    inserted = duplicates = 0
    try:
        while chunk := list(islice(events, 5000)):
            result = store.append(parse_events(chunk, EventRules(now=now)))
            inserted += result.inserted
            duplicates += result.duplicates
    except StoreFull as full:
        raise click.ClickException(f"{inserted} events stored, then: {full}") from None
    finally:
        store.close()
    click.echo(f"{inserted} events stored in {settings.db_path} ({duplicates} were there already).")


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (works while the server runs)."""


@keys.command("create")
@DB_OPTION
@click.option(
    "--scope",
    type=click.Choice(SCOPES),
    default="admin",
    show_default=True,
    help="admin reads and ingests; ingest only ingests; proxy makes model calls through the "
    "gateway, recorded under its --project (and --user).",
)
@click.option("--name", default="", help="A name to recognise the key by.")
@click.option("--project", "project_id", default=None, help="A proxy key's project (required for proxy).")
@click.option("--user", "user_id", default=None, help="A proxy key's user, recorded with its calls.")
def keys_create(
    db_path: Path | None, scope: str, name: str, project_id: str | None, user_id: str | None
) -> None:
    """Make a key and print its secret, once."""
    if (scope == "proxy") != (project_id is not None):
        raise click.UsageError("--project is required for a proxy key, and only a proxy key takes one")
    if user_id is not None and scope != "proxy":
        raise click.UsageError("only a proxy key takes --user")
    for option, value in (("--project", project_id), ("--user", user_id)):
        if value is not None and (problem := id_problem(value)):
            raise click.BadParameter(problem, param_hint=option)
    keyring = Keyring(existing_keyring(db_path))
    key, secret = keyring.create(scope, name, project_id=project_id, user_id=user_id)  # type: ignore[arg-type]
    click.echo(secret)
    click.echo(f"({key.id}, scope {key.scope}: keep the secret now, it is not shown again)", err=True)


def id_problem(value: str) -> str | None:
    """Why a project or user id cannot be recorded with usage events, or None."""
    if not 1 <= len(value) <= MAX_STRING_LENGTH or "\x00" in value:
        return f"must be 1 to {MAX_STRING_LENGTH} characters long, without NUL characters"
    return None


@keys.command("list")
@DB_OPTION
def keys_list(db_path: Path | None) -> None:
    """List keys (never their secrets)."""
    path = existing_keyring(db_path)
    if not path.exists():
        click.echo("no keys yet", err=True)
        return
    for key in Keyring(path).list():
        state = "revoked" if key.revoked_at else "active"
        owner = key.project_id + (f"/{key.user_id}" if key.user_id else "") if key.project_id else "-"
        click.echo(f"{key.id}\t{key.scope}\t{state}\t{key.redacted}\t{owner}\t{key.name}")


@keys.command("revoke")
@DB_OPTION
@click.argument("key_id")
def keys_revoke(db_path: Path | None, key_id: str) -> None:
    """Revoke a key by its id; it stops working at once."""
    keyring = Keyring(existing_keyring(db_path))
    if not keyring.revoke(key_id):
        raise click.ClickException(f"no active key with id {key_id}")
    click.echo(f"revoked {key_id}")


@click.command()
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@api_options
def backup(target: Path, base_url: str, api_key: str) -> None:
    """Save a consistent copy of a running server's events to TARGET (a DuckDB file).

    The server keeps serving and ingesting meanwhile. To restore, serve the copy:
    openusage serve --db TARGET. Keys live apart, in the .keys.sqlite file beside the
    database; copy it with: sqlite3 NAME.keys.sqlite ".backup KEYS-COPY".
    """
    import httpx

    if target.exists():
        raise click.ClickException(f"{target} exists: give a new file name")
    partial = target.with_name(target.name + ".part")
    url = base_url.rstrip("/") + "/admin/backup"
    try:
        with httpx.stream(
            "POST", url, headers={"Authorization": f"Bearer {api_key}"}, timeout=600
        ) as response:
            if response.status_code != 200:
                response.read()
                message = response.json().get("error", {}).get("message", response.text)
                click.echo(f"Error: the server answered {response.status_code}: {message}", err=True)
                raise SystemExit(EXIT_REFUSED if response.status_code < 500 else EXIT_UNREACHABLE)
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            events = response.headers.get("x-openusage-events", "?")
    except httpx.TransportError as exc:
        partial.unlink(missing_ok=True)
        click.echo(f"Error: could not reach {url}: {exc}", err=True)
        raise SystemExit(EXIT_UNREACHABLE) from None
    partial.rename(target)
    click.echo(f"{events} events saved to {target}")
