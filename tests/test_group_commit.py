"""Group commit: concurrent batches share commits, and each gets its own exact answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from openusage.server import commits
from openusage.server.commits import BULK_ROWS, GroupCommitter
from openusage.server.events import EventRules, parse_events
from openusage.store import AppendResult, DuckDBStore
from openusage.store.base import Row


class CountingStore(DuckDBStore):
    """The real store, counting its commits."""

    commits: list[int]

    def append_batches(self, batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        self.commits.append(len(batches))
        return super().append_batches(batches)


@pytest.fixture
def counting(tmp_path: Path) -> Iterator[CountingStore]:
    """A counting store, closed whatever the test does (a store left open at exit aborts
    the interpreter)."""
    store = CountingStore(tmp_path / "counting.duckdb")
    store.commits = []
    yield store
    store.close()


def rows(prefix: str, count: int) -> list[Row]:
    events = [
        {"id": f"{prefix}-{i}", "type": "embeddings", "timestamp": 1_700_000_000 + i, "input_tokens": 1}
        for i in range(count)
    ]
    return parse_events(events, EventRules(now=1_800_000_000))


def test_concurrent_batches_share_commits_and_count_their_own_duplicates(counting: CountingStore) -> None:
    async def run() -> list[AppendResult]:
        committer = GroupCommitter(counting)
        batches = [rows(f"b{n}", 200) for n in range(20)]
        batches.append(rows("b0", 200))  # a client retrying its batch while the others go in
        return await asyncio.gather(*(committer.append(batch) for batch in batches))

    results = asyncio.run(run())
    assert [(r.inserted, r.duplicates) for r in results] == [(200, 0)] * 20 + [(0, 200)]
    assert sum(counting.commits) == 21 and len(counting.commits) < 21, "batches shared commits"
    (count,) = counting._con.execute("SELECT count(*) FROM events").fetchone()  # type: ignore[misc]
    assert count == 4000


def test_a_failed_commit_fails_every_request_in_it_and_the_next_one_works(counting: CountingStore) -> None:
    calls = {"n": 0}
    original = counting.append_batches

    def flaky(batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return original(batches)

    counting.append_batches = flaky  # type: ignore[method-assign]

    async def run() -> tuple[list[object], AppendResult]:
        committer = GroupCommitter(counting)
        first = await asyncio.gather(committer.append(rows("x", 5)), return_exceptions=True)
        second = await committer.append(rows("y", 5))
        return list(first), second

    first, second = asyncio.run(run())
    assert isinstance(first[0], OSError)
    assert (second.inserted, second.duplicates) == (5, 0)


def test_a_retried_stored_batch_shares_a_commit_with_new_ones(tmp_path: Path) -> None:
    """A retry of a batch stored long ago, in the same commit as new batches (and after
    them), is counted as duplicates; the commit does not fail for it."""
    store = DuckDBStore(tmp_path / "retry.duckdb")
    try:
        old = rows("old", 30)
        store.append(old)
        partly = rows("new-a", 10) + old[:5]  # a batch half retried, half new
        results = store.append_batches([rows("new-b", 20), old, partly, old[10:12]])
        assert [(r.inserted, r.duplicates) for r in results] == [(20, 0), (0, 30), (10, 5), (0, 2)]
        (count,) = store._con.execute("SELECT count(*) FROM events").fetchone()  # type: ignore[misc]
        assert count == 60
    finally:
        store.close()


def test_every_request_of_a_failed_shared_commit_learns_of_it(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "shared-fail.duckdb")
    original = store.append_batches
    release = threading.Event()
    calls = {"n": 0, "sizes": []}

    def slow_then_failing(batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        calls["n"] += 1
        calls["sizes"].append(len(batches))
        if calls["n"] == 1:
            release.wait(30)  # hold the first commit while the others queue up
            return original(batches)
        raise OSError("disk full")

    store.append_batches = slow_then_failing  # type: ignore[method-assign]

    async def run() -> list[object]:
        committer = GroupCommitter(store)
        first = asyncio.ensure_future(committer.append(rows("first", 3)))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(committer.append(rows(f"q{n}", 3))) for n in range(5)]
        await asyncio.sleep(0.05)
        release.set()
        # A bound, not a timing: a waiter never told of the failure would wait for ever.
        return await asyncio.wait_for(asyncio.gather(first, *queued, return_exceptions=True), 30)

    try:
        results = asyncio.run(run())
    finally:
        store.append_batches = original  # type: ignore[method-assign]
        store.close()
    assert calls["sizes"] == [1, 5], "the five queued batches shared the second commit"
    assert isinstance(results[0], AppendResult)
    assert all(isinstance(r, OSError) for r in results[1:])


class HeldStore(DuckDBStore):
    """The real store, whose first commit waits for a signal (and may then fail), so that
    batches queue up behind it; it records the batch sizes of every commit."""

    def setup(self, *, fail_first: bool) -> None:
        self.release = threading.Event()
        self.fail_first = fail_first
        self.commits: list[list[int]] = []

    def append_batches(self, batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        self.commits.append([len(b) for b in batches])
        if len(self.commits) == 1:
            self.release.wait(30)
            if self.fail_first:
                raise OSError("disk full")
        return super().append_batches(batches)


def queue_behind_a_held_commit(store: HeldStore, committer: GroupCommitter, sizes: list[int]) -> list[object]:
    async def run() -> list[object]:
        first = asyncio.ensure_future(committer.append(rows("held", 1)))
        await asyncio.sleep(0.05)
        queued = [
            asyncio.ensure_future(committer.append(rows(f"s{n}", size))) for n, size in enumerate(sizes)
        ]
        await asyncio.sleep(0.05)
        store.release.set()
        # A bound, not a timing: a request never answered would wait for ever.
        return await asyncio.wait_for(asyncio.gather(first, *queued, return_exceptions=True), 30)

    return asyncio.run(run())


def test_a_commit_takes_batches_up_to_its_row_cap_and_a_larger_batch_alone(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "cap.duckdb")
    store.setup(fail_first=False)
    try:
        sizes = [4, 6, 5, 6, 12, 3]  # 4 + 6 is the cap exactly; 5 + 6 one past it
        results = queue_behind_a_held_commit(store, GroupCommitter(store, max_rows=10), sizes)
    finally:
        store.close()
    assert store.commits == [[1], [4, 6], [5], [6], [12], [3]]
    assert [r.inserted for r in results] == [1, *sizes]  # type: ignore[union-attr]


def test_hundreds_of_waiting_requests_share_one_commit(tmp_path: Path) -> None:
    """More waiters than CPython's cached small integers: counted by value."""
    store = HeldStore(tmp_path / "many.duckdb")
    store.setup(fail_first=False)
    try:
        results = queue_behind_a_held_commit(store, GroupCommitter(store), [1] * 300)
    finally:
        store.close()
    assert store.commits == [[1], [1] * 300]
    assert all(r.inserted == 1 for r in results)  # type: ignore[union-attr]


