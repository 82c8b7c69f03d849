"""Use cases of the classes feature: they return ids; the responses are read by :mod:`.queries`.

Every statement is scoped to the calling teacher (``created_by_user_id``) in its WHERE clause,
so another teacher's class is indistinguishable from a missing one.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.classes.models import SchoolClass
from class_management_service.classes.queries import class_not_found
from class_management_service.classes.read_only import ensure_writable
from class_management_service.classes.schemas import (
    ClassCreate,
    ClassCreatedV1,
    ClassUpdate,
    ClassUpdatedV1,
)
from class_management_service.courses.reference import course_id
from class_management_service.errors import NotFound
from class_management_service.messaging import topics
from class_management_service.notifications import payloads as notifications
from class_management_service.notifications.outbox import add_notification
from class_management_service.observability.context import current_correlation_id
from class_management_service.outbox.writer import add_outbox_event
from class_management_service.unit_of_work import UnitOfWork, lock_for_no_key_update

AGGREGATE_TYPE = "class"


async def create_class(uow: UnitOfWork, teacher_id: str, request: ClassCreate) -> uuid.UUID:
    session = uow.session
    (code,) = request.course_codes
    school_class = SchoolClass(
        id=uuid.uuid4(), name=request.name, created_by_user_id=teacher_id, course_id=course_id(code)
    )
    session.add(school_class)
    event = ClassCreatedV1(
        class_id=str(school_class.id),
        class_designation=request.name,
        course_codes=[code],
        user_id=teacher_id,
        correlation_id=current_correlation_id(),
        timestamp=datetime.now(UTC),
    )
    publish_class_event(session, topics.CLASS_CREATED, school_class.id, event)
    add_notification(
        session,
        notifications.class_created(
            teacher_id=teacher_id,  # the owner: the class was just created with it
            class_id=school_class.id,
            class_name=request.name,
            course_codes=[code.value],
            correlation_id=event.correlation_id,
            now=event.timestamp,
        ),
    )
    await uow.commit()
    return school_class.id


async def update_class(
    uow: UnitOfWork, teacher_id: str, class_id: uuid.UUID, request: ClassUpdate
) -> None:
    session = uow.session
    school_class = await lock_owned_class(session, teacher_id, class_id)
    await ensure_writable(session, teacher_id, [class_id])

    new_name = request.name if request.name not in (None, school_class.name) else None
    new_code = request.course_codes[0] if request.course_codes else None
    if new_code is not None and course_id(new_code) == school_class.course_id:
        new_code = None
    if new_name is None and new_code is None:
        return  # nothing changes, so nothing is published either

    if new_name is not None:
        school_class.name = new_name
    if new_code is not None:
        school_class.course_id = course_id(new_code)
    event = ClassUpdatedV1(
        class_id=str(class_id),
        class_designation=new_name,
        course_codes=[new_code] if new_code is not None else None,
        user_id=teacher_id,
        correlation_id=current_correlation_id(),
        timestamp=datetime.now(UTC),
    )
    publish_class_event(session, topics.CLASS_UPDATED, class_id, event)
    await uow.commit()


async def delete_class(uow: UnitOfWork, teacher_id: str, class_id: uuid.UUID) -> None:
    """Memberships go with the class (FK cascade); the contract has no deletion event."""
    await ensure_writable(uow.session, teacher_id, [class_id])
    deleted = await uow.session.scalar(
        delete(SchoolClass)
        .where(SchoolClass.id == class_id, SchoolClass.created_by_user_id == teacher_id)
        .returning(SchoolClass.id)
    )
    if deleted is None:
        raise class_not_found(class_id)
    await uow.commit()


async def ensure_owned_classes(
    session: AsyncSession,
    teacher_id: str,
    class_ids: Collection[uuid.UUID],
    *,
    lock: bool = False,
) -> None:
    """Raise NotFound unless the teacher owns every one of ``class_ids``.

    With ``lock``, the classes are held with FOR KEY SHARE until the transaction ends: the lock
    a foreign-key check takes, so none can be deleted before memberships that reference them
    commit (which would be an FK error, i.e. a 500), while renames and other membership changes
    go on unblocked.
    """
    if not class_ids:
        return
    statement = select(SchoolClass.id).where(
        SchoolClass.id.in_(class_ids), SchoolClass.created_by_user_id == teacher_id
    )
    if lock:
        statement = statement.with_for_update(read=True, key_share=True)
    found = set((await session.scalars(statement)).all())
    missing = sorted(str(class_id) for class_id in set(class_ids) - found)
    if missing:
        raise NotFound("Class not found.", {"class_ids": missing})


async def lock_owned_class(
    session: AsyncSession, teacher_id: str, class_id: uuid.UUID
) -> SchoolClass:
    """The teacher's class, locked until the transaction ends (another teacher's: NotFound)."""
    # FOR NO KEY UPDATE: serializes changes of this class without blocking the foreign-key
    # checks of concurrent membership inserts (the key never changes).
    return await lock_for_no_key_update(
        session,
        select(SchoolClass).where(
            SchoolClass.id == class_id, SchoolClass.created_by_user_id == teacher_id
        ),
        lambda: class_not_found(class_id),
    )


def publish_class_event(
    session: AsyncSession,
    topic: str,
    class_id: uuid.UUID,
    event: ClassCreatedV1 | ClassUpdatedV1,
) -> None:
    """Queue the event in the caller's transaction (keyed by the class id)."""
    add_outbox_event(
        session,
        topic=topic,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=class_id,
        data=event.model_dump(mode="json"),
        correlation_id=event.correlation_id,
    )
