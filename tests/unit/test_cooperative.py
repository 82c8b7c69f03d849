"""Long loops of the consumer give the event loop a turn between slices (no servers)."""

from __future__ import annotations

import asyncio

from class_management_service.messaging.cooperative import cooperatively, urgently


async def test_other_tasks_run_between_slices_and_only_there() -> None:
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)  # the counter's first turn
    seen = [(item, turns) async for item in cooperatively(range(20), every=8)]
    counter.cancel()

    assert [item for item, _ in seen] == list(range(20))
    # One turn after the 8th and after the 16th item, none within a slice.
    assert [turn for _, turn in seen] == [1] * 8 + [2] * 8 + [3] * 4


async def test_an_empty_sequence_yields_nothing() -> None:
    nothing: list[int] = []
    assert [item async for item in cooperatively(nothing)] == []


async def test_slices_wait_while_an_urgent_stretch_is_open() -> None:
    stretch_may_end = asyncio.Event()
    taken: list[int] = []

    async def urgent_stretch() -> None:
        with urgently():
            await stretch_may_end.wait()

    async def consume() -> None:
        async for item in cooperatively(range(6), every=2):
            taken.append(item)

    stretch = asyncio.create_task(urgent_stretch())
    await asyncio.sleep(0)  # the stretch opens
    consumer = asyncio.create_task(consume())
    for _ in range(5):
        await asyncio.sleep(0)
    # The slice under way ends, then the loop waits for the stretch, however many turns pass.
    assert taken == [0, 1]

    stretch_may_end.set()
    await stretch
    await consumer
    assert taken == list(range(6))


async def test_nested_urgent_stretches_hold_the_slices_until_the_last_one_ends() -> None:
    taken: list[int] = []

    async def consume() -> None:
        async for item in cooperatively(range(4), every=1):
            taken.append(item)

    with urgently():
        with urgently():
            consumer = asyncio.create_task(consume())
            for _ in range(3):
                await asyncio.sleep(0)
        for _ in range(3):
            await asyncio.sleep(0)
        assert taken == [0]
    await consumer
    assert taken == [0, 1, 2, 3]
