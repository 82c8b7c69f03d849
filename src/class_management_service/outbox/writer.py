"""Enqueues events: rows of the outbox, added inside the caller's transaction.

The row commits or rolls back together with the change it describes, which is the whole point:
no change without its event, no event without its change. One event: :func:`add_outbox_event`;
thousands (the roster import): :func:`outbox_copy_records` then :func:`copy_outbox_records`.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

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


class OutboxCopyRecord(NamedTuple):
    """One outbox row for COPY; the field names are the ``outbox_events`` columns it fills."""

    id: uuid.UUID
    aggregate_type: str
    aggregate_id: str
    topic: str
    event_type: str
    message_key: str
    envelope: str
    headers: str


def outbox_copy_records(
    aggregate_type: str, events: Sequence[PendingEvent]
) -> list[OutboxCopyRecord]:
    """Outbox rows as :func:`add_outbox_event` writes them, as COPY records (pure CPU, no I/O:
    callers may build them in a worker thread)."""

    def record(event: PendingEvent) -> OutboxCopyRecord:
        envelope = new_envelope(
            event_type=event.topic,
            data=event.data,
            correlation_id=event.correlation_id,
            partition_key=event.aggregate_id,
        )
        return OutboxCopyRecord(
            id=envelope.event_id,
            aggregate_type=aggregate_type,
            aggregate_id=event.aggregate_id,
            topic=event.topic,
            event_type=envelope.event_type,
            message_key=event.aggregate_id,
            envelope=envelope.model_dump_json(),
            headers=json.dumps(kafka_headers(envelope)),
        )

    return [record(event) for event in events]


# One upsert takes the sequence numbers of every aggregate of a COPY at once (the insert trigger
# would take them row by row: ~15 % of a 20,000-student import), in key order so that two bulk
# writers lock shared aggregates in the same order.
_RESERVE_SEQUENCES = """
INSERT INTO outbox_aggregate_sequences AS s (aggregate_type, aggregate_id, last_sequence)
SELECT t, i, n FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(t, i, n) ORDER BY t, i
ON CONFLICT (aggregate_type, aggregate_id)
DO UPDATE SET last_sequence = s.last_sequence + EXCLUDED.last_sequence
RETURNING s.aggregate_type, s.aggregate_id, s.last_sequence
"""


async def copy_outbox_records(session: AsyncSession, records: Sequence[OutboxCopyRecord]) -> None:
    """Binary COPY of :func:`outbox_copy_records` rows, inside the session's transaction.

    Each row gets its aggregate's next ``aggregate_sequence`` (in the order of ``records``),
    exactly as the insert trigger gives one to a single row (migration 0005).
    """
    if not records:
        return
    driver = await session_driver(session)
    counts = Counter((record.aggregate_type, record.aggregate_id) for record in records)
    reserved = await driver.fetch(
        _RESERVE_SEQUENCES,
        [key[0] for key in counts],
        [key[1] for key in counts],
        list(counts.values()),
    )
    # The first number of each aggregate's reserved range.
    next_sequence = {(row[0], row[1]): row[2] - counts[(row[0], row[1])] + 1 for row in reserved}
    numbered = []
    for record in records:
        key = (record.aggregate_type, record.aggregate_id)
        numbered.append((*record, next_sequence[key]))
        next_sequence[key] += 1
    await driver.copy_records_to_table(
        "outbox_events",
        columns=(*OutboxCopyRecord._fields, "aggregate_sequence"),
        records=numbered,
    )
