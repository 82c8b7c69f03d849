"""Students' right to erasure (GDPR article 17); the export (articles 15 and 20) is
:mod:`.export`.

Both follow the tables that refer to a student (the foreign keys to ``students``): the export
has one section per such table (``export.EXPORT_SECTIONS``, a query each), the erasure one step
per table whose rows keep something personal beside the student's id (:data:`ERASURE_STEPS`). A
new table referring to students adds an entry to each; the export test walks the schema's
foreign keys, so a table without its section fails it.

Erasure keeps the student's id as a pseudonym: the essays stay linked to it, so the platform's
results stay consistent, while names, e-mail and legal name are gone from every table, the
outbox's rows included (published or not: the outbox is a table too).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Executable,
    and_,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.associations.domain import HistoryMethod
from class_management_service.associations.models import EssayStudentAssociation
from class_management_service.classes.models import ClassMembership
from class_management_service.messaging import topics
from class_management_service.notifications.outbox import AGGREGATE_TYPE as TEACHER_AGGREGATE
from class_management_service.observability.context import current_correlation_id
from class_management_service.outbox.models import OutboxEvent
from class_management_service.students.models import Student
from class_management_service.students.schemas import StudentErasedV1
from class_management_service.students.service import (
    AGGREGATE_TYPE,
    lock_owned_student,
    publish_student_event,
)
from class_management_service.unit_of_work import UnitOfWork

PSEUDONYM_FIRST_NAME = "Erased"
PSEUDONYM_LAST_NAME = "student"
PSEUDONYM = f"{PSEUDONYM_FIRST_NAME} {PSEUDONYM_LAST_NAME}"
# The student's personal fields, by the student resource's names.
PERSONAL_FIELDS = ("first_name", "last_name", "legal_full_name", "email")


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure step may record: whose data, by whom, in which request."""

    student_id: uuid.UUID
    teacher_id: str
    correlation_id: uuid.UUID


def _scrub_associations(erasure: Erasure) -> Executable:
    # A file name often carries its author's name, and match reasons may quote it; the link
    # itself (essay → pseudonymous student, status, confidence, decision) stays.
    a = EssayStudentAssociation
    return (
        update(a)
        .where(a.student_id == erasure.student_id)
        .values(filename=None, match_reasons=[])
        .execution_options(synchronize_session=False)
    )


def _scrub_suggestions(erasure: Erasure) -> Executable:
    # The NLP's reasons for suggesting the student for other essays (the ranked alternatives)
    # may quote the name as well; the suggestion itself (id, confidence) stays. No index serves
    # the containment test: an erasure is rare, and an index would cost every ingested essay.
    return text(
        """
        UPDATE essay_student_associations AS a
        SET suggestions = (
            SELECT jsonb_agg(
                CASE WHEN s.value ->> 'student_id' = CAST(:student_id AS text)
                     THEN jsonb_set(s.value, '{match_reasons}', '[]'::jsonb)
                     ELSE s.value END
                ORDER BY s.ordinality)
            FROM jsonb_array_elements(a.suggestions) WITH ORDINALITY AS s
        )
        WHERE a.suggestions @> jsonb_build_array(
            jsonb_build_object('student_id', CAST(:student_id AS text)))
        """
    ).bindparams(student_id=str(erasure.student_id))


def _record_in_history(erasure: Erasure) -> Executable:
    # Each essay link of the student gets its "erasure" entry: the link stays as it was (same
    # student, same status), who erased and in which request is what the entry records.
    return text(
        """
        INSERT INTO association_history (
            association_id, essay_id, batch_id, actor, method,
            from_student_id, to_student_id, from_status, to_status, correlation_id
        )
        SELECT id, essay_id, batch_id, CAST(:actor AS text), CAST(:method AS text),
               student_id, student_id, status, status, CAST(:correlation_id AS uuid)
        FROM essay_student_associations
        WHERE student_id = CAST(:student_id AS uuid)
        ORDER BY essay_id
        """
    ).bindparams(
        actor=erasure.teacher_id,
        method=HistoryMethod.ERASURE.value,
        correlation_id=erasure.correlation_id,
        student_id=erasure.student_id,
    )


# Per table that keeps something personal beside the student's id, the statement removing it
# (and the history's entry of the erasure).
ERASURE_STEPS: tuple[Callable[[Erasure], Executable], ...] = (
    _scrub_associations,
    _scrub_suggestions,
    _record_in_history,
)


