"""The budget of request bodies held at once: first come, first served, and never lost."""

from __future__ import annotations

import asyncio
from typing import Any

from openusage.server.bodies import SHARE, BodyBudget


async def holder(budget: BodyBudget, size: int, order: list[str], name: str, done: asyncio.Event) -> None:
    async with budget.held(size):
        order.append(name)
        await done.wait()


def test_requests_are_granted_in_arrival_order_and_the_budget_comes_back_whole() -> None:
    async def scenario() -> None:
        budget = BodyBudget(10)
        order: list[str] = []
        done = {name: asyncio.Event() for name in "abc"}
        first = asyncio.create_task(holder(budget, 6, order, "a", done["a"]))
        await asyncio.sleep(0)
        second = asyncio.create_task(holder(budget, 6, order, "b", done["b"]))
        await asyncio.sleep(0)
        # Would fit beside the first, but waits behind the second: nothing is starved.
        third = asyncio.create_task(holder(budget, 1, order, "c", done["c"]))
        await asyncio.sleep(0.01)
        assert order == ["a"] and budget.free == 4
        done["a"].set()
        await asyncio.sleep(0.01)
        assert order == ["a", "b", "c"] and budget.free == 3
        done["b"].set()
        done["c"].set()
        await asyncio.gather(first, second, third)
        assert budget.free == 10

    asyncio.run(scenario())


def test_a_body_larger_than_the_budget_waits_for_all_of_it() -> None:
    async def scenario() -> None:
        budget = BodyBudget(10)
        order: list[str] = []
        done = {name: asyncio.Event() for name in "ab"}
        first = asyncio.create_task(holder(budget, 1, order, "a", done["a"]))
        await asyncio.sleep(0)
        big = asyncio.create_task(holder(budget, 50, order, "b", done["b"]))
        await asyncio.sleep(0.01)
        assert order == ["a"]
        done["a"].set()
        await asyncio.sleep(0.01)
        assert order == ["a", "b"] and budget.free == 0
        done["b"].set()
        await asyncio.gather(first, big)
        assert budget.free == 10

    asyncio.run(scenario())


def test_what_a_body_turns_out_not_to_need_goes_to_the_next() -> None:
    async def scenario() -> None:
        budget = BodyBudget(10)
        order: list[str] = []
        released = asyncio.Event()
        shrunk = asyncio.Event()

        async def reserved_at_the_limit() -> None:
            async with budget.held(10) as holding:
                holding.shrink(3)  # a chunked body of 3 bytes, read
                shrunk.set()
                await released.wait()

        first = asyncio.create_task(reserved_at_the_limit())
        await shrunk.wait()
        second = asyncio.create_task(holder(budget, 7, order, "b", released))
        await asyncio.sleep(0.01)
        assert order == ["b"] and budget.free == 0
        released.set()
        await asyncio.gather(first, second)
        assert budget.free == 10

    asyncio.run(scenario())


def test_a_request_cancelled_while_waiting_or_holding_gives_everything_back() -> None:
    async def scenario() -> None:
        budget = BodyBudget(10)
        order: list[str] = []
        done = {name: asyncio.Event() for name in "abc"}
        first = asyncio.create_task(holder(budget, 8, order, "a", done["a"]))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(holder(budget, 5, order, "b", done["b"]))
        await asyncio.sleep(0)
        behind = asyncio.create_task(holder(budget, 2, order, "c", done["c"]))
        await asyncio.sleep(0.01)
        waiting.cancel()  # a client gone while its request waited
        first.cancel()  # and one gone while its body was held
        await asyncio.sleep(0.01)
        assert order == ["a", "c"] and budget.free == 8
        done["c"].set()
        await behind
        assert budget.free == 10
        assert waiting.cancelled() and first.cancelled()

    asyncio.run(scenario())


def test_a_request_cancelled_just_as_it_was_granted_gives_it_back() -> None:
    async def scenario() -> None:
        budget = BodyBudget(10)
        order: list[str] = []
        whole = budget.held(10)
        await whole.__aenter__()
        waiting = asyncio.create_task(holder(budget, 5, order, "b", asyncio.Event()))
        await asyncio.sleep(0)
        await whole.__aexit__(None, None, None)  # grants the waiter, which has not run yet
        waiting.cancel()
        await asyncio.sleep(0.01)
        assert waiting.cancelled() and order == [] and budget.free == 10

    asyncio.run(scenario())


def test_a_share_is_noted_in_its_request_and_knows_when_others_wait() -> None:
    async def scenario() -> None:
        budget = BodyBudget(10)
        scope: dict[str, Any] = {"type": "http"}
        order: list[str] = []
        done = asyncio.Event()
        async with budget.held(8, scope) as holding:
            assert scope["state"][SHARE] is holding and not holding.others_wait()
            waiting = asyncio.create_task(holder(budget, 5, order, "b", done))
            await asyncio.sleep(0)
            assert holding.others_wait()  # the connection now wants its body faster
            waiting.cancel()
            await asyncio.sleep(0)
            assert not holding.others_wait()  # a waiter gone waits for nothing
        assert SHARE not in scope["state"]

    asyncio.run(scenario())
