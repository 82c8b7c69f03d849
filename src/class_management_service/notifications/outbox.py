"""Writing teacher notifications to the outbox, in the transaction of the change they report.

The Kafka key is the teacher id (one teacher's notifications stay in order); the envelope's
``event_type`` is the topic and its correlation id the notification's (the triggering request's
or event's). The teacher is always the class's owner as stored, never an id from a request.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.classes.models import SchoolClass
from class_management_service.messaging import topics
from class_management_service.notifications import payloads
from class_management_service.notifications.schemas import TeacherNotificationRequestedV1
from class_management_service.outbox.writer import add_outbox_event

AGGREGATE_TYPE = "teacher"


def add_notification(session: AsyncSession, notification: TeacherNotificationRequestedV1) -> None:
    add_outbox_event(
        session,
        topic=topics.TEACHER_NOTIFICATION_REQUESTED,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=notification.teacher_id,
        data=notification.model_dump(mode="json"),
        correlation_id=uuid.UUID(notification.correlation_id),
    )


async def notify_student_added(
    session: AsyncSession,
    *,
    class_ids: Collection[uuid.UUID],
    student_id: uuid.UUID,
    first_name: str,
    last_name: str,
    correlation_id: uuid.UUID,
    now: datetime,
) -> None:
    """One ``student_added_to_class`` per class the student joined, to that class's owner."""
    if not class_ids:
        return
    classes = await session.execute(
        select(SchoolClass.id, SchoolClass.name, SchoolClass.created_by_user_id)
        .where(SchoolClass.id.in_(class_ids))
        .order_by(SchoolClass.id)
    )
    for class_id, name, owner in classes:
        add_notification(
            session,
            payloads.student_added_to_class(
                teacher_id=owner,
                class_id=class_id,
                class_name=name,
                student_id=student_id,
                first_name=first_name,
                last_name=last_name,
                correlation_id=correlation_id,
                now=now,
            ),
        )


async def notify_roster_imported(
    session: AsyncSession,
    *,
    class_id: uuid.UUID,
    students_added: int,
    correlation_id: uuid.UUID,
    now: datetime,
) -> None:
    """One notification per import that added students to the class (none if it added none)."""
    if students_added == 0:
        return
    name, owner = (
        await session.execute(
            select(SchoolClass.name, SchoolClass.created_by_user_id).where(
                SchoolClass.id == class_id
            )
        )
    ).one()
    add_notification(
        session,
        payloads.students_imported_to_class(
            teacher_id=owner,
            class_id=class_id,
            class_name=name,
            students_added=students_added,
            correlation_id=correlation_id,
            now=now,
        ),
    )
