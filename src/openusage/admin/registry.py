"""Projects, spend limits and spend alerts, kept in the server's SQLite file beside the keys.

The same file as the keyring (``openusage.keys.sqlite``): small, written rarely, readable
by the CLI while the server runs. A limit or an alert belongs to the organization (its
``project_id`` is empty) or to one project. Each alert fires at most once a month; the
firings are kept here, so a restart does not send one again.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    name TEXT,
    created_at INTEGER NOT NULL,
    archived_at INTEGER
);
CREATE TABLE IF NOT EXISTS spend_limits (
    project_id TEXT PRIMARY KEY,
    threshold_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spend_alerts (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    threshold_cents INTEGER NOT NULL,
    recipients TEXT NOT NULL,
    subject_prefix TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_firings (
    alert_id TEXT NOT NULL,
    month TEXT NOT NULL,
    fired_at INTEGER NOT NULL,
    PRIMARY KEY (alert_id, month)
);
"""
ORGANIZATION = ""  # the scope of the organization's own limit and alerts
_ID_LETTERS = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_LETTERS) for _ in range(24))


@dataclass(frozen=True)
class Project:
    id: str
    name: str | None
    created_at: int
    archived_at: int | None


@dataclass(frozen=True)
class SpendAlert:
    id: str
    project_id: str
    threshold_cents: int
    recipients: tuple[str, ...]
    subject_prefix: str | None
    created_at: int


class Registry:
    """The organization's projects, limits and alerts, in the SQLite file at ``path``."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        Path(path).touch(mode=0o600, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    # Projects

    def create_project(self, name: str) -> Project:
        project = Project(new_id("proj_"), name, int(time.time()), None)
        with self._connect() as db:
            db.execute(
                "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)",
                (project.id, name, project.created_at),
            )
        return project

    def saw_projects(self, ids: Iterable[str], when: int) -> None:
        """Projects met in usage: listed from then on, without a name until given one."""
        with self._connect() as db:
            db.executemany(
                "INSERT OR IGNORE INTO projects (id, created_at) VALUES (?, ?)", [(i, when) for i in ids]
            )

    def project(self, project_id: str) -> Project | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT id, name, created_at, archived_at FROM projects WHERE id = ?", (project_id,)
            ).fetchone()
        return Project(*row) if row else None

    def projects(self, *, include_archived: bool = False) -> list[Project]:
        """Every project, oldest first, as pages list them."""
        where = "" if include_archived else "WHERE archived_at IS NULL"
        with self._connect() as db:
            rows = db.execute(
                f"SELECT id, name, created_at, archived_at FROM projects {where} ORDER BY created_at, rowid"
            ).fetchall()
        return [Project(*row) for row in rows]

    def rename_project(self, project_id: str, name: str) -> Project | None:
        with self._connect() as db:
            db.execute("UPDATE projects SET name = ? WHERE id = ?", (name, project_id))
        return self.project(project_id)

    def archive_project(self, project_id: str) -> Project | None:
        with self._connect() as db:
            db.execute(
                "UPDATE projects SET archived_at = ? WHERE id = ? AND archived_at IS NULL",
                (int(time.time()), project_id),
            )
        return self.project(project_id)

    # Spend limits

    def limits(self) -> dict[str, int]:
        """Every hard limit in cents, by project id (the organization's under ``ORGANIZATION``)."""
        with self._connect() as db:
            return dict(db.execute("SELECT project_id, threshold_cents FROM spend_limits").fetchall())

    def set_limit(self, project_id: str, cents: int) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO spend_limits (project_id, threshold_cents) VALUES (?, ?) "
                "ON CONFLICT (project_id) DO UPDATE SET threshold_cents = excluded.threshold_cents",
                (project_id, cents),
            )

    def clear_limit(self, project_id: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM spend_limits WHERE project_id = ?", (project_id,)).rowcount == 1

    # Spend alerts

    def alerts(self, project_id: str | None = None) -> list[SpendAlert]:
        """The alerts of one scope (every alert if None), oldest first."""
        where, args = ("WHERE project_id = ?", (project_id,)) if project_id is not None else ("", ())
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, project_id, threshold_cents, recipients, subject_prefix, created_at "
                f"FROM spend_alerts {where} ORDER BY created_at, rowid",
                args,
            ).fetchall()
        return [SpendAlert(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows]

    def alert(self, alert_id: str) -> SpendAlert | None:
        return next((a for a in self.alerts() if a.id == alert_id), None)

    def save_alert(self, alert: SpendAlert) -> None:
        """Create the alert, or replace the one with its id."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO spend_alerts "
                "(id, project_id, threshold_cents, recipients, subject_prefix, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    alert.id,
                    alert.project_id,
                    alert.threshold_cents,
                    json.dumps(list(alert.recipients)),
                    alert.subject_prefix,
                    alert.created_at,
                ),
            )

    def delete_alert(self, alert_id: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM spend_alerts WHERE id = ?", (alert_id,)).rowcount == 1

    def fire(self, alert_id: str, month: str) -> bool:
        """Note that the alert fired this month; False if it had already (it must not again)."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO alert_firings (alert_id, month, fired_at) VALUES (?, ?, ?)",
                (alert_id, month, int(time.time())),
            )
        return cursor.rowcount == 1
