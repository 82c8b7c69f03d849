"""Operators' statements on the outbox (the ``outbox`` CLI commands).

Requeue: a ``failed`` row (it used up ``OUTBOX_MAX_ATTEMPTS``), or a pending one waiting for its
next retry, becomes pending and due now with its attempts reset; the relays are woken with the
same NOTIFY an insert sends. A published row is never requeued (consumers would see the event
twice). A requeued failed row is again its aggregate's head, so the aggregate's later pending
rows wait until it is published, as for any pending row (commit order, see ``claims.py``).
The queue's counts are ``claims.queue_stats``, the figures the relay exports as gauges.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.outbox.models import OutboxEvent, OutboxStatus
from class_management_service.outbox.relay import NOTIFY_CHANNEL


async def requeue(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    failed: bool,
    ids: Sequence[uuid.UUID] = (),
) -> list[uuid.UUID]:
    """Requeue every failed row (``failed``) and/or the unpublished rows ``ids``; returns the
    ids requeued."""
    o = OutboxEvent
    chosen = []
    if failed:
        chosen.append(o.status == OutboxStatus.FAILED.value)
    if ids:
        chosen.append(o.id.in_(ids))
    if not chosen:
        return []
    async with session_factory() as session, session.begin():
        requeued = list(
            await session.scalars(
                update(o)
                .where(or_(*chosen), o.status != OutboxStatus.PUBLISHED.value)
                .values(
                    status=OutboxStatus.PENDING.value,
                    attempts=0,
                    next_attempt_at=func.now(),
                )
                .returning(o.id)
            )
        )
        if requeued:
            await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))
    return requeued
