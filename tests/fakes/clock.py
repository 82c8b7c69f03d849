"""A clock that stands still."""

from __future__ import annotations

from datetime import datetime


class FixedClock:
    """Satisfies ``class_management_service.clock.Clock``: always ``now``."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("a clock deals in timezone-aware datetimes only")
        self._now = now

    def now(self) -> datetime:
        return self._now
