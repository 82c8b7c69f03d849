"""Long loops of the consumer give the event loop a turn between slices (no servers)."""

from __future__ import annotations

import asyncio

from class_management_service.messaging.cooperative import cooperatively


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
