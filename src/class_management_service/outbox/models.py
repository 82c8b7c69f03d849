from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    FetchedValue,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from class_management_service.db import Base


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    # Terminal: gave up after the maximum number of attempts; no longer blocks polling.
    FAILED = "failed"


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'published', 'failed')", name="status"),
        # The relay only ever scans unpublished rows, in due order.
        Index(
            "ix_outbox_events_pending_due",
            "next_attempt_at",
            postgresql_where="status = 'pending'",
        ),
        # The failed-count gauge must not scan the (ever-growing) published rows.
        Index("ix_outbox_events_failed", "created_at", postgresql_where="status = 'failed'"),
        # The relay's "is an earlier row of this aggregate still pending?" probe.
        Index(
            "ix_outbox_events_pending_aggregate",
            "aggregate_type",
            "aggregate_id",
            "aggregate_sequence",
            postgresql_where="status = 'pending'",
        ),
        # Retention deletes the oldest published rows first (migration 0008).
        Index(
            "ix_outbox_events_published_at",
            "published_at",
            postgresql_where="status = 'published'",
        ),
    )

    # The envelope's event_id: it never changes, so every re-send carries the same id.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    aggregate_type: Mapped[str] = mapped_column(String(50))
    aggregate_id: Mapped[str] = mapped_column(String(255))
    # 1, 2, 3, ... per aggregate in commit order, set by the database (trigger of migration
    # 0005, from OutboxAggregateSequence) for every insert, COPY included; the relay publishes
    # an aggregate's events in this order.
    aggregate_sequence: Mapped[int] = mapped_column(BigInteger, server_default=FetchedValue())
    topic: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(255))
    # The Kafka key (the aggregate id) and the whole serialized envelope, sent byte for byte.
    message_key: Mapped[str] = mapped_column(String(255))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxAggregateSequence(Base):
    """The last sequence number handed out per aggregate. Its row lock, taken by the insert
    trigger and held until the writer's commit, orders the writers of one aggregate."""

    __tablename__ = "outbox_aggregate_sequences"

    aggregate_type: Mapped[str] = mapped_column(String(50), primary_key=True)
    aggregate_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger)
