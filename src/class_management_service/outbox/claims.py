"""The relay's statements on ``outbox_events``: claim due rows under a lease, mark them
published, record failed attempts, and read the queue's gauges.

Claim (lease): one short transaction picks due pending rows with ``FOR UPDATE SKIP LOCKED`` and
pushes their ``next_attempt_at`` a lease ahead, then commits. For the lease's duration no other
relay (replica) sees those rows, and no transaction stays open while Kafka is slow.

Order: only an aggregate's *head* is claimed, its pending row with the lowest
``aggregate_sequence`` (commit order, see migration 0005). While that row is pending (leased by
a relay, or waiting for a retry) no relay takes the aggregate's later rows, so an aggregate's
events reach Kafka in commit order however many relays run: a row is sent only after the broker
acknowledged the one before it. (A re-send after a lease ran out can repeat an event after a
later one; each event's first delivery is in order, and consumers dedupe on event_id.) A
``failed`` row does not hold its aggregate back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Interval, Table, bindparam, case, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from class_management_service.outbox.models import OutboxEvent, OutboxStatus


@dataclass(frozen=True)
class ClaimedEvent:
    id: uuid.UUID
    topic: str
    message_key: str
    envelope: dict[str, Any]
    headers: dict[str, str]
    attempts: int
    lease_until: datetime
    created_at: datetime


@dataclass(frozen=True)
class FailedAttempt:
    """What to record for one failed send of ``event``."""

    event: ClaimedEvent
    error: str
    delay: timedelta
    counted: bool  # uses up one of the row's attempts


@dataclass(frozen=True)
class QueueStats:
    pending: int
    failed: int
    oldest_pending_age_seconds: float


async def claim_due(
    session_factory: async_sessionmaker[AsyncSession], *, limit: int, lease: timedelta
) -> list[ClaimedEvent]:
    """Lease up to ``limit`` due aggregate heads, oldest first."""
    o = OutboxEvent
    earlier = aliased(OutboxEvent, name="earlier")
    due = (
        select(o.id)
        .where(
            o.status == OutboxStatus.PENDING.value,
            o.next_attempt_at <= func.now(),
            ~exists().where(
                earlier.status == OutboxStatus.PENDING.value,
                earlier.aggregate_type == o.aggregate_type,
                earlier.aggregate_id == o.aggregate_id,
                earlier.aggregate_sequence < o.aggregate_sequence,
            ),
        )
        .order_by(o.next_attempt_at, o.created_at)
        .limit(limit)
        .with_for_update(of=o, skip_locked=True)
        .cte("due")
    )
    claim = (
        update(o)
        .where(o.id.in_(select(due.c.id)))
        .values(next_attempt_at=func.now() + lease)
        .returning(
            o.id,
            o.topic,
            o.message_key,
            o.envelope,
            o.headers,
            o.attempts,
            o.next_attempt_at,
            o.created_at,
        )
        .execution_options(synchronize_session=False)
    )
    async with session_factory() as session, session.begin():
        rows = (await session.execute(claim)).all()
    events = [
        ClaimedEvent(
            id=row.id,
            topic=row.topic,
            message_key=row.message_key,
            envelope=row.envelope,
            headers=row.headers,
            attempts=row.attempts,
            lease_until=row.next_attempt_at,
            created_at=row.created_at,
        )
        for row in rows
    ]
    events.sort(key=lambda event: event.created_at)
    return events


async def mark_published(
    session_factory: async_sessionmaker[AsyncSession], events: Sequence[ClaimedEvent]
) -> None:
    o = OutboxEvent
    async with session_factory() as session, session.begin():
        await session.execute(
            update(o)
            .where(
                o.id.in_([event.id for event in events]),
                o.status == OutboxStatus.PENDING.value,
            )
            .values(status=OutboxStatus.PUBLISHED.value, published_at=func.now(), last_error=None)
            .execution_options(synchronize_session=False)
        )


async def record_failures(
    session_factory: async_sessionmaker[AsyncSession],
    failures: Sequence[FailedAttempt],
    *,
    max_attempts: int,
) -> None:
    """Reschedule each row after its delay; a row whose counted attempts reach
    ``max_attempts`` becomes ``failed``."""
    table = OutboxEvent.__table__
    assert isinstance(table, Table)
    c = table.c
    # Fenced on the lease: if the lease ran out and another relay re-claimed the row, that
    # relay owns the outcome now and this stale report is dropped.
    statement = (
        update(table)
        .where(
            c.id == bindparam("event_id"),
            c.status == OutboxStatus.PENDING.value,
            c.next_attempt_at == bindparam("lease_until"),
        )
        .values(
            attempts=c.attempts + bindparam("increment"),
            last_error=bindparam("error"),
            next_attempt_at=func.now() + bindparam("delay", type_=Interval()),
            status=case(
                (
                    c.attempts + bindparam("increment") >= max_attempts,
                    OutboxStatus.FAILED.value,
                ),
                else_=OutboxStatus.PENDING.value,
            ),
        )
    )
    params = [
        {
            "event_id": failure.event.id,
            "lease_until": failure.event.lease_until,
            "error": failure.error,
            "delay": failure.delay,
            "increment": 1 if failure.counted else 0,
        }
        for failure in failures
    ]
    async with session_factory() as session, session.begin():
        connection = await session.connection()
        await connection.execute(statement, params)


async def queue_stats(session_factory: async_sessionmaker[AsyncSession]) -> QueueStats:
    """Queue depth, failed count and oldest-pending age, from the table (all replicas)."""
    o = OutboxEvent
    async with session_factory() as session:
        pending = (
            await session.execute(
                select(
                    func.count(),
                    func.extract("epoch", func.now() - func.min(o.created_at)),
                ).where(o.status == OutboxStatus.PENDING.value)
            )
        ).one()
        failed = (
            await session.execute(select(func.count()).where(o.status == OutboxStatus.FAILED.value))
        ).scalar_one()
    return QueueStats(
        pending=pending[0],
        failed=failed,
        oldest_pending_age_seconds=max(float(pending[1] or 0.0), 0.0),
    )
