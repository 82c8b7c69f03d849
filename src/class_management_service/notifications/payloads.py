"""Builders of the four notifications this service sends. Pure: no I/O.

Payload field names are the union of the platform's original service and its frontend's
documented types (Part 2 of the contract): where the two name a value differently, both names
are present with the same value (``class_designation``/``class_name``,
``confirmed_count``/``confirmed_associations``, ``auto_confirmed_count``/``processed_students``,
``timeout_hours``/``timeout_duration_seconds`` — one duration in two units).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from class_management_service.associations.schemas import StudentAssociationsConfirmedV1
from class_management_service.notifications.schemas import (
    NotificationCategory,
    NotificationPriority,
    TeacherNotificationRequestedV1,
)

CLASS_CREATED = "class_created"
STUDENT_ADDED_TO_CLASS = "student_added_to_class"
STUDENT_ASSOCIATIONS_CONFIRMED = "student_associations_confirmed"
VALIDATION_TIMEOUT_PROCESSED = "validation_timeout_processed"


def class_created(
    *,
    teacher_id: str,
    class_id: uuid.UUID,
    class_name: str,
    course_codes: Sequence[str],
    correlation_id: uuid.UUID,
    now: datetime,
) -> TeacherNotificationRequestedV1:
    return TeacherNotificationRequestedV1(
        teacher_id=teacher_id,
        notification_type=CLASS_CREATED,
        category=NotificationCategory.CLASS_MANAGEMENT,
        priority=NotificationPriority.STANDARD,
        payload={
            "class_id": str(class_id),
            "class_designation": class_name,
            "class_name": class_name,
            "course_codes": list(course_codes),
            "teacher_id": teacher_id,
            "message": f"Class '{class_name}' created successfully",
        },
        correlation_id=str(correlation_id),
        class_id=str(class_id),
        timestamp=now,
    )


def student_added_to_class(
    *,
    teacher_id: str,
    class_id: uuid.UUID,
    class_name: str,
    student_id: uuid.UUID,
    first_name: str,
    last_name: str,
    correlation_id: uuid.UUID,
    now: datetime,
) -> TeacherNotificationRequestedV1:
    student_name = f"{first_name} {last_name}"
    return TeacherNotificationRequestedV1(
        teacher_id=teacher_id,
        notification_type=STUDENT_ADDED_TO_CLASS,
        category=NotificationCategory.CLASS_MANAGEMENT,
        priority=NotificationPriority.LOW,
        payload={
            "student_id": str(student_id),
            "student_name": student_name,
            "class_id": str(class_id),
            "class_designation": class_name,
            "message": f"Student '{student_name}' added to class '{class_name}'",
        },
        correlation_id=str(correlation_id),
        class_id=str(class_id),
        timestamp=now,
    )


def students_imported_to_class(
    *,
    teacher_id: str,
    class_id: uuid.UUID,
    class_name: str,
    students_added: int,
    correlation_id: uuid.UUID,
    now: datetime,
) -> TeacherNotificationRequestedV1:
    """One ``student_added_to_class`` for a whole roster import (not one per row): no single
    student, so ``student_id``/``student_name`` are null and ``students_added`` counts them."""
    return TeacherNotificationRequestedV1(
        teacher_id=teacher_id,
        notification_type=STUDENT_ADDED_TO_CLASS,
        category=NotificationCategory.CLASS_MANAGEMENT,
        priority=NotificationPriority.LOW,
        payload={
            "student_id": None,
            "student_name": None,
            "students_added": students_added,
            "class_id": str(class_id),
            "class_designation": class_name,
            "message": (
                f"{students_added} student{'' if students_added == 1 else 's'} added to class "
                f"'{class_name}' by roster import"
            ),
        },
        correlation_id=str(correlation_id),
        class_id=str(class_id),
        timestamp=now,
    )


def student_associations_confirmed(
    *, teacher_id: str, event: StudentAssociationsConfirmedV1, correlation_id: uuid.UUID
) -> TeacherNotificationRequestedV1:
    """The batch's final associations (teacher or timeout), from its published event."""
    with_student = sum(1 for a in event.associations if a.student_id is not None)
    return TeacherNotificationRequestedV1(
        teacher_id=teacher_id,
        notification_type=STUDENT_ASSOCIATIONS_CONFIRMED,
        category=NotificationCategory.STUDENT_WORKFLOW,
        priority=NotificationPriority.HIGH,
        payload={
            "batch_id": event.batch_id,
            "confirmed_count": with_student,
            "confirmed_associations": with_student,
            "pending_associations": 0,  # sent once the batch is final
            "associations": [
                {
                    "essay_id": a.essay_id,
                    "student_id": a.student_id,
                    "validation_method": a.validation_method,
                    "confidence_score": a.confidence_score,
                }
                for a in event.associations
            ],
            "validation_summary": event.validation_summary,
            "timeout_triggered": event.timeout_triggered,
            "message": f"Successfully confirmed {with_student} student associations",
        },
        correlation_id=str(correlation_id),
        batch_id=event.batch_id,
        class_id=event.class_id,
        timestamp=event.timestamp,
    )


def validation_timeout_processed(
    *,
    teacher_id: str,
    batch_id: uuid.UUID,
    class_id: uuid.UUID,
    auto_confirmed: int,
    timeout_hours: float,
    correlation_id: uuid.UUID,
    now: datetime,
) -> TeacherNotificationRequestedV1:
    return TeacherNotificationRequestedV1(
        teacher_id=teacher_id,
        notification_type=VALIDATION_TIMEOUT_PROCESSED,
        category=NotificationCategory.STUDENT_WORKFLOW,
        priority=NotificationPriority.IMMEDIATE,
        payload={
            "batch_id": str(batch_id),
            "auto_confirmed_count": auto_confirmed,
            "processed_students": auto_confirmed,
            "timeout_hours": timeout_hours,
            "timeout_duration_seconds": round(timeout_hours * 3600),
            "message": (
                f"Validation timeout: {auto_confirmed} student matches auto-confirmed "
                f"after {timeout_hours:g} hours"
            ),
        },
        correlation_id=str(correlation_id),
        batch_id=str(batch_id),
        class_id=str(class_id),
        timestamp=now,
    )
