"""Dependency health checks behind GET /healthz.

Each check answers within a timeout; a dependency that hangs counts as down, so the endpoint
itself stays fast when the broker or database is unreachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from class_management_service.messaging.producer import SharedProducer


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)


HealthCheck = Callable[[], Awaitable[CheckResult]]


def database_check(engine: AsyncEngine) -> HealthCheck:
    async def check() -> CheckResult:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return CheckResult(ok=True)

    return check


def redis_check(redis: Redis) -> HealthCheck:
    async def check() -> CheckResult:
        await redis.ping()
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
            return CheckResult(ok=False, details={"error": f"{type(exc).__name__}: {exc}"})

    names = list(checks)
    results = await asyncio.gather(*(guarded(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))
