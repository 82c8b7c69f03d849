"""Read side of the teacher review: a batch's associations as the teacher sees them."""

from __future__ import annotations

import uuid
from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.associations.domain import AssociationStatus, ValidationMethod
from class_management_service.associations.models import BatchConfirmation, EssayStudentAssociation
from class_management_service.associations.schemas import (
    BatchAssociationsResponse,
    StudentAssociationOut,
)
from class_management_service.classes.models import SchoolClass
from class_management_service.courses.models import Course
from class_management_service.students.models import Student


async def get_batch_associations(
    session: AsyncSession, *, batch_id: uuid.UUID, teacher_id: str
) -> BatchAssociationsResponse:
    a = EssayStudentAssociation
    rows = (
        await session.execute(
            select(
                a,
                Course.course_code,
                Student.first_name,
                Student.last_name,
                Student.email,
                BatchConfirmation.confirmed_at,
                BatchConfirmation.timeout_triggered,
            )
            .join(SchoolClass, SchoolClass.id == a.class_id)
            .join(Course, Course.id == SchoolClass.course_id)
            .outerjoin(Student, Student.id == a.student_id)
            .outerjoin(BatchConfirmation, BatchConfirmation.batch_id == a.batch_id)
            .where(a.batch_id == batch_id, SchoolClass.created_by_user_id == teacher_id)
            .order_by(a.filename.asc().nulls_last(), a.essay_id)
            .execution_options(populate_existing=True)
        )
    ).all()
    if not rows:
        # Nothing (yet) for this teacher: the platform's harness may ask before ingestion.
        return BatchAssociationsResponse(
            batch_id=batch_id,
            class_id=None,
            course_code=None,
            finalized=False,
            finalized_at=None,
            timeout_triggered=None,
            status_counts={},
            associations=[],
        )
    associations = []
    for row in rows:
        association: EssayStudentAssociation = row[0]
        associations.append(
            StudentAssociationOut(
                essay_id=association.essay_id,
                filename=association.filename,
                suggested_student_id=association.student_id,
                student_id=association.student_id,
                student_name=(
                    f"{row.first_name} {row.last_name}" if row.first_name is not None else None
                ),
                student_email=row.email,
                confidence_score=association.confidence_score,
                match_reasons=list(association.match_reasons or []),
                status=AssociationStatus(association.status),
                validation_method=(
                    ValidationMethod(association.validation_method)
                    if association.validation_method
                    else None
                ),
                validated_by=association.validated_by,
                validated_at=association.validated_at,
                created_at=association.created_at,
            )
        )
    first = rows[0]
    return BatchAssociationsResponse(
        batch_id=batch_id,
        class_id=first[0].class_id,
        course_code=first.course_code,
        finalized=first.confirmed_at is not None,
        finalized_at=first.confirmed_at,
        timeout_triggered=first.timeout_triggered,
        status_counts=dict(Counter(item.status.value for item in associations)),
        associations=associations,
    )
