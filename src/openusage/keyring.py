"""API keys and the server's signing secret, kept in a small SQLite file.

Keys are stored only as SHA-256 hashes (they are long random tokens, so a fast hash is
enough) and compared in constant time. SQLite lets `openusage keys ...` write from another
process while the server runs: the server asks the file on every check whether anything
changed since (``version``), so a new key works, and a revoked key stops working, at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Scope = Literal["admin", "ingest", "proxy"]
SCOPES: tuple[Scope, ...] = ("admin", "ingest", "proxy")
#: what each scope may do
READ = "api.usage.read"
WRITE = "api.usage.write"
#: model calls through the gateway, recorded under the key's project
MODEL = "api.model.request"
#: projects, spend limits and alerts (the admin API)
MANAGE = "api.organization.manage"
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({READ, WRITE, MANAGE}),
    "ingest": frozenset({WRITE}),
    "proxy": frozenset({MODEL}),
}
_PREFIX: dict[str, str] = {"admin": "sk-admin-", "ingest": "sk-ingest-", "proxy": "sk-proj-"}
#: seconds a key lookup waits for a locked key file
FIND_TIMEOUT = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    redacted TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
#: columns added since the first version of the file, added to an older file on open
_ADDED_COLUMNS = {"project_id": "TEXT", "user_id": "TEXT"}
_KEY_COLUMNS = "id, name, scope, redacted, created_at, revoked_at, project_id, user_id"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scope: Scope
    redacted: str
    created_at: int
    revoked_at: int | None
    #: a proxy key's usage is recorded under its project (and user, when it has one)
    project_id: str | None = None
    user_id: str | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return PERMISSIONS[self.scope]


def secret_hash(secret: str) -> str:
    """The form a key's secret is stored and looked up by."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def redact(secret: str) -> str:
    """How a key is shown after it is made: enough to recognise, not enough to use."""
    return f"{secret[:12]}…{secret[-4:]}"


class Keyring:
    """The keys of one server, in the SQLite file at ``path``."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._readers = threading.local()
        # The file holds the cursor secret and key hashes: its owner's alone.
        Path(path).touch(mode=0o600, exist_ok=True)
        with self._connect() as db:
            # WAL lets `openusage keys` write while the server reads; it stays set in the file.
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            present = {row[1] for row in db.execute("PRAGMA table_info(api_keys)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in present:
                    db.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {kind}")

    @contextmanager
    def _connect(self, timeout: float = 10) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._path, timeout=timeout, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    def create(
        self, scope: Scope, name: str = "", *, project_id: str | None = None, user_id: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its secret; the secret is returned here once and never stored.

        A proxy key needs the project its calls are recorded under; other keys take none.
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        if (scope == "proxy") != (project_id is not None):
            raise ValueError("a proxy key needs a project, and only a proxy key has one")
        if user_id is not None and scope != "proxy":
            raise ValueError("only a proxy key has a user")
        secret = _PREFIX[scope] + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name or f"{scope} key",
            scope=scope,
            redacted=redact(secret),
            created_at=int(time.time()),
            revoked_at=None,
            project_id=project_id,
            user_id=user_id,
        )
        with self._connect() as db:
            db.execute(
                "INSERT INTO api_keys (id, name, scope, hash, redacted, created_at, project_id, user_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.id,
                    key.name,
                    key.scope,
                    secret_hash(secret),
                    key.redacted,
                    key.created_at,
                    key.project_id,
                    key.user_id,
                ),
            )
        return key, secret

    def list(self) -> list[ApiKey]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id").fetchall()
        return [ApiKey(*row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when there is no such active key."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (int(time.time()), key_id),
            )
        return cursor.rowcount == 1

    def active_count(self) -> int:
        with self._connect() as db:
            (count,) = db.execute("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()
        return int(count)

    def find(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is, or None."""
        digest = secret_hash(secret)
        # Every request asks: each thread keeps its connection open rather than pay for
        # opening one each time, and still reads the file, so revoking works at once.
        db = getattr(self._readers, "db", None)
        if db is None:
            # A request waits for this: a locked file fails fast, and the server says 503.
            db = self._readers.db = sqlite3.connect(self._path, timeout=FIND_TIMEOUT, isolation_level=None)
        try:
            row = db.execute(
                f"SELECT {_KEY_COLUMNS}, hash FROM api_keys WHERE hash = ?", (digest,)
            ).fetchone()
        except sqlite3.Error:
            self._readers.db = None  # opened afresh next time
            db.close()
            raise
        if row is None or not hmac.compare_digest(row[-1], digest) or row[5] is not None:
            return None
        return ApiKey(*row[:-1])

    def version(self) -> int:
        """SQLite's data version of the file, as this thread sees it: a number that changes
        whenever another connection commits to it (a key made or revoked, by this server or
        by `openusage keys`). It never waits: a locked file raises ``sqlite3.Error``."""
        db = getattr(self._readers, "version_db", None)
        if db is None:
            db = self._readers.version_db = sqlite3.connect(self._path, timeout=0, isolation_level=None)
        try:
            (value,) = db.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            self._readers.version_db = None  # opened afresh next time
            db.close()
            raise
        return int(value)

    def signing_secret(self) -> bytes:
        """The server's secret for cursors: made once, kept so cursors survive a restart."""
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('cursor_secret', ?)",
                (secrets.token_bytes(32),),
            )
            (value,) = db.execute("SELECT value FROM meta WHERE name = 'cursor_secret'").fetchone()
        return bytes(value)
