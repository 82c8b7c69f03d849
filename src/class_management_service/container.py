"""Every long-lived dependency of one service instance, built by :mod:`bootstrap`.

The app holds exactly one of these (``app.state.container``); routes reach its parts through
the typed dependencies of :mod:`http.deps`, workers get theirs passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from class_management_service.clock import Clock, SystemClock
from class_management_service.messaging.producer import SharedProducer
from class_management_service.observability.health import DatabaseProbe, HealthCheck
from class_management_service.observability.metrics import Metrics
from class_management_service.reads import ReadOnlyDatabase
from class_management_service.settings import Settings
from class_management_service.workers.supervisor import Supervisor

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    read_only_database: ReadOnlyDatabase
    producer: SharedProducer
    metrics: Metrics
    database_probe: DatabaseProbe
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    supervisor: Supervisor = field(default_factory=lambda: Supervisor([]))
    # Timestamps the service stamps itself (a teacher's validation). Decisions about how old a
    # row is use the database's now() instead, the clock that stamped the rows.
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def redis(self) -> Redis:
        """The Redis client, built on first use (the consumer's idempotency cache, /healthz): an
        app that uses neither, such as the tests' in-process apps, never imports redis (~0.04 s
        of CPU)."""
        from redis.asyncio import Redis

        timeout = self.settings.health_check_timeout_seconds
        return Redis.from_url(
            self.settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    @cached_property
    def internal_api_key(self) -> bytes | None:
        """The configured key as compared with what callers present (bytes, encoded once)."""
        key = self.settings.internal_api_key
        return key.get_secret_value().encode() if key is not None else None

    async def close(self) -> None:
        """Flush what the producer holds, then close every connection."""
        await self.producer.stop()
        if "redis" in self.__dict__:  # a client was built (see redis)
            await self.redis.aclose()
        await self.read_only_database.close()
        self.database_probe.close()
        await self.engine.dispose()
