"""Adds an event to the outbox inside the caller's transaction.

The row commits or rolls back together with the change it describes, which is the whole point:
no change without its event, no event without its change.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.messaging.envelope import EventEnvelope, kafka_headers, new_envelope
from class_management_service.outbox.models import OutboxEvent


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
