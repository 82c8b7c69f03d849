"""The shared backoff: full jitter under a doubling, capped ceiling; and the wait a set event
cuts short, which never loses a cancellation."""

from __future__ import annotations

import asyncio
import random

import pytest

from class_management_service.retry import backoff_seconds, sleep_unless_set


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (9, 8.0)])
def test_delay_stays_under_the_capped_exponential(attempt: int, ceiling: float) -> None:
    delays = [backoff_seconds(attempt, 0.5, 8.0) for _ in range(500)]
    assert all(0.0 <= delay <= ceiling for delay in delays)
    # Jittered: spread over the range rather than pinned to the ceiling.
    assert min(delays) < ceiling / 4 < ceiling * 3 / 4 < max(delays)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    random.seed(1)
    assert 0.0 <= backoff_seconds(10**9, 1.0, 60.0) <= 60.0


async def test_a_cancel_in_the_iteration_the_event_is_set_in_is_not_lost() -> None:
    # The race that lost a consumer's stop: its batch succeeded (setting the event) just as the
    # task was cancelled.
    event = asyncio.Event()
    sleeper = asyncio.create_task(sleep_unless_set(event, 60))
    await asyncio.sleep(0)  # the sleeper now waits on the event
    event.set()
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper


async def test_the_sleep_ends_when_the_event_is_set_or_the_time_is_up() -> None:
    event = asyncio.Event()
    sleeper = asyncio.create_task(sleep_unless_set(event, 60))
    await asyncio.sleep(0)
    event.set()
    await sleeper  # well before the 60 s
    event.clear()
    await sleep_unless_set(event, 0.001)  # returns: the time is up, the event never set
