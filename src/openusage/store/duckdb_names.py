"""Names of DuckDB databases in SQL.

DuckDB names a file's own database after the file (``usage.duckdb`` is ``usage``), so a
database attached beside it under a plain name clashed with a file of that name
(``openusage_rollups.duckdb`` could not be opened). The names attached here hold a ``/``,
which no file's name can.
"""

from __future__ import annotations

#: the rollups' file, beside the events' file
ROLLUPS_DATABASE = "openusage/rollups"
#: the file a backup writes
BACKUP_DATABASE = "openusage/backup"
#: the file ``shrink`` copies from
SHRINKING_DATABASE = "openusage/shrinking"


def quoted(name: str) -> str:
    """``name`` as an SQL identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'
