"""A store's file may have any name: DuckDB names a file's database after it, and the names
the store attaches its other files under must never clash with that."""

from __future__ import annotations

from pathlib import Path

import pytest

from openusage.server.events import EventRules, parse_events
from openusage.store import Aggregation, DuckDBStore
from openusage.store.shrink import shrink

DAY0 = 1_700_006_400

# The names the store attached the rollups, a backup and a shrinking copy under; a quote, a
# space and a dot, which SQL must quote or DuckDB cuts at.
NAMES = ["openusage_rollups", "backup_target", "source", 'say "when"', "two words", "usage.2026"]


def tokens(store: DuckDBStore) -> int:
    """The input tokens of the day, read from the rollups once rolled up."""
    store.roll()
    query = Aggregation(
        kind="completions",
        buckets=[(DAY0, DAY0 + 86_400)],
        width_seconds=86_400,
        group_by=(),
        filters={},
        metrics=("input_tokens",),
        gauge=False,
    )
    return sum(metrics[0] for _, _, metrics in store.aggregate(query))


@pytest.mark.parametrize("name", NAMES)
def test_a_store_with_any_file_name_opens_backs_up_and_shrinks(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.duckdb"
    event = {"id": "e1", "type": "completions", "timestamp": DAY0 + 60, "input_tokens": 7}
    store = DuckDBStore(path)
    try:
        store.append(parse_events([event], EventRules(now=DAY0 + 120)))
        assert tokens(store) == 7
        assert store.backup(tmp_path / "copy.duckdb") == 1
    finally:
        store.close()

    before, after = shrink(path)
    assert after <= before
    for copy in (path, tmp_path / "copy.duckdb"):
        store = DuckDBStore(copy)
        try:
            assert tokens(store) == 7
        finally:
            store.close()
