"""Long synchronous loops of the consumer that let the event loop run between slices.

The consumer decodes and plans the next poll batch while the previous one is being written
(:mod:`.consumer`). Decoding or planning a poll of a few hundred events is tens of
milliseconds of pure Python; without a yield, the write in flight cannot send its next
statement until that block ends, so PostgreSQL waits on the consumer and the two work one
after the other. Giving the loop a turn every few items lets each of the write's round trips
continue within about a slice.

A write's short statements before its big one (locks, ledger, batch state: PostgreSQL has
little to do meanwhile) still waited for a slice each. Such a stretch runs :func:`urgently`:
the loops here pause at their next slice until it ends, so the write reaches its big statement
first and the decoding and planning run while PostgreSQL works on that one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

#: Items per slice: one author-match event of 30 essays takes ~0.1-0.2 ms to decode or plan,
#: so a slice is a millisecond or two, and a turn of the loop (~10 us) is well under 1 % of it.
SLICE = 8

# Open urgent stretches, and the loops waiting for them to end. Process-wide: every consumer
# shares the one event loop, so a write waiting on its round trips goes first whichever
# consumer's loop would run instead. (Futures of the running loop rather than one
# ``asyncio.Event``, which would stay bound to the first loop that waited on it.)
_urgent = 0
_waiting: list[asyncio.Future[None]] = []


@contextmanager
def urgently() -> Iterator[None]:
    """While inside, :func:`cooperatively` loops wait at their next slice (nesting allowed).

    Only for stretches that never wait on such a loop themselves, or they would wait forever."""
    global _urgent
    _urgent += 1
    try:
        yield
    finally:
        _urgent -= 1
        if not _urgent:
            for waiter in _waiting:
                if not waiter.done():
                    waiter.set_result(None)
            _waiting.clear()


async def cooperatively(items: Iterable[T], *, every: int = SLICE) -> AsyncIterator[T]:
    """``items`` one by one, with a turn of the event loop after every ``every`` of them (and
    as many as an :func:`urgently` stretch takes)."""
    for index, item in enumerate(items, 1):
        yield item
        if index % every == 0:
            await asyncio.sleep(0)
            while _urgent:
                waiter = asyncio.get_running_loop().create_future()
                _waiting.append(waiter)
                await waiter
