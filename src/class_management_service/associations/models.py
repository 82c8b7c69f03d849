from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from class_management_service.associations.domain import (
    STUDENTLESS_STATUSES,
    AssociationStatus,
    HistoryMethod,
    ValidationMethod,
)
from class_management_service.db import Base, TimestampMixin


def _sql_in(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class EssayStudentAssociation(TimestampMixin, Base):
    """One row per essay: the current (suggested or decided) author of that essay."""

    __tablename__ = "essay_student_associations"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_in(list(AssociationStatus))})", name="status"),
        CheckConstraint(
            "validation_method IS NULL OR "
            f"validation_method IN ({_sql_in(list(ValidationMethod))})",
            name="validation_method",
        ),
        # The student column and the status must tell the same story.
        CheckConstraint(
            f"(student_id IS NULL) = (status IN ({_sql_in(list(STUDENTLESS_STATUSES))}))",
            name="student_matches_status",
        ),
        CheckConstraint(
            "confidence_score IS NULL OR (confidence_score >= 0 AND confidence_score <= 1)",
            name="confidence_range",
        ),
        # The timeout monitor scans undecided rows oldest first (no_match too: a batch of only
        # no-match essays must still time out and be finalized).
        Index(
            "ix_essay_student_associations_undecided_created",
            "created_at",
            postgresql_where="status IN ('pending_validation', 'no_match')",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # One essay has at most one association: redelivered or concurrent events cannot add a second.
    essay_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(index=True)
    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    # RESTRICT: a student who authored essays cannot silently vanish from the record.
    student_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("students.id", ondelete="RESTRICT"), index=True
    )
    confidence_score: Mapped[float | None] = mapped_column(Float)
    match_reasons: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    # Every valid suggestion, ranked (selection.py): [{student_id, confidence_score,
    # match_reasons}, ...]. The review's alternatives; a reassignment's confidence.
    suggestions: Mapped[list[dict[str, object]]] = mapped_column(JSONB, server_default="[]")
    # Unbounded, as in the platform's models: a long filename must never fail a batch.
    filename: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    validation_method: Mapped[str | None] = mapped_column(String(16))
    validated_by: Mapped[str | None] = mapped_column(String(255))
    validated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_event_id: Mapped[uuid.UUID | None] = mapped_column()
    # The suggesting event's correlation id and W3C trace context (traceparent/tracestate):
    # the timeout's StudentAssociationsConfirmedV1 continues them (NULL: rows from before).
    correlation_id: Mapped[uuid.UUID | None] = mapped_column()
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)


class BatchConfirmation(Base):
    """Marks a batch as finalized.

    Inserting this row is what makes StudentAssociationsConfirmedV1 publish once per batch.
    """

    __tablename__ = "batch_confirmations"

    batch_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    timeout_triggered: Mapped[bool] = mapped_column()
    event_id: Mapped[uuid.UUID] = mapped_column()
    confirmed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AssociationHistory(Base):
    """One row per change of an association: who, when, from -> to, how, and in which request or
    event. Appended in the change's transaction, never updated."""

    __tablename__ = "association_history"
    __table_args__ = (
        CheckConstraint(f"method IN ({_sql_in(list(HistoryMethod))})", name="method"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    association_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("essay_student_associations.id", ondelete="CASCADE"), index=True
    )
    essay_id: Mapped[uuid.UUID] = mapped_column()
    batch_id: Mapped[uuid.UUID] = mapped_column()
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    actor: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text)
    # SET NULL: the record of a change outlives a student deleted since.
    from_student_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("students.id", ondelete="SET NULL")
    )
    to_student_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("students.id", ondelete="SET NULL")
    )
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    correlation_id: Mapped[uuid.UUID | None] = mapped_column()
