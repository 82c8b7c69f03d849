"""The one way a test waits: poll an observable condition, a bounded number of times.

A fixed sleep either wastes time or, on a busy machine, is too short; a condition polled until a
deadline is as fast as the system and fails with what it waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

Condition = Callable[[], Awaitable[bool]] | Callable[[], bool]


async def wait_for(
    condition: Condition,
    *,
    within: float = 30.0,
    every: float = 0.05,
    what: str | Callable[[], str] = "the condition",
) -> float:
    """Poll ``condition`` (sync or async) until it holds; returns the monotonic time it did.

    Raises ``AssertionError`` naming ``what`` (a string, or a callable for a message built
    from the last state) when it still does not hold after ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return time.monotonic()
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {within:g}s waiting for {described}")
        await asyncio.sleep(every)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel every task, then wait until each has ended (its cancellation swallowed)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_for_backend(
    session_factory: async_sessionmaker[AsyncSession],
    where: str,
    *,
    what: str,
    within: float = 30.0,
    every: float = 0.05,
) -> None:
    """Until a session of this test's database matches ``where`` (a condition on
    ``pg_stat_activity``), each look from a new session: inside a transaction that view is a
    frozen snapshot."""
    from sqlalchemy import text

    query = text(
        f"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND {where}"  # noqa: S608 - the tests' own constant
    )

    async def found() -> bool:
        async with session_factory() as session:
            return bool(await session.scalar(query))

    await wait_for(found, within=within, every=every, what=what)