async def erase_student(uow: UnitOfWork, teacher_id: str, student_id: uuid.UUID) -> None:
    """Erase the teacher's student's personal data; an erased student stays as it is and
    nothing is published (idempotent)."""
    session = uow.session
    student = await lock_owned_student(session, teacher_id, student_id)
    if student.erased_at is not None:
        return
    erased = [field for field in PERSONAL_FIELDS if getattr(student, field) is not None]
    erasure = Erasure(student_id, teacher_id, current_correlation_id())
    await session.execute(
        update(Student)
        .where(Student.id == student_id)
        .values(
            first_name=PSEUDONYM_FIRST_NAME,
            last_name=PSEUDONYM_LAST_NAME,
            legal_full_name=None,
            email=None,
            erased_at=func.now(),
            updated_at=func.now(),
        )
        .execution_options(synchronize_session=False)
    )
    # Memberships go, archived classes' too (the right to erasure outranks the archive): an
    # erased student is on no roster, so no new essay can be linked to them.
    removed = sorted(
        await session.scalars(
            delete(ClassMembership)
            .where(ClassMembership.student_id == student_id)
            .returning(ClassMembership.class_id)
        )
    )
    for step in ERASURE_STEPS:
        await session.execute(step(erasure))
    await _scrub_outbox(session, erasure)
    event = StudentErasedV1(
        student_id=str(student_id),
        first_name=PSEUDONYM_FIRST_NAME,
        last_name=PSEUDONYM_LAST_NAME,
        remove_class_ids=[str(class_id) for class_id in removed] or None,
        updated_by_user_id=teacher_id,
        correlation_id=erasure.correlation_id,
        timestamp=datetime.now(UTC),
        erased_fields=erased,
    )
    publish_student_event(session, topics.STUDENT_UPDATED, student_id, event)
    await uow.commit()


# In the student's own events (StudentCreatedV1/StudentUpdatedV1): field → its erased value.
_EVENT_REPLACEMENTS: dict[str, str | None] = {
    "first_name": PSEUDONYM_FIRST_NAME,
    "last_name": PSEUDONYM_LAST_NAME,
    "student_email": None,
}


def scrubbed_envelope(envelope: dict[str, Any], student_id: str) -> dict[str, Any]:
    """``envelope`` with the student's names and e-mail replaced by the pseudonym (pure): in the
    student's own events, and in teacher notifications naming the student."""
    data = dict(envelope["data"])
    if data.get("student_id") == student_id:
        for field, replacement in _EVENT_REPLACEMENTS.items():
            if data.get(field) is not None:
                data[field] = replacement
    payload = data.get("payload")
    if isinstance(payload, dict) and payload.get("student_id") == student_id:
        payload = dict(payload)
        name = payload.get("student_name")
        if isinstance(name, str) and name:
            payload["student_name"] = PSEUDONYM
            payload["message"] = str(payload.get("message", "")).replace(name, PSEUDONYM)
        data["payload"] = payload
    return {**envelope, "data": data}


async def _scrub_outbox(session: AsyncSession, erasure: Erasure) -> None:
    """Rewrite the outbox rows naming the student: pending ones then go out pseudonymous, and
    published ones no longer keep the names. No index serves the notifications' JSON path: an
    erasure is rare, and an index would cost every outbox write."""
    student = str(erasure.student_id)
    rows = await session.execute(
        select(OutboxEvent.id, OutboxEvent.envelope)
        .where(
            or_(
                and_(
                    OutboxEvent.aggregate_type == AGGREGATE_TYPE,
                    OutboxEvent.aggregate_id == student,
                ),
                and_(
                    OutboxEvent.aggregate_type == TEACHER_AGGREGATE,
                    OutboxEvent.aggregate_id == erasure.teacher_id,
                    OutboxEvent.envelope["data"]["payload"]["student_id"].astext == student,
                ),
            )
        )
        .order_by(OutboxEvent.id)
        .with_for_update()
    )
    changes = [
        {"id": event_id, "envelope": scrubbed}
        for event_id, envelope in rows
        if (scrubbed := scrubbed_envelope(envelope, student)) != envelope
    ]
    if changes:
        await session.execute(update(OutboxEvent), changes)
