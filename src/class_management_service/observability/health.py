"""Dependency health checks behind GET /healthz.

Each check answers within a timeout; a dependency that hangs counts as down, so the endpoint
itself stays fast when the broker or database is unreachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from class_management_service.db import asyncpg_dsn, server_settings
from class_management_service.errors import describe
from class_management_service.messaging.producer import SharedProducer
from class_management_service.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)


HealthCheck = Callable[[], Awaitable[CheckResult]]


class DatabaseProbe:
    """The database check on a connection of its own, outside the write and read pools.

    A health check that queued for a pooled connection reported a busy service (every pooled
    connection waiting on a lock) as a dead database, and answered only when the pool did.
    One connection, opened on first use and reopened after the server closed it; checks take
    turns on it (each is a single ``SELECT 1``).
    """

    def __init__(self, settings: Settings) -> None:
        self._dsn = asyncpg_dsn(settings.database_url)
        self._server_settings = server_settings(settings)
        self._connect_timeout = settings.health_check_timeout_seconds
        self._connection: asyncpg.Connection | None = None
        self._turn = asyncio.Lock()

    async def check(self) -> CheckResult:
        async with self._turn:
            if self._connection is None or self._connection.is_closed():
                self._connection = await asyncpg.connect(
                    self._dsn,
                    server_settings=self._server_settings,
                    timeout=self._connect_timeout,
                )
            try:
                await self._connection.fetchval("SELECT 1")
            except BaseException:
                # Timed out or failed mid-statement: its state is unknown, start afresh.
                self._connection.terminate()
                self._connection = None
                raise
        return CheckResult(ok=True)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()


def redis_check(client: Callable[[], Redis]) -> HealthCheck:
    """Pings the client ``client()`` returns, built on the first check (container.py)."""

    async def check() -> CheckResult:
        await client().ping()
        return CheckResult(ok=True)

    return check


def kafka_broker_check(producer: SharedProducer) -> HealthCheck:
    async def check() -> CheckResult:
        client = (await producer.get()).client
        metadata = await client.fetch_all_metadata()
        return CheckResult(ok=True, details={"brokers": len(metadata.brokers())})

    return check


async def run_checks(
    checks: dict[str, HealthCheck], timeout_seconds: float
) -> dict[str, CheckResult]:
    async def guarded(check: HealthCheck) -> CheckResult:
        try:
            return await asyncio.wait_for(check(), timeout_seconds)
        except TimeoutError:
            return CheckResult(
                ok=False, details={"error": f"no answer within {timeout_seconds:g}s"}
            )
        except Exception as exc:
            return CheckResult(ok=False, details={"error": describe(exc)})

    names = list(checks)
    results = await asyncio.gather(*(guarded(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))
