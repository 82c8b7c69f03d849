"""The shared backoff: full jitter under a doubling, capped ceiling."""

from __future__ import annotations

import random

import pytest

from class_management_service.retry import backoff_seconds


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (9, 8.0)])
def test_delay_stays_under_the_capped_exponential(attempt: int, ceiling: float) -> None:
    delays = [backoff_seconds(attempt, 0.5, 8.0) for _ in range(500)]
    assert all(0.0 <= delay <= ceiling for delay in delays)
    # Jittered: spread over the range rather than pinned to the ceiling.
    assert min(delays) < ceiling / 4 < ceiling * 3 / 4 < max(delays)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    random.seed(1)
    assert 0.0 <= backoff_seconds(10**9, 1.0, 60.0) <= 60.0
