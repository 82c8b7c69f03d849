"""Wire shapes of the internal routes, exactly as the platform's services read them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from class_management_service.associations.domain import AssociationStatus, ValidationMethod


class RosterStudent(BaseModel):
    student_id: uuid.UUID
    first_name: str
    last_name: str
    full_legal_name: str = Field(
        description="The legal full name, or first and last name when none is recorded."
    )
    email: str | None


class ClassRoster(BaseModel):
    """What the NLP service matches essay authors against."""

    students: list[RosterStudent]


class StudentPersonName(BaseModel):
    first_name: str
    last_name: str
    legal_full_name: str = Field(
        description="The legal full name, or first and last name when none is recorded."
    )


class EssayStudentName(BaseModel):
    essay_id: uuid.UUID
    student_id: uuid.UUID
    student_person_name: StudentPersonName


class EssayAssociation(BaseModel):
    essay_id: uuid.UUID
    batch_id: uuid.UUID
    class_id: uuid.UUID
    student_id: uuid.UUID | None
    status: AssociationStatus
    confidence_score: float | None
    validation_method: ValidationMethod | None
    validated_by: str | None
    validated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class BatchClassInfo(BaseModel):
    class_id: uuid.UUID
    class_name: str
