"""Group commit: concurrent batches share commits, and each gets its own exact answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from openusage.server.commits import GroupCommitter
from openusage.server.events import EventRules, parse_events
from openusage.store import AppendResult, DuckDBStore
from openusage.store.base import Row


class CountingStore(DuckDBStore):
    """The real store, counting its commits."""

    commits: list[int]

    def append_batches(self, batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        self.commits.append(len(batches))
        return super().append_batches(batches)


def rows(prefix: str, count: int) -> list[Row]:
    events = [
        {"id": f"{prefix}-{i}", "type": "embeddings", "timestamp": 1_700_000_000 + i, "input_tokens": 1}
        for i in range(count)
    ]
    return parse_events(events, EventRules(now=1_800_000_000))


def test_concurrent_batches_share_commits_and_count_their_own_duplicates(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "group.duckdb")
    store.commits = []

    async def run() -> list[AppendResult]:
        committer = GroupCommitter(store)
        batches = [rows(f"b{n}", 200) for n in range(20)]
        batches.append(rows("b0", 200))  # a client retrying its batch while the others go in
        return await asyncio.gather(*(committer.append(batch) for batch in batches))

    results = asyncio.run(run())
    assert [(r.inserted, r.duplicates) for r in results] == [(200, 0)] * 20 + [(0, 200)]
    assert sum(store.commits) == 21 and len(store.commits) < 21, "batches shared commits"
    (count,) = store._con.execute("SELECT count(*) FROM events").fetchone()  # type: ignore[misc]
    assert count == 4000
    store.close()


def test_a_failed_commit_fails_every_request_in_it_and_the_next_one_works(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "fail.duckdb")
    store.commits = []
    calls = {"n": 0}
    original = store.append_batches

    def flaky(batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return original(batches)

    store.append_batches = flaky  # type: ignore[method-assign]

    async def run() -> tuple[list[object], AppendResult]:
        committer = GroupCommitter(store)
        first = await asyncio.gather(committer.append(rows("x", 5)), return_exceptions=True)
        second = await committer.append(rows("y", 5))
        return list(first), second

    first, second = asyncio.run(run())
    assert isinstance(first[0], OSError)
    assert (second.inserted, second.duplicates) == (5, 0)
    store.close()
