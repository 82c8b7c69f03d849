"""Adds events to the outbox inside the caller's transaction.

The row commits or rolls back together with the change it describes, which is the whole point:
no change without its event, no event without its change. One event: :func:`add_outbox_event`;
thousands (the roster import): :func:`outbox_copy_records` then :func:`copy_outbox_records`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.messaging.envelope import EventEnvelope, kafka_headers, new_envelope
from class_management_service.outbox.models import OutboxEvent
from class_management_service.reads import session_driver


def add_outbox_event(
    session: AsyncSession,
    *,
    topic: str,
    aggregate_type: str,
    aggregate_id: uuid.UUID | str,
    data: dict[str, Any],
    correlation_id: uuid.UUID,
    event_id: uuid.UUID | None = None,
) -> EventEnvelope:
    key = str(aggregate_id)
    envelope = new_envelope(
        event_type=topic,
        data=data,
        correlation_id=correlation_id,
        partition_key=key,
        event_id=event_id,
    )
    session.add(
        OutboxEvent(
            id=envelope.event_id,
            aggregate_type=aggregate_type,
            aggregate_id=key,
            topic=topic,
            event_type=envelope.event_type,
            message_key=key,
            envelope=envelope.model_dump(mode="json"),
            headers=kafka_headers(envelope),
        )
    )
    return envelope


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event to add in bulk: what :func:`add_outbox_event` takes, minus the session."""

    topic: str
    aggregate_id: str
    data: dict[str, Any]
    correlation_id: uuid.UUID


_COPY_COLUMNS = (
    "id",
    "aggregate_type",
    "aggregate_id",
    "topic",
    "event_type",
    "message_key",
    "envelope",
    "headers",
)


def outbox_copy_records(
    aggregate_type: str, events: Sequence[PendingEvent]
) -> list[tuple[Any, ...]]:
    """Outbox rows as :func:`add_outbox_event` writes them, as COPY records (pure CPU, no I/O:
    callers may build them in a worker thread)."""

    def record(event: PendingEvent) -> tuple[Any, ...]:
        envelope = new_envelope(
            event_type=event.topic,
            data=event.data,
            correlation_id=event.correlation_id,
            partition_key=event.aggregate_id,
        )
        return (
            envelope.event_id,
            aggregate_type,
            event.aggregate_id,
            event.topic,
            envelope.event_type,
            event.aggregate_id,
            envelope.model_dump_json(),
            json.dumps(kafka_headers(envelope)),
        )

    return [record(event) for event in events]


async def copy_outbox_records(session: AsyncSession, records: Sequence[tuple[Any, ...]]) -> None:
    """Binary COPY of :func:`outbox_copy_records` rows, inside the session's transaction."""
    if records:
        driver = await session_driver(session)
        await driver.copy_records_to_table("outbox_events", columns=_COPY_COLUMNS, records=records)
