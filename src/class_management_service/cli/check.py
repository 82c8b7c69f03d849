"""``check``: can this configuration run the service? What an operator runs first.

Each check gets ``--timeout`` seconds and says in one line what is wrong: the internal key, the
database (reachable, schema at the migrations' head), Redis, the Kafka broker and the topics the
service consumes, dead-letters to and publishes to.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from class_management_service.cli.common import PROG, add_command, run_job

if TYPE_CHECKING:
    from class_management_service.settings import Settings


class CheckFailed(Exception):
    """A check's readable reason."""


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    detail: str


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = add_command(
        commands,
        "check",
        summary="check configuration and connectivity (PostgreSQL, Redis, Kafka); run it first",
        description=(
            "Check what the service needs with the current environment: an internal API key, "
            "PostgreSQL reachable with the schema at the latest migration, Redis, the Kafka "
            "broker and every topic the service consumes, dead-letters to and publishes to. "
            "Prints one line per check; exits 1 with the reason when any fails."
        ),
        example=f"CLASS_MANAGEMENT_SERVICE_DATABASE_URL=postgresql+asyncpg://... {PROG} check",
        handler=_check,
    )
    check.add_argument("--timeout", type=float, default=5.0, help="seconds per check (default 5)")
    check.add_argument("--json", action="store_true", help="one JSON object")


def _check(args: argparse.Namespace) -> int:
    async def job(settings: Settings) -> int:
        checks: dict[str, Callable[[Settings], Awaitable[str]]] = {
            "configuration": _configuration,
            "database": _database,
            "redis": _redis,
            "kafka": _kafka,
        }
        outcomes = [
            await _outcome(name, check(settings), args.timeout) for name, check in checks.items()
        ]
        if args.json:
            print(json.dumps({o.name: {"ok": o.ok, "detail": o.detail} for o in outcomes}))
        else:
            for outcome in outcomes:
                print(f"{'ok  ' if outcome.ok else 'FAIL'}  {outcome.name:<13}  {outcome.detail}")
        return 0 if all(outcome.ok for outcome in outcomes) else 1

    return run_job(job)


async def _outcome(name: str, check: Awaitable[str], seconds: float) -> Outcome:
    import asyncio

    try:
        async with asyncio.timeout(seconds):
            return Outcome(name, True, await check)
    except CheckFailed as exc:
        return Outcome(name, False, str(exc))
    except TimeoutError:
        return Outcome(name, False, f"no answer within {seconds:g} s")
    except Exception as exc:
        return Outcome(name, False, f"{type(exc).__name__}: {exc}"[:500])


async def _configuration(settings: Settings) -> str:
    from class_management_service.settings import PREFIX, SHARED_INTERNAL_API_KEY

    if settings.internal_api_key is None:
        raise CheckFailed(
            f"no internal API key: set {SHARED_INTERNAL_API_KEY} or {PREFIX}INTERNAL_API_KEY "
            "(without one every internal route answers 401)"
        )
    return "internal API key set"


async def _database(settings: Settings) -> str:
    import asyncpg
    from alembic.script import ScriptDirectory

    from class_management_service.db import asyncpg_dsn
    from class_management_service.migrations.runner import alembic_config

    heads = set(ScriptDirectory.from_config(alembic_config(settings.database_url)).get_heads())
    try:
        connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    except (OSError, asyncpg.PostgresError) as exc:
        raise CheckFailed(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
    try:
        exists = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        current = (
            {row[0] for row in await connection.fetch("SELECT version_num FROM alembic_version")}
            if exists
            else set()
        )
    finally:
        await connection.close()
    if current != heads:
        shown = ", ".join(sorted(current)) or "none"
        raise CheckFailed(
            f"schema at migration {shown}, latest is {', '.join(sorted(heads))}: "
            f"run `{PROG} migrate` (`run` migrates too)"
        )
    return f"reachable, schema at the latest migration ({', '.join(sorted(heads))})"


async def _redis(settings: Settings) -> str:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(settings.redis_url)
    try:
        await client.ping()
    except RedisError as exc:
        raise CheckFailed(f"cannot reach Redis: {exc}") from exc
    finally:
        await client.aclose()
    return "reachable"


async def _kafka(settings: Settings) -> str:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    from class_management_service.messaging import topics
    from class_management_service.messaging.dead_letter_reader import dead_letter_topics

    needed = [settings.author_matches_topic, *dead_letter_topics(settings), *topics.PUBLISHED]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=settings.producer_request_timeout_ms,
    )
    try:
        await consumer.start()
        present = await consumer.topics()
    except KafkaError as exc:
        raise CheckFailed(
            f"cannot reach the broker at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc
    finally:
        await consumer.stop()
    missing = [topic for topic in needed if topic not in present]
    if missing:
        raise CheckFailed("topics missing: " + ", ".join(missing))
    return f"reachable, all {len(needed)} topics present"
