"""Where "now" comes from.

Two clocks, one rule each:

- A decision about how old a stored row is (the validation timeout, an outbox row's lease or
  retry) is made on the database's clock, ``now()`` in the statement: the clock that stamped the
  rows, the same for every replica however far their own clocks drift.
- A timestamp the service stamps itself on what it records (a teacher's validation) comes from
  the injected :class:`Clock` (``Container.clock``, ``http.deps.ServiceClock`` in a route), so
  tests fix it instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
