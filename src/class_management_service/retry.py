"""The one backoff convention of the service's retry loops (consumer, dead letters, workers),
and the one way they wait for a delay that an event may cut short.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the delay is drawn
uniformly between zero and the capped exponential, so replicas that failed together (a database
restart) do not retry in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

# 2**30 times any sensible base is far beyond any cap; bounding the exponent avoids overflow.
_MAX_EXPONENT = 30


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Delay before retry number ``attempt`` (1-based).

    Uniform in ``[0, min(cap, base * 2**(attempt - 1))]``.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return random.uniform(0.0, min(cap, base * 2**exponent))


async def sleep_unless_set(event: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or until ``event`` is set if that comes first.

    With ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` returns
    normally when the event is set in the loop iteration its task is cancelled in, and the
    cancellation is lost: a worker loop asked to stop then runs on, and its stop waits forever.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
