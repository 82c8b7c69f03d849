"""The connection pool's queue hands connections out first come, first served."""

from __future__ import annotations

import asyncio

import pytest

from class_management_service.db import FairQueue
from tests.waiting import wait_for


def _waiting(queue: FairQueue[str]) -> int:
    """How many gets the queue holds (its own record; no public view of it)."""
    return len(queue._getters)


async def test_a_returned_item_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    queue: FairQueue[str] = FairQueue(maxsize=2, lifo=True)
    served: list[str] = []

    async def take(name: str) -> None:
        item = await queue.get()
        served.append(name)
        queue.put_nowait(item)  # done with it at once

    waiters = [asyncio.create_task(take(f"waiter-{n}")) for n in range(3)]
    await wait_for(lambda: _waiting(queue) == 3, every=0, what="three waiters")
    queue.put_nowait("connection")
    # A newcomer arriving while others wait queues behind them.
    newcomer = asyncio.create_task(take("newcomer"))
    await asyncio.gather(*waiters, newcomer)
    assert served == ["waiter-0", "waiter-1", "waiter-2", "newcomer"]


async def test_an_item_handed_to_a_waiter_that_was_cancelled_goes_to_the_next() -> None:
    queue: FairQueue[str] = FairQueue(maxsize=1, lifo=False)
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await wait_for(lambda: _waiting(queue) == 2, every=0, what="two waiters")
    queue.put_nowait("connection")  # resolves first's future...
    first.cancel()  # ...which is cancelled (e.g. a timeout) before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == "connection"
    assert queue.qsize() == 0


def test_full_and_nobody_waiting_raises_queue_full() -> None:
    queue: FairQueue[str] = FairQueue(maxsize=1, lifo=False)
    queue.put_nowait("a")
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait("b")
    assert queue.get_nowait() == "a"
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
