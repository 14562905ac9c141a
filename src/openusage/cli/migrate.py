"""``openusage migrate``: copy every event from one store to another."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import click


def _state_path(source: str, target: str) -> Path:
    digest = hashlib.sha256(f"{source}\n{target}".encode()).hexdigest()[:12]
    return Path(f".openusage-migrate-{digest}.json")


def _saved_place(state: Path, source: str, target: str) -> int:
    if not state.exists():
        return 0
    saved = json.loads(state.read_text())
    if saved.get("from") != source or saved.get("to") != target:
        raise click.ClickException(
            f"{state} belongs to another migration ({saved.get('from')} to {saved.get('to')})"
        )
    return int(saved["place"])


def _save_place(state: Path, source: str, target: str, place: int) -> None:
    partial = state.with_name(state.name + ".part")
    partial.write_text(json.dumps({"from": source, "to": target, "place": place}))
    os.replace(partial, state)  # a crash leaves the old state or the new, never half of one


def _must_exist(url: str) -> None:
    from ..store.urls import duckdb_path, local_path, store_scheme

    scheme = store_scheme(url)
    path = duckdb_path(url) if scheme == "duckdb" else local_path(url) if scheme == "chdb" else None
    if path is not None and not path.exists():
        raise click.ClickException(f"no store at {path}: nothing to migrate from")


@click.command()
@click.option("--from", "source_url", required=True, metavar="URL", help="The store to copy from.")
@click.option("--to", "target_url", required=True, metavar="URL", help="The store to copy to (made if new).")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the place reached is kept (default: .openusage-migrate-HASH.json here).",
)
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=20_000, show_default=True)
def migrate(source_url: str, target_url: str, state: Path | None, batch_size: int) -> None:
    """Copy every event from one store to another, in the order they were stored.

    Stores are URLs as for serve --store (duckdb:///FILE, chdb:///DIR, clickhouse://...) or
    DuckDB file paths; a DuckDB file or chDB directory must not be held by a server.
    Interrupted, it goes on where it stopped when run again; run again later, it copies
    what was stored since. An event the target holds already is never counted twice.
    """
    from ..store import StoreFull, StoreUnavailable, WriteUnfinished, open_store
    from ..store.copying import copy_events

    if source_url == target_url:
        raise click.ClickException("--from and --to name the same store")
    state = state or _state_path(source_url, target_url)
    after = _saved_place(state, source_url, target_url)
    _must_exist(source_url)
    try:
        source = open_store(source_url)
        try:
            target = open_store(target_url)
        except StoreUnavailable:
            source.close()
            raise
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    copied = duplicates = 0
    try:
        last = source.last_place()
        with click.progressbar(length=max(0, last - after), label="events", file=sys.stderr) as bar:
            for step in copy_events(source, target, after=after, until=last, batch=batch_size):
                _save_place(state, source_url, target_url, step.place)
                bar.update(step.place - after)
                after = step.place
                copied += step.copied
                duplicates += step.duplicates
    except (StoreFull, WriteUnfinished) as exc:
        raise click.ClickException(
            f"{copied} events copied, up to place {after} (kept in {state}), then: {exc}. "
            "Run it again to go on from there."
        ) from None
    finally:
        target.close()
        source.close()
    click.echo(f"{copied} events copied, {duplicates} already there; place {after} kept in {state}")
