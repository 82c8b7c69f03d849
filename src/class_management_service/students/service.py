"""Use cases of the students feature: create, update and delete, with class membership.

Every statement is scoped to the calling teacher (``created_by_user_id``), so another teacher's
student is indistinguishable from a missing one. Unique and foreign-key violations are answered
as 409s from the database's own verdict, so concurrent requests cannot turn them into 500s.
The use cases return the student's id; the responses are read by :mod:`.queries`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.classes.read_only import ensure_writable
from class_management_service.classes.service import ensure_owned_classes
from class_management_service.db import sqlstate
from class_management_service.errors import Conflict, ValidationFailed
from class_management_service.messaging import topics
from class_management_service.notifications.outbox import notify_student_added
from class_management_service.observability.context import current_correlation_id
from class_management_service.outbox.writer import add_outbox_event
from class_management_service.students.models import Student
from class_management_service.students.queries import student_erased, student_not_found
from class_management_service.students.schemas import (
    MEMBERSHIP_FIELDS,
    StudentCreate,
    StudentCreatedV1,
    StudentUpdate,
    StudentUpdatedV1,
)
from class_management_service.unit_of_work import UnitOfWork, lock_for_no_key_update

AGGREGATE_TYPE = "student"

UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"


# The columns StudentUpdatedV1 reports, by its own names.
_EVENT_FIELDS = {"first_name": "first_name", "last_name": "last_name", "email": "student_email"}


def _email_taken(email: str | None) -> Conflict:
    return Conflict("You already have a student with this e-mail.", {"email": email})


def _unique(ids: Iterable[uuid.UUID] | None) -> list[uuid.UUID]:
    """Duplicates removed, first-seen order kept."""
    return list(dict.fromkeys(ids or ()))


async def create_student(uow: UnitOfWork, teacher_id: str, request: StudentCreate) -> uuid.UUID:
    session = uow.session
    class_ids = _unique(request.class_ids)
    await ensure_owned_classes(session, teacher_id, class_ids, lock=True)
    await ensure_writable(session, teacher_id, class_ids)
    name = request.person_name
    # ON CONFLICT DO NOTHING: a taken e-mail (even one committed a moment ago by a concurrent
    # request) is a clean "no row" rather than an aborted transaction.
    student_id: uuid.UUID | None = await session.scalar(
        insert(Student)
        .values(
            id=uuid.uuid4(),
            # Every request field but the memberships is the column of the same name.
            **name.model_dump(),
            **request.model_dump(exclude={"person_name", *MEMBERSHIP_FIELDS}),
            created_by_user_id=teacher_id,
        )
        .on_conflict_do_nothing(index_elements=[Student.created_by_user_id, Student.email_key])
        .returning(Student.id)
    )
    if student_id is None:
        raise _email_taken(request.email)
    if class_ids:
        # One statement for all the classes (not one per row): the membership trigger then
        # locks them in id order at once, as every other membership change does.
        await session.execute(
            insert(ClassMembership).values(
                [{"class_id": class_id, "student_id": student_id} for class_id in class_ids]
            )
        )
    publish_student_event(
        session,
        topics.STUDENT_CREATED,
        student_id,
        StudentCreatedV1(
            student_id=str(student_id),
            first_name=name.first_name,
            last_name=name.last_name,
            student_email=request.email,
            class_ids=[str(class_id) for class_id in class_ids],
            created_by_user_id=teacher_id,
            correlation_id=current_correlation_id(),
            timestamp=datetime.now(UTC),
        ),
    )
    await notify_student_added(
        session,
        class_ids=class_ids,
        student_id=student_id,
        first_name=name.first_name,
        last_name=name.last_name,
        correlation_id=current_correlation_id(),
        now=datetime.now(UTC),
    )
    await uow.commit()
    return student_id


async def update_student(
    uow: UnitOfWork, teacher_id: str, student_id: uuid.UUID, request: StudentUpdate
) -> None:
    session = uow.session
    add_ids, remove_ids = _unique(request.add_class_ids), _unique(request.remove_class_ids)
    both = sorted(str(class_id) for class_id in set(add_ids) & set(remove_ids))
    if both:
        raise ValidationFailed("A class cannot be both added and removed.", {"class_ids": both})
    student = await lock_owned_student(session, teacher_id, student_id)
    if student.erased_at is not None:
        raise student_erased(student_id)
    await ensure_owned_classes(session, teacher_id, add_ids, lock=True)
    await ensure_writable(session, teacher_id, [*add_ids, *remove_ids])

    event = StudentUpdatedV1(
        student_id=str(student_id),
        updated_by_user_id=teacher_id,
        correlation_id=current_correlation_id(),
        timestamp=datetime.now(UTC),
    )
    # Only the fields present in the request change (the name fields too); every field but
    # the memberships is the column of the same name.
    fields = [
        (request, request.model_fields_set - {"person_name", *MEMBERSHIP_FIELDS}),
        (request.person_name, request.person_name.model_fields_set if request.person_name else ()),
    ]
    row_changed = False
    for source, names in fields:
        for field in names:
            value = getattr(source, field)
            if value is not None and value != getattr(student, field):
                setattr(student, field, value)
                row_changed = True
                if field in _EVENT_FIELDS:
                    setattr(event, _EVENT_FIELDS[field], value)
    try:
        await session.flush()
    except IntegrityError as exc:
        if sqlstate(exc) == UNIQUE_VIOLATION:
            raise _email_taken(request.email) from None
        raise

    if add_ids and remove_ids:
        # The membership triggers lock each statement's classes in id order (their
        # student_count); a change that adds and removes takes them all first, in that order,
        # so two such changes in crossing directions wait for each other instead of deadlocking.
        await session.execute(
            select(SchoolClass.id)
            .where(SchoolClass.id.in_([*add_ids, *remove_ids]))
            .order_by(SchoolClass.id)
            .with_for_update(key_share=True)
        )
    added = await _add_memberships(session, student_id, add_ids)
    removed = await _remove_memberships(session, student_id, remove_ids)
    if added:
        event.add_class_ids = [str(class_id) for class_id in added]
    if removed:
        event.remove_class_ids = [str(class_id) for class_id in removed]
    if not (row_changed or added or removed):
        return  # nothing changed, so nothing is published
    if not row_changed:
        # Memberships are part of the student resource: its updated_at moves with them.
        student.updated_at = func.now()
    publish_student_event(session, topics.STUDENT_UPDATED, student_id, event)
    await notify_student_added(
        session,
        class_ids=added,
        student_id=student_id,
        first_name=student.first_name,
        last_name=student.last_name,
        correlation_id=event.correlation_id,
        now=event.timestamp,
    )
    await uow.commit()


async def delete_student(uow: UnitOfWork, teacher_id: str, student_id: uuid.UUID) -> None:
    """Memberships go with the student (so none of an archived class); a student who authored
    essays stays (409)."""
    await ensure_writable(
        uow.session,
        teacher_id,
        select(ClassMembership.class_id).where(ClassMembership.student_id == student_id),
    )
    try:
        deleted = await uow.session.scalar(
            delete(Student)
            .where(Student.id == student_id, Student.created_by_user_id == teacher_id)
            .returning(Student.id)
        )
    except IntegrityError as exc:
        if sqlstate(exc) == _FOREIGN_KEY_VIOLATION:
            erase = f"/v1/classes/students/{student_id}/erase"
            raise Conflict(
                "The student is linked to essays (essay-student associations) and cannot be "
                f"deleted; erase the student's personal data instead (POST {erase}).",
                {"student_id": str(student_id), "erase": erase},
            ) from None
        raise
    if deleted is None:
        raise student_not_found(student_id)
    await uow.commit()


async def _add_memberships(
    session: AsyncSession, student_id: uuid.UUID, class_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """The classes the student actually joined (already-member classes are skipped)."""
    if not class_ids:
        return []
    result = await session.scalars(
        insert(ClassMembership)
        .values([{"class_id": class_id, "student_id": student_id} for class_id in class_ids])
        .on_conflict_do_nothing()
        .returning(ClassMembership.class_id)
    )
    return list(result.all())


async def _remove_memberships(
    session: AsyncSession, student_id: uuid.UUID, class_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """The classes the student actually left (not being a member is not an error)."""
    if not class_ids:
        return []
    result = await session.scalars(
        delete(ClassMembership)
        .where(ClassMembership.student_id == student_id, ClassMembership.class_id.in_(class_ids))
        .returning(ClassMembership.class_id)
    )
    return list(result.all())


async def lock_owned_student(
    session: AsyncSession, teacher_id: str, student_id: uuid.UUID
) -> Student:
    """The teacher's student, locked until the transaction ends (another teacher's: NotFound)."""
    # FOR NO KEY UPDATE: concurrent changes of this student queue up, while memberships
    # referencing it (foreign-key checks) are not blocked.
    return await lock_for_no_key_update(
        session,
        select(Student).where(Student.id == student_id, Student.created_by_user_id == teacher_id),
        lambda: student_not_found(student_id),
    )


def publish_student_event(
    session: AsyncSession,
    topic: str,
    student_id: uuid.UUID,
    event: StudentCreatedV1 | StudentUpdatedV1,
) -> None:
    """Queue the event in the caller's transaction (keyed by the student id)."""
    add_outbox_event(
        session,
        topic=topic,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=student_id,
        data=event.model_dump(mode="json"),
        correlation_id=event.correlation_id,
    )
