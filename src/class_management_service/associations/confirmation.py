"""Finalizing a batch: record it once and emit StudentAssociationsConfirmedV1 via the outbox.

Called inside the transaction that made the last decision (teacher or timeout), with the batch's
association rows locked. The ``batch_confirmations`` row (primary key batch_id, inserted with
``ON CONFLICT DO NOTHING``) is the once-only guard: whoever inserts it writes the outbox event in
the same transaction; anyone else finds the batch already finalized and publishes nothing. The
class owner's ``student_associations_confirmed`` notification goes into the same transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.associations.decisions import (
    AssociationState,
    batch_complete,
    summarize,
)
from class_management_service.associations.domain import AssociationStatus, ValidationMethod
from class_management_service.associations.models import BatchConfirmation, EssayStudentAssociation
from class_management_service.associations.schemas import (
    StudentAssociationConfirmation,
    StudentAssociationsConfirmedV1,
)
from class_management_service.classes.models import SchoolClass
from class_management_service.courses.models import Course
from class_management_service.messaging import topics
from class_management_service.notifications import payloads as notifications
from class_management_service.notifications.outbox import add_notification
from class_management_service.observability.context import continued_trace
from class_management_service.outbox.writer import add_outbox_event

AGGREGATE_TYPE = "batch"


@dataclass(frozen=True)
class Finalized:
    batch_id: uuid.UUID
    class_id: uuid.UUID
    #: The owner of the batch's class (whom notifications about it go to).
    teacher_id: str
    event_id: uuid.UUID
    payload: StudentAssociationsConfirmedV1


@dataclass(frozen=True)
class _FinalRow:
    essay_id: uuid.UUID
    class_id: uuid.UUID
    status: AssociationStatus
    student_id: uuid.UUID | None
    confidence_score: float | None
    validation_method: str | None
    validated_by: str | None
    validated_at: datetime | None


def build_confirmed_event(
    *,
    batch_id: uuid.UUID,
    class_id: uuid.UUID,
    course_code: str,
    rows: list[_FinalRow],
    timeout_triggered: bool,
    now: datetime,
) -> StudentAssociationsConfirmedV1:
    """The event payload for a finalized batch (pure)."""
    states = [
        AssociationState(r.essay_id, r.status, r.student_id, r.confidence_score) for r in rows
    ]
    return StudentAssociationsConfirmedV1(
        entity_id=str(batch_id),
        parent_id=str(class_id),
        timestamp=now,
        batch_id=str(batch_id),
        class_id=str(class_id),
        course_code=course_code,
        associations=[
            StudentAssociationConfirmation(
                essay_id=str(r.essay_id),
                student_id=str(r.student_id) if r.student_id is not None else None,
                confidence_score=r.confidence_score if r.confidence_score is not None else 0.0,
                # A decided row without a method was decided by no one in particular: "auto".
                validation_method=ValidationMethod(
                    r.validation_method or ValidationMethod.AUTO
                ).value,
                validated_by=r.validated_by,
                validated_at=r.validated_at or now,
            )
            for r in rows
        ],
        timeout_triggered=timeout_triggered,
        validation_summary=summarize(states),
    )


async def finalize_if_complete(
    session: AsyncSession,
    *,
    batch_id: uuid.UUID,
    timeout_triggered: bool,
    now: datetime,
    correlation_id: uuid.UUID,
) -> Finalized | None:
    """Finalize the batch if every essay is decided and nobody finalized it yet.

    The caller holds the row locks of the batch and commits; returns None when there is nothing
    to publish (batch still open, or already finalized).
    """
    a = EssayStudentAssociation
    result = await session.execute(
        select(
            a.essay_id,
            a.class_id,
            a.status,
            a.student_id,
            a.confidence_score,
            a.validation_method,
            a.validated_by,
            a.validated_at,
        )
        .where(a.batch_id == batch_id)
        .order_by(a.essay_id)
    )
    rows = [
        _FinalRow(
            essay_id=r.essay_id,
            class_id=r.class_id,
            status=AssociationStatus(r.status),
            student_id=r.student_id,
            confidence_score=r.confidence_score,
            validation_method=r.validation_method,
            validated_by=r.validated_by,
            validated_at=r.validated_at,
        )
        for r in result
    ]
    states = [AssociationState(r.essay_id, r.status, r.student_id) for r in rows]
    if not rows or not batch_complete(states):
        return None
    class_id = rows[0].class_id
    event_id = uuid.uuid4()
    inserted = await session.execute(
        insert(BatchConfirmation)
        .values(
            batch_id=batch_id,
            class_id=class_id,
            timeout_triggered=timeout_triggered,
            event_id=event_id,
            confirmed_at=now,
        )
        .on_conflict_do_nothing(index_elements=[BatchConfirmation.batch_id])
        .returning(BatchConfirmation.batch_id)
    )
    if inserted.scalar_one_or_none() is None:
        return None
    course_code, teacher_id = (
        await session.execute(
            select(Course.course_code, SchoolClass.created_by_user_id)
            .join(SchoolClass, SchoolClass.course_id == Course.id)
            .where(SchoolClass.id == class_id)
        )
    ).one()
    payload = build_confirmed_event(
        batch_id=batch_id,
        class_id=class_id,
        course_code=course_code,
        rows=rows,
        timeout_triggered=timeout_triggered,
        now=now,
    )
    add_outbox_event(
        session,
        topic=topics.STUDENT_ASSOCIATIONS_CONFIRMED,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=batch_id,
        data=payload.model_dump(mode="json"),
        correlation_id=correlation_id,
        event_id=event_id,
    )
    add_notification(
        session,
        notifications.student_associations_confirmed(
            teacher_id=teacher_id, event=payload, correlation_id=correlation_id
        ),
    )
    await session.flush()
    return Finalized(
        batch_id=batch_id,
        class_id=class_id,
        teacher_id=teacher_id,
        event_id=event_id,
        payload=payload,
    )


class Cause(Protocol):
    """The event whose essays the auto-confirm policy decided: its correlation id and trace
    context (JSON, as stored with the rows)."""

    @property
    def correlation_id(self) -> uuid.UUID: ...

    @property
    def trace_context(self) -> str | None: ...


async def finalize_auto_decided(
    session: AsyncSession, causes: Mapping[uuid.UUID, Cause]
) -> list[uuid.UUID]:
    """Finalize each batch (by id, with the event that caused it) whose essays are now all
    decided, in ingestion's transaction (statement 7 of :mod:`.ingestion`); returns those it
    finalized."""
    now = (await session.execute(select(func.now()))).scalar_one()
    finalized = []
    for batch_id in sorted(causes):
        cause = causes[batch_id]
        trace = json.loads(cause.trace_context) if cause.trace_context else None
        with continued_trace(trace, correlation_id=cause.correlation_id):
            done = await finalize_if_complete(
                session,
                batch_id=batch_id,
                timeout_triggered=False,
                now=now,
                correlation_id=cause.correlation_id,
            )
        if done is not None:
            finalized.append(batch_id)
    return finalized
