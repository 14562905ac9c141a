"""The insert a chDB store is making, kept in a file beside its data until it completes.

ClickHouse writes an insert's parts one by one (the events', then each rollup view's), so
a process that dies between them leaves rollups short of events it stored, and a retry
finds those events stored and sends nothing. When the store opens, it sends the journal's
insert again under the same token: ClickHouse drops each part it has and writes the rest.
That is safe because it is the store's latest insert, so every table still remembers its
token; chDB lets one process at a time open a store, so no other writer came between.
Once the insert completes the file is emptied, so a rollup emptied since (by hand, or
made again) is never sent it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

#: the file's name in the store's folder
JOURNAL_NAME = "openusage-last-insert.arrow"


class InsertJournal:
    def __init__(self, path: Path) -> None:
        self._path = path

    def write(self, block: pa.Table, token: str) -> None:
        """Keep ``block`` and its token, durably, before it is inserted. Written over the
        last one in place: a torn file is one whose insert never began."""
        block = block.replace_schema_metadata({b"token": token.encode()})
        with open(self._path, "wb") as file:
            with ipc.new_file(file, block.schema) as writer:
                writer.write_table(block)
            file.flush()
            os.fsync(file.fileno())

    def read(self) -> tuple[pa.Table, str] | None:
        """The insert kept last, or None: no file, an emptied one, or a torn one."""
        try:
            with pa.OSFile(str(self._path)) as source:
                block = ipc.open_file(source).read_all()
        except FileNotFoundError:
            return None
        except pa.ArrowInvalid:  # emptied, or torn while it was written
            return None
        token = (block.schema.metadata or {}).get(b"token")
        return None if token is None else (block.replace_schema_metadata(None), token.decode())

    def finished(self) -> None:
        """The insert completed. Not synced: should a crash lose this, the insert is sent
        again when the store opens, and every table drops it as a repeat."""
        os.truncate(self._path, 0)

    def clear(self) -> None:
        """Forget an insert that may not have completed, durably: after the rollups were
        made again from the raw events, which forgets the tokens that make sending it
        again harmless."""
        with open(self._path, "wb") as file:
            os.fsync(file.fileno())
