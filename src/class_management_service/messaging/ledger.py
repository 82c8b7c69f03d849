"""The processed-events ledger: one row per consumed event whose effects are committed.

Every consumer writes its events' rows in the same transaction as their effects, so a row is the
authoritative proof that an event was applied (a redelivery, a second replica or a crash between
commit and offset commit all find it). ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` says which
events of a batch are new; a concurrent transaction inserting the same event holds the row lock
until it commits, so exactly one of them sees the event as new.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from class_management_service.db import Base, sqlstate


class ProcessedEvent(Base):
    """Consumed events whose effects are committed: the authoritative idempotency record."""

    __tablename__ = "processed_events"
    # Retention deletes each topic's oldest rows first (migration 0008).
    __table_args__ = (Index("ix_processed_events_topic_processed_at", "topic", "processed_at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


# SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation): the data, not
# the system, is at fault; retrying the same statement would fail the same way.
_DATA_ERROR_CLASSES = ("22", "23")


def is_data_error(exc: BaseException) -> bool:
    """Whether a failed write makes its event poison rather than the batch worth a retry."""
    if not isinstance(exc, DBAPIError):
        return False
    code = sqlstate(exc)
    return code is not None and code[:2] in _DATA_ERROR_CLASSES


def describe_db_error(exc: DBAPIError) -> str:
    """``UniqueViolationError (SQLSTATE 23505): ...`` from the driver's own exception."""
    cause = exc.orig.__cause__ or exc.orig if exc.orig is not None else exc
    return f"{type(cause).__name__} (SQLSTATE {sqlstate(exc)}): {cause}"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    event_id: uuid.UUID
    topic: str
    #: JSON object text: what the event did, for an operator.
    summary: str = "{}"


# In key order, so concurrent batches take their row locks in the same order (no deadlock).
_RECORD = text(
    """
    INSERT INTO processed_events (event_id, topic, summary)
    SELECT e.event_id, e.topic, CAST(e.summary AS jsonb)
    FROM unnest(
        CAST(:event_ids AS uuid[]), CAST(:topics AS text[]), CAST(:summaries AS text[])
    ) AS e(event_id, topic, summary)
    ORDER BY e.event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
)

_PROCESSED = text(
    "SELECT event_id FROM processed_events WHERE event_id = ANY(CAST(:ids AS uuid[]))"
)

_FORGET = text("DELETE FROM processed_events WHERE event_id = ANY(CAST(:event_ids AS uuid[]))")


async def record_new(session: AsyncSession, entries: Sequence[LedgerEntry]) -> set[uuid.UUID]:
    """Record ``entries`` in the caller's transaction; the ids that were not recorded before."""
    if not entries:
        return set()
    inserted = await session.execute(
        _RECORD,
        {
            "event_ids": [entry.event_id for entry in entries],
            "topics": [entry.topic for entry in entries],
            "summaries": [entry.summary for entry in entries],
        },
    )
    return set(inserted.scalars())


async def forget(session: AsyncSession, event_ids: Collection[uuid.UUID]) -> None:
    """Take back rows this transaction recorded for events it then rejected."""
    if event_ids:
        await session.execute(_FORGET, {"event_ids": sorted(event_ids)})


async def processed(session: AsyncSession, event_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """The events among ``event_ids`` whose effects are committed."""
    if not event_ids:
        return set()
    found = await session.execute(_PROCESSED, {"ids": list(event_ids)})
    return set(found.scalars())
