"""Builders of the four notifications this service sends, their payloads typed. Pure: no I/O.

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

from pydantic import BaseModel

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


# The ``payload`` of each notification; field order is the JSON's order.
class ClassCreatedPayload(BaseModel):
    class_id: str
    class_designation: str
    class_name: str
    course_codes: list[str]
    teacher_id: str
    message: str


class StudentAddedPayload(BaseModel):
    student_id: str
    student_name: str
    class_id: str
    class_designation: str
    message: str


class StudentsImportedPayload(BaseModel):
    student_id: None = None
    student_name: None = None
    students_added: int
    class_id: str
    class_designation: str
    message: str


class ConfirmedAssociationPayload(BaseModel):
    essay_id: str
    student_id: str | None
    validation_method: str
    confidence_score: float


class AssociationsConfirmedPayload(BaseModel):
    batch_id: str
    confirmed_count: int
    confirmed_associations: int
    pending_associations: int = 0  # sent once the batch is final
    associations: list[ConfirmedAssociationPayload]
    validation_summary: dict[str, int]
    timeout_triggered: bool
    message: str


class TimeoutProcessedPayload(BaseModel):
    batch_id: str
    auto_confirmed_count: int
    processed_students: int
    timeout_hours: float
    timeout_duration_seconds: int
    message: str


def _class_notification(
    *,
    teacher_id: str,
    notification_type: str,
    priority: NotificationPriority,
    payload: BaseModel,
    class_id: uuid.UUID,
    correlation_id: uuid.UUID,
    now: datetime,
) -> TeacherNotificationRequestedV1:
    """A class-management notification about one class, ``payload`` its body."""
    return TeacherNotificationRequestedV1(
        teacher_id=teacher_id,
        notification_type=notification_type,
        category=NotificationCategory.CLASS_MANAGEMENT,
        priority=priority,
        payload=payload.model_dump(mode="json"),
        correlation_id=str(correlation_id),
        class_id=str(class_id),
        timestamp=now,
    )


def class_created(
    *,
    teacher_id: str,
    class_id: uuid.UUID,
    class_name: str,
    course_codes: Sequence[str],
    correlation_id: uuid.UUID,
    now: datetime,
) -> TeacherNotificationRequestedV1:
    return _class_notification(
        teacher_id=teacher_id,
        notification_type=CLASS_CREATED,
        priority=NotificationPriority.STANDARD,
        payload=ClassCreatedPayload(
            class_id=str(class_id),
            class_designation=class_name,
            class_name=class_name,
            course_codes=list(course_codes),
            teacher_id=teacher_id,
            message=f"Class '{class_name}' created successfully",
        ),
        class_id=class_id,
        correlation_id=correlation_id,
        now=now,
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
    return _class_notification(
        teacher_id=teacher_id,
        notification_type=STUDENT_ADDED_TO_CLASS,
        priority=NotificationPriority.LOW,
        payload=StudentAddedPayload(
            student_id=str(student_id),
            student_name=student_name,
            class_id=str(class_id),
            class_designation=class_name,
            message=f"Student '{student_name}' added to class '{class_name}'",
        ),
        class_id=class_id,
        correlation_id=correlation_id,
        now=now,
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
    return _class_notification(
        teacher_id=teacher_id,
        notification_type=STUDENT_ADDED_TO_CLASS,
        priority=NotificationPriority.LOW,
        payload=StudentsImportedPayload(
            students_added=students_added,
            class_id=str(class_id),
            class_designation=class_name,
            message=(
                f"{students_added} student{'' if students_added == 1 else 's'} added to class "
                f"'{class_name}' by roster import"
            ),
        ),
        class_id=class_id,
        correlation_id=correlation_id,
        now=now,
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
        payload=AssociationsConfirmedPayload(
            batch_id=event.batch_id,
            confirmed_count=with_student,
            confirmed_associations=with_student,
            associations=[
                ConfirmedAssociationPayload(
                    essay_id=a.essay_id,
                    student_id=a.student_id,
                    validation_method=a.validation_method,
                    confidence_score=a.confidence_score,
                )
                for a in event.associations
            ],
            validation_summary=event.validation_summary,
            timeout_triggered=event.timeout_triggered,
            message=f"Successfully confirmed {with_student} student associations",
        ).model_dump(mode="json"),
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
        payload=TimeoutProcessedPayload(
            batch_id=str(batch_id),
            auto_confirmed_count=auto_confirmed,
            processed_students=auto_confirmed,
            timeout_hours=timeout_hours,
            timeout_duration_seconds=round(timeout_hours * 3600),
            message=(
                f"Validation timeout: {auto_confirmed} student matches auto-confirmed "
                f"after {timeout_hours:g} hours"
            ),
        ).model_dump(mode="json"),
        correlation_id=str(correlation_id),
        batch_id=str(batch_id),
        class_id=str(class_id),
        timestamp=now,
    )
