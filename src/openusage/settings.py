"""Server settings: one explicit object, built once; the environment is only a fallback."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ENV_ADMIN_KEY = "OPENUSAGE_ADMIN_KEY"
ENV_DB = "OPENUSAGE_DB"
ENV_STORE = "OPENUSAGE_STORE"
ENV_UPSTREAM_URL = "OPENUSAGE_UPSTREAM_URL"
ENV_UPSTREAM_API_KEY = "OPENUSAGE_UPSTREAM_API_KEY"
ENV_ALERT_WEBHOOK_SECRET = "OPENUSAGE_ALERT_WEBHOOK_SECRET"
ENV_SMTP_URL = "OPENUSAGE_SMTP_URL"


MIN_ADMIN_KEY_LENGTH = 32


def admin_key_problem(key: str) -> str | None:
    """Why a configured admin key is unsafe or unusable, or None when it is fine."""
    how = "make one with: python3 -c 'import secrets; print(\"sk-admin-\" + secrets.token_urlsafe(32))'"
    if len(key) < MIN_ADMIN_KEY_LENGTH:
        return (
            f"${ENV_ADMIN_KEY} is {len(key)} characters long; it needs {MIN_ADMIN_KEY_LENGTH} or more: {how}"
        )
    if not all("!" <= c <= "~" for c in key):
        # A space or a non-ASCII character cannot be sent reliably in an HTTP header.
        return f"${ENV_ADMIN_KEY} may hold only printable ASCII characters without spaces: {how}"
    return None


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know, with the defaults a new user would want."""

    #: the embedded event database (DuckDB), one file
    db_path: Path = Path("openusage.duckdb")
    #: keys and the cursor secret live apart, in SQLite, so that `openusage keys` can
    #: write while the server holds the event database open
    keyring_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: accepted as an admin key in addition to the stored keys
    admin_key: str | None = field(default=None, repr=False)
    #: how far back `start_time` may reach; None turns the check off (OpenAI: one year)
    lookback_days: int | None = 365
    #: a page stops early, before this many result rows, at a bucket boundary
    max_page_rows: int = 50_000
    max_body_bytes: int = 16 * 1024 * 1024
    max_batch_events: int = 10_000
    #: values one array parameter (group_by, a filter) may carry
    max_array_values: int = 1_000
    #: requests a minute each key may make (429 with Retry-After beyond); None: no limit
    rate_limit_per_minute: int | None = None
    #: failed authentications a minute one client address may make before 429; None: no limit
    auth_failures_per_minute: int | None = 30
    #: a TOML file of prices that take precedence over the bundled price book
    prices_path: Path | None = None
    #: the memory the store may use (None: the store's default, see ``default_memory_limit``)
    db_memory_limit: str | None = None
    #: the embedded store: how many stored events' keys to hold in memory (None: its default)
    held_keys: int | None = None
    #: a store URL (duckdb:///file, chdb:///dir, clickhouse://...) used instead of db_path
    store_url: str | None = None
    #: ClickHouse stores: delete events and rollup rows this many days after their time
    retention_days: int | None = None
    #: events may lie at most this far in the future (clock skew between gateways)
    max_future_seconds: int = 86_400
    #: the gateway: OpenAI's model endpoints forwarded to this base URL (None: no gateway)
    upstream_url: str | None = None
    #: the upstream's own key, sent instead of the caller's proxy key
    upstream_api_key: str | None = field(default=None, repr=False)
    #: seconds to wait for the upstream (for its answer, or for a stream's next chunk)
    upstream_timeout: float = 600.0
    #: where the gateway keeps usage until the store has it (default: beside the database)
    spool_path: Path | None = None
    #: seconds between sums of the month's spend, against spend limits and alerts
    spend_check_seconds: float = 10.0
    #: spend alerts by email: smtp[s]://[USER:PASSWORD@]HOST[:PORT], and the sender
    smtp_url: str | None = field(default=None, repr=False)
    smtp_from: str = "openusage@localhost"
    #: spend alerts as a signed JSON POST to this URL
    alert_webhook_url: str | None = None
    alert_webhook_secret: str | None = field(default=None, repr=False)

    @property
    def store(self) -> str:
        """The store's URL, or the DuckDB file's path."""
        return self.store_url or str(self.db_path)

    @property
    def resolved_keyring_path(self) -> Path:
        if self.keyring_path is not None:
            return self.keyring_path
        return self.db_path.with_name(self.db_path.stem + ".keys.sqlite")

    @property
    def resolved_spool_path(self) -> Path:
        if self.spool_path is not None:
            return self.spool_path
        return self.db_path.with_name(self.db_path.stem + ".spool.ndjson")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from explicit values, falling back to the environment once, here."""
        env = os.environ if environ is None else environ
        base = cls()
        if env.get(ENV_DB):
            base = replace(base, db_path=Path(env[ENV_DB]))
        if env.get(ENV_STORE):
            base = replace(base, store_url=env[ENV_STORE])
        if env.get(ENV_ADMIN_KEY):
            base = replace(base, admin_key=env[ENV_ADMIN_KEY])
        if env.get(ENV_UPSTREAM_URL):
            base = replace(base, upstream_url=env[ENV_UPSTREAM_URL])
        if env.get(ENV_UPSTREAM_API_KEY):
            base = replace(base, upstream_api_key=env[ENV_UPSTREAM_API_KEY])
        if env.get(ENV_ALERT_WEBHOOK_SECRET):
            base = replace(base, alert_webhook_secret=env[ENV_ALERT_WEBHOOK_SECRET])
        if env.get(ENV_SMTP_URL):
            base = replace(base, smtp_url=env[ENV_SMTP_URL])
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **given)
