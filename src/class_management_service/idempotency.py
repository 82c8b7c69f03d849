"""Redis fast path for consumed-event idempotency. The database stays authoritative.

Per event id one key ``<namespace>:<event_id>``:

* :meth:`IdempotencyCache.claim` reads it and sets ``in_flight`` for the events it has never
  seen (``SET NX GET`` with a short TTL: Redis >= 7.0). Events marked ``completed`` are
  returned so the caller can spare their processing once the database confirms them (a mark
  outlives a restored or fresh database: on its own it proves nothing). An ``in_flight`` mark
  (another consumer, or a crash of this one) does *not* skip anything: only the database's
  ``processed_events`` row decides.
* :meth:`IdempotencyCache.mark_completed` is called after the database commit and sets
  ``completed`` with the long TTL.

Each is one Lua script call for all the events of a batch: a command per event cost redis-py
~25 us of Python each to pack and parse, more than the rest of the fast path. The keys of one
call must live on one server (no Redis Cluster).

Redis is never required: every call has a short timeout; a failure (refused connection, timeout)
is logged once, Redis is then left alone for ``retry_after_seconds`` and the caller simply
falls back to the database (claim returns "nothing known"). Duplicates cannot follow, because
"completed" is only ever written after the database commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Collection

from redis.asyncio import Redis

logger = logging.getLogger(__name__)

IN_FLIGHT = b"in_flight"
COMPLETED = b"completed"

# KEYS: one per event. ARGV: the in-flight mark, its TTL, the completed mark. Returns 1 for
# each key already marked completed, else 0 (SET NX GET: the previous value, set if none).
_CLAIM = """
local completed = {}
for i, key in ipairs(KEYS) do
    local previous = redis.call('SET', key, ARGV[1], 'NX', 'GET', 'EX', ARGV[2])
    completed[i] = previous == ARGV[3] and 1 or 0
end
return completed
"""

# KEYS: one per event. ARGV: the completed mark, its TTL.
_MARK = """
for _, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
end
return #KEYS
"""


class IdempotencyCache:
    def __init__(
        self,
        redis: Redis | None,
        *,
        in_flight_ttl_seconds: int,
        completed_ttl_seconds: int,
        namespace: str = "class_management_service:processed_event",
        timeout_seconds: float = 0.5,
        retry_after_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._claim = None if redis is None else redis.register_script(_CLAIM)
        self._mark = None if redis is None else redis.register_script(_MARK)
        self._in_flight_ttl = in_flight_ttl_seconds
        self._completed_ttl = completed_ttl_seconds
        self._namespace = namespace
        self._timeout = timeout_seconds
        self._retry_after = retry_after_seconds
        self._clock = clock
        self._down_until = 0.0
        self._down = False

    @property
    def available(self) -> bool:
        """False while Redis is considered down (calls are skipped until the retry time)."""
        return self._claim is not None and self._clock() >= self._down_until

    def key(self, event_id: uuid.UUID) -> str:
        return f"{self._namespace}:{event_id}"

    async def claim(self, event_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Mark unseen events in flight; return the ones known to be completed (skip those)."""
        if not event_ids or self._claim is None or not self.available:
            return set()
        ordered = list(event_ids)
        try:
            async with asyncio.timeout(self._timeout):
                flags = await self._claim(
                    keys=[self.key(event_id) for event_id in ordered],
                    args=[IN_FLIGHT, self._in_flight_ttl, COMPLETED],
                )
        except Exception as exc:
            self._failed(exc)
            return set()
        self._recovered()
        return {event_id for event_id, flag in zip(ordered, flags, strict=True) if flag}

    async def mark_completed(self, event_ids: Collection[uuid.UUID]) -> None:
        """Record events whose effects are committed in the database (best effort)."""
        if not event_ids or self._mark is None or not self.available:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._mark(
                    keys=[self.key(event_id) for event_id in event_ids],
                    args=[COMPLETED, self._completed_ttl],
                )
        except Exception as exc:
            self._failed(exc)
            return
        self._recovered()

    def _failed(self, exc: BaseException) -> None:
        self._down_until = self._clock() + self._retry_after
        if not self._down:
            self._down = True
            logger.warning(
                "Redis idempotency fast path unavailable; using the database only",
                extra={
                    "error": f"{type(exc).__name__}: {exc}",
                    "retry_after_s": self._retry_after,
                },
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            logger.info("Redis idempotency fast path available again")
