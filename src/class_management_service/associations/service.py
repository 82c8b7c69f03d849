"""Use cases of the teacher review: list a batch's associations, record decisions.

Ownership is part of every query (the batch's class must belong to the teacher); another
teacher's batch is indistinguishable from a missing one (404).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.associations import queries
from class_management_service.associations.confirmation import finalize_if_complete
from class_management_service.associations.decisions import (
    AssociationState,
    DecisionConflict,
    InvalidDecision,
    TeacherDecision,
    decide_for_teacher,
)
from class_management_service.associations.domain import AssociationStatus, RankedSuggestion
from class_management_service.associations.history import write_transitions
from class_management_service.associations.models import BatchConfirmation, EssayStudentAssociation
from class_management_service.associations.schemas import (
    ConfirmAssociationsResponse,
)
from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.errors import Conflict, NotFound, ValidationFailed
from class_management_service.unit_of_work import UnitOfWork


def _batch_not_found(batch_id: uuid.UUID) -> NotFound:
    return NotFound(f"Batch {batch_id} not found.", {"batch_id": str(batch_id)})


@dataclass(frozen=True)
class LockedRow:
    id: uuid.UUID
    class_id: uuid.UUID
    created_at: datetime
    state: AssociationState
    #: The suggesting event's correlation id and trace context (None: stored before 0003).
    correlation_id: uuid.UUID | None
    trace_context: dict[str, str] | None


def batch_origin(rows: Sequence[LockedRow]) -> tuple[uuid.UUID, dict[str, str]]:
    """The correlation id and trace context of the event that suggested the batch (its oldest
    row's; a fresh correlation id and no trace for rows stored without them), which work the
    batch causes without a request (the timeout) carries on."""
    origins = sorted(
        (row.created_at, row.id, row.correlation_id, row.trace_context or {})
        for row in rows
        if row.correlation_id is not None
    )
    if not origins:
        return uuid.uuid4(), {}
    _, _, correlation_id, trace_context = origins[0]
    return correlation_id, dict(trace_context)


async def lock_batch(
    session: AsyncSession,
    *,
    batch_id: uuid.UUID,
    teacher_id: str | None = None,
    skip_locked: bool = False,
) -> list[LockedRow]:
    """Load and lock (FOR UPDATE, in id order) every association of the batch.

    With ``teacher_id``, only a batch of that teacher's class is returned. With ``skip_locked``
    rows another transaction holds are left out (the caller compares with the batch size).
    """
    a = EssayStudentAssociation
    query = (
        select(
            a.id,
            a.class_id,
            a.created_at,
            a.essay_id,
            a.status,
            a.student_id,
            a.confidence_score,
            a.suggestions,
            a.correlation_id,
            a.trace_context,
        )
        .where(a.batch_id == batch_id)
        .order_by(a.id)
        .with_for_update(of=a, skip_locked=skip_locked)
    )
    if teacher_id is not None:
        query = query.join(SchoolClass, SchoolClass.id == a.class_id).where(
            SchoolClass.created_by_user_id == teacher_id
        )
    return [
        LockedRow(
            id=r.id,
            class_id=r.class_id,
            created_at=r.created_at,
            state=AssociationState(
                essay_id=r.essay_id,
                status=AssociationStatus(r.status),
                student_id=r.student_id,
                confidence_score=r.confidence_score,
                suggestions=RankedSuggestion.all_from_json(r.suggestions),
            ),
            correlation_id=r.correlation_id,
            trace_context=r.trace_context,
        )
        for r in await session.execute(query)
    ]


async def is_finalized(session: AsyncSession, batch_id: uuid.UUID) -> bool:
    found = await session.execute(
        select(BatchConfirmation.batch_id).where(BatchConfirmation.batch_id == batch_id)
    )
    return found.first() is not None


async def _roster_members(
    session: AsyncSession, class_ids: set[uuid.UUID], student_ids: set[uuid.UUID]
) -> set[uuid.UUID]:
    if not student_ids:
        return set()
    found = await session.execute(
        select(ClassMembership.student_id).where(
            ClassMembership.class_id.in_(class_ids),
            ClassMembership.student_id.in_(student_ids),
        )
    )
    return set(found.scalars())


async def confirm_associations(
    uow: UnitOfWork,
    *,
    batch_id: uuid.UUID,
    teacher_id: str,
    decisions: Sequence[TeacherDecision],
    now: datetime,
    correlation_id: uuid.UUID,
) -> ConfirmAssociationsResponse:
    """Record a teacher's decisions; finalize and emit the event when the batch is complete."""
    session = uow.session
    rows = await lock_batch(session, batch_id=batch_id, teacher_id=teacher_id)
    if not rows:
        raise _batch_not_found(batch_id)
    # Read after taking the locks: a finalizer that held them has committed by now.
    finalized = await is_finalized(session, batch_id)
    states = {row.state.essay_id: row.state for row in rows}
    requested = {
        d.student_id
        for d in decisions
        if d.confirmed
        and d.student_id is not None
        and d.essay_id in states
        and d.student_id != states[d.essay_id].student_id
    }
    roster = await _roster_members(session, {row.class_id for row in rows}, requested)
    try:
        transitions = decide_for_teacher(states, decisions, roster=roster, finalized=finalized)
    except InvalidDecision as exc:
        raise ValidationFailed(exc.message, exc.details) from exc
    except DecisionConflict as exc:
        raise Conflict(exc.message, exc.details) from exc
    await write_transitions(
        session,
        [(row.id, row.state) for row in rows],
        transitions,
        validated_by=teacher_id,
        actor=teacher_id,
        correlation_id=correlation_id,
        now=now,
    )
    if not finalized:
        await finalize_if_complete(
            session,
            batch_id=batch_id,
            timeout_triggered=False,
            now=now,
            correlation_id=correlation_id,
        )
    view = await queries.get_batch_associations(session, batch_id=batch_id, teacher_id=teacher_id)
    await uow.commit()
    return ConfirmAssociationsResponse(
        **view.model_dump(),
        changed=len(transitions),
        unchanged=len(decisions) - len(transitions),
        associations_confirmed=sum(1 for d in decisions if d.confirmed),
        associations_rejected=sum(1 for d in decisions if not d.confirmed),
    )
