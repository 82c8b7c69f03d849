"""Long synchronous loops of the consumer that let the event loop run between slices.

The consumer decodes and plans the next poll batch while the previous one is being written
(:mod:`.consumer`). Decoding or planning a poll of a few hundred events is tens of
milliseconds of pure Python; without a yield, the write in flight cannot send its next
statement until that block ends, so PostgreSQL waits on the consumer and the two work one
after the other. Giving the loop a turn every few items lets each of the write's round trips
continue within about a slice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")

#: Items per slice: one author-match event of 30 essays takes ~0.1-0.2 ms to decode or plan,
#: so a slice is a millisecond or two, and a turn of the loop (~10 us) is well under 1 % of it.
SLICE = 8


async def cooperatively(items: Iterable[T], *, every: int = SLICE) -> AsyncIterator[T]:
    """``items`` one by one, with a turn of the event loop after every ``every`` of them."""
    for index, item in enumerate(items, 1):
        yield item
        if index % every == 0:
            await asyncio.sleep(0)
