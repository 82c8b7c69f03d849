"""Term-end archive (Google Classroom's ACTIVE/ARCHIVED course states): archive or unarchive one
class, or archive every class of a course at once.

An archived class keeps all its data and is still served (GET, ``?include_archived=true`` lists,
the roster for batches already in flight); :mod:`.read_only` refuses writes touching it. Each
change of state publishes ``ClassUpdatedV1`` (:class:`ClassArchiveChangedV1`) through the outbox.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.classes.models import SchoolClass
from class_management_service.classes.schemas import ClassArchiveChangedV1
from class_management_service.classes.service import lock_owned_class, publish_class_event
from class_management_service.courses.domain import CourseCode
from class_management_service.courses.reference import course_id
from class_management_service.messaging import topics
from class_management_service.observability.context import current_correlation_id
from class_management_service.unit_of_work import UnitOfWork


async def set_archived(
    uow: UnitOfWork, teacher_id: str, class_id: uuid.UUID, *, archived: bool
) -> None:
    """Archive (``archived``) or unarchive the teacher's class; a class already in that state
    stays as it is and nothing is published."""
    session = uow.session
    school_class = await lock_owned_class(session, teacher_id, class_id)
    if (school_class.archived_at is not None) == archived:
        return
    archived_at = await session.scalar(
        update(SchoolClass)
        .where(SchoolClass.id == class_id)
        .values(archived_at=func.now() if archived else None, updated_at=func.now())
        .returning(SchoolClass.archived_at)
        .execution_options(synchronize_session=False)
    )
    _publish(session, teacher_id, class_id, archived_at)
    await uow.commit()


async def archive_course(uow: UnitOfWork, teacher_id: str, course: CourseCode) -> list[uuid.UUID]:
    """Archive every active class of the teacher in ``course``; the ids of those archived."""
    session = uow.session
    # Locked in id order first: two bulk archives (or a bulk archive and the write guard, which
    # locks in id order too) never wait for each other in a cycle.
    class_ids = list(
        await session.scalars(
            select(SchoolClass.id)
            .where(
                SchoolClass.created_by_user_id == teacher_id,
                SchoolClass.course_id == course_id(course),
                SchoolClass.archived_at.is_(None),
            )
            .order_by(SchoolClass.id)
            .with_for_update(key_share=True)
        )
    )
    if not class_ids:
        return []
    archived = await session.execute(
        update(SchoolClass)
        .where(SchoolClass.id.in_(class_ids))
        .values(archived_at=func.now(), updated_at=func.now())
        .returning(SchoolClass.id, SchoolClass.archived_at)
        .execution_options(synchronize_session=False)
    )
    for class_id, archived_at in sorted(archived.all()):
        _publish(session, teacher_id, class_id, archived_at)
    await uow.commit()
    return class_ids


def _publish(
    session: AsyncSession, teacher_id: str, class_id: uuid.UUID, archived_at: datetime | None
) -> None:
    event = ClassArchiveChangedV1(
        class_id=str(class_id),
        class_designation=None,
        course_codes=None,
        user_id=teacher_id,
        correlation_id=current_correlation_id(),
        timestamp=datetime.now(UTC),
        archived=archived_at is not None,
        archived_at=archived_at,
    )
    publish_class_event(session, topics.CLASS_UPDATED, class_id, event)
