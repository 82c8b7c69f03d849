"""Wire shape of a student's data export (GDPR articles 15 and 20): everything the service holds
about one student, one section per table that refers to the student.

Rendered by PostgreSQL (``students/data_rights.py``); each model's fields are the columns of its
table of the same name unless the query computes them.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from class_management_service.associations.domain import (
    AssociationStatus,
    HistoryMethod,
    ValidationMethod,
)
from class_management_service.courses.domain import CourseCode


class ExportedStudent(BaseModel):
    """The ``students`` row (its derived ``email_key`` aside: the e-mail's normalised form)."""

    id: uuid.UUID
    first_name: str
    last_name: str
    legal_full_name: str | None
    email: str | None
    created_by_user_id: str
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None


class ExportedMembership(BaseModel):
    """A ``class_students`` row, with the class it names."""

    class_id: uuid.UUID
    class_name: str
    course_code: CourseCode
    class_archived_at: datetime | None


class ExportedAssociation(BaseModel):
    """An ``essay_student_associations`` row naming the student (the suggestion or decision of
    who wrote the essay), with its batch's finalization."""

    id: uuid.UUID
    essay_id: uuid.UUID
    batch_id: uuid.UUID
    class_id: uuid.UUID
    filename: str | None
    status: AssociationStatus
    confidence_score: float | None
    match_reasons: list[str]
    validation_method: ValidationMethod | None
    validated_by: str | None
    validated_at: datetime | None
    source_event_id: uuid.UUID | None
    correlation_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    batch_finalized_at: datetime | None = Field(description="null: the batch is still open.")
    batch_timeout_triggered: bool | None


class ExportedDecision(BaseModel):
    """An ``association_history`` row whose change came from or went to the student."""

    association_id: uuid.UUID
    essay_id: uuid.UUID
    batch_id: uuid.UUID
    changed_at: datetime
    actor: str
    method: HistoryMethod
    from_student_id: uuid.UUID | None
    to_student_id: uuid.UUID | None
    from_status: AssociationStatus | None
    to_status: AssociationStatus
    correlation_id: uuid.UUID | None


class StudentExport(BaseModel):
    """Everything held about the student, as one document."""

    exported_at: datetime
    student: ExportedStudent
    class_memberships: list[ExportedMembership]
    essay_associations: list[ExportedAssociation]
    decision_history: list[ExportedDecision]