def test_batches_queued_behind_a_failed_commit_are_still_written(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "after.duckdb")
    store.setup(fail_first=True)
    try:
        results = queue_behind_a_held_commit(store, GroupCommitter(store), [2, 3])
        (count,) = store._con.execute("SELECT count(*) FROM events").fetchone()  # type: ignore[misc]
    finally:
        store.close()
    assert isinstance(results[0], OSError)
    assert [(r.inserted, r.duplicates) for r in results[1:]] == [(2, 0), (3, 0)]  # type: ignore[union-attr]
    assert count == 5


def bulk(prefix: str) -> list[Row]:
    return rows(prefix, BULK_ROWS)


def test_bulk_batches_of_several_clients_are_gathered_into_one_commit(
    counting: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four clients, each sending its next batch a while after its answer (as a client
    makes and sends it), at different paces: once all four have been in hand together,
    each commit waits for all four. The wait, and how long four together are remembered,
    are made long here, so the test does not depend on how fast anything runs (a commit
    slower than a second, on a loaded machine, once let the clients fall out of step and
    the last ones wait the whole minute); the bound is tested below."""
    monkeypatch.setattr(commits, "TOGETHER_MEMORY", 60)

    async def client(committer: GroupCommitter, number: int) -> None:
        for turn in range(4):
            await committer.append(bulk(f"c{number}-{turn}"))
            await asyncio.sleep(0.01 * number)  # the clients come back one after another

    async def run() -> None:
        committer = GroupCommitter(counting, bulk_wait=60)
        await asyncio.wait_for(asyncio.gather(*(client(committer, n) for n in range(4))), 30)

    asyncio.run(run())
    assert counting.commits == [4, 4, 4, 4]
    (count,) = counting._con.execute("SELECT count(*) FROM events").fetchone()  # type: ignore[misc]
    assert count == 16 * BULK_ROWS


def test_single_events_of_several_clients_are_gathered_into_one_commit(
    counting: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen clients sending one event at a time, each coming back at its own pace: once
    all sixteen have been in hand together, each commit waits for all sixteen (a commit
    costs about the same for one event as for sixteen). The wait, and how long sixteen
    together are remembered, are made long here."""
    monkeypatch.setattr(commits, "TOGETHER_MEMORY", 60)

    async def client(committer: GroupCommitter, number: int) -> None:
        for turn in range(3):
            await committer.append(rows(f"c{number}-{turn}", 1))
            await asyncio.sleep(0.002 * number)

    async def run() -> None:
        committer = GroupCommitter(counting, small_wait=60)
        await asyncio.wait_for(asyncio.gather(*(client(committer, n) for n in range(16))), 30)

    asyncio.run(run())
    assert counting.commits == [16, 16, 16]
    (count,) = counting._con.execute("SELECT count(*) FROM events").fetchone()  # type: ignore[misc]
    assert count == 48


def test_a_commit_holding_a_bulk_batch_waits_as_bulk_loading_does(
    counting: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk batch and a single event wait together, three requests expected: the commit
    waits as long as bulk loading may (a minute here), not the single event's wait (none
    here), and takes the third request when it comes."""
    monkeypatch.setattr(commits, "TOGETHER_MEMORY", 60)

    async def run() -> None:
        committer = GroupCommitter(counting, bulk_wait=60, small_wait=0)
        await asyncio.gather(*(committer.append(rows(f"first-{n}", 1)) for n in range(3)))
        mixed = [committer.append(bulk("bulk")), committer.append(rows("single", 1))]
        pair = asyncio.ensure_future(asyncio.gather(*mixed))
        await asyncio.sleep(0.1)
        await asyncio.wait_for(asyncio.gather(pair, committer.append(rows("third", 1))), 20)

    asyncio.run(run())
    assert counting.commits == [3, 3]


def test_a_lone_client_is_never_held_back(counting: CountingStore) -> None:
    """With waits of a minute, one client's bulk batches and single events finish well
    within the test's bound: nothing waits for requests that are not coming."""

    async def run() -> None:
        committer = GroupCommitter(counting, bulk_wait=60, small_wait=60)
        for turn in range(3):
            await asyncio.wait_for(committer.append(bulk(f"lone-{turn}")), 20)
            await asyncio.wait_for(committer.append(rows(f"single-{turn}", 1)), 20)

    asyncio.run(run())
    assert counting.commits == [1] * 6


def test_the_batches_being_written_count_among_those_expected(counting: CountingStore) -> None:
    """One client's batch is being written while three others arrive: four were in hand
    together, so the next commit waits for the first client's next batch too."""
    release = threading.Event()
    original = counting.append_batches

    def first_held(batches: Sequence[Sequence[Row]]) -> list[AppendResult]:
        if not counting.commits:
            release.wait(30)
        return original(batches)

    counting.append_batches = first_held  # type: ignore[method-assign]

    async def run() -> None:
        committer = GroupCommitter(counting, bulk_wait=60)
        first = asyncio.ensure_future(committer.append(bulk("a-0")))
        await asyncio.sleep(0.05)  # its commit is being written (and held)
        others = [asyncio.ensure_future(committer.append(bulk(f"{c}-0"))) for c in "bcd"]
        await asyncio.sleep(0.05)
        release.set()
        await first
        await committer.append(bulk("a-1"))  # the first client's next batch
        await asyncio.wait_for(asyncio.gather(*others), 20)

    try:
        asyncio.run(asyncio.wait_for(run(), 30))
    finally:
        counting.append_batches = original  # type: ignore[method-assign]
    assert counting.commits == [1, 4]


@pytest.mark.parametrize(("size", "waits"), [(BULK_ROWS, (0.2, 60)), (1, (60, 0.2))], ids=["bulk", "single"])
def test_a_client_that_stops_is_waited_for_at_most_its_wait(
    counting: CountingStore, monkeypatch: pytest.MonkeyPatch, size: int, waits: tuple[float, float]
) -> None:
    """Three clients send together, then one sends alone: its batch is committed once the
    wait for its size (0.2 s here; the other wait is a minute) is over, not held while
    others are expected (for a minute here)."""
    monkeypatch.setattr(commits, "TOGETHER_MEMORY", 60)
    bulk_wait, small_wait = waits

    async def run() -> None:
        committer = GroupCommitter(counting, bulk_wait=bulk_wait, small_wait=small_wait)
        await asyncio.gather(*(committer.append(rows(f"together-{n}", size)) for n in range(3)))
        await asyncio.wait_for(committer.append(rows("alone", size)), 20)

    asyncio.run(run())
    assert counting.commits == [3, 1]
