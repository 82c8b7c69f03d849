"""Wire shapes of the review API and of the StudentAssociationsConfirmedV1 event."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from class_management_service.associations.models import AssociationStatus, ValidationMethod

# A batch has tens of essays; a cap keeps one request from locking and rewriting unbounded rows.
MAX_DECISIONS_PER_REQUEST = 2000


# ---- review API ----------------------------------------------------------------------------


class AssociationDecisionIn(BaseModel):
    """Confirm (``confirmed: true`` with the author's ``student_id``; a different student than
    suggested reassigns the essay) or reject (``confirmed: false``; ``student_id`` is ignored)."""

    model_config = ConfigDict(extra="ignore")

    essay_id: uuid.UUID
    student_id: uuid.UUID | None = None
    confirmed: bool


class ConfirmAssociationsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    associations: list[AssociationDecisionIn] = Field(
        min_length=1, max_length=MAX_DECISIONS_PER_REQUEST
    )


class StudentAssociationOut(BaseModel):
    essay_id: uuid.UUID
    filename: str | None
    student_id: uuid.UUID | None
    student_name: str | None = Field(description="First and last name of the associated student")
    student_email: str | None
    confidence_score: float | None
    match_reasons: list[str]
    status: AssociationStatus
    validation_method: ValidationMethod | None
    validated_by: str | None
    validated_at: datetime | None


class BatchAssociationsResponse(BaseModel):
    batch_id: uuid.UUID
    class_id: uuid.UUID
    course_code: str
    finalized: bool = Field(
        description="Every essay is decided and StudentAssociationsConfirmedV1 was emitted"
    )
    finalized_at: datetime | None
    timeout_triggered: bool | None = Field(description="Set once finalized")
    status_counts: dict[str, int]
    associations: list[StudentAssociationOut]


class ConfirmAssociationsResponse(BatchAssociationsResponse):
    changed: int = Field(description="Associations this request changed")
    unchanged: int = Field(description="Decisions that repeated the stored state (no-ops)")


# ---- StudentAssociationsConfirmedV1 (published) --------------------------------------------

STUDENT_ASSOCIATIONS_CONFIRMED_EVENT_NAME = "student.associations.confirmed"


class StudentAssociationConfirmation(BaseModel):
    essay_id: str
    student_id: str | None
    # The platform's consumers require a float: an essay that never had a suggestion reports 0.0.
    confidence_score: float
    validation_method: Literal["human", "timeout", "auto"]
    validated_by: str | None
    validated_at: datetime


class StudentAssociationsConfirmedV1(BaseModel):
    event_name: str = STUDENT_ASSOCIATIONS_CONFIRMED_EVENT_NAME
    entity_id: str | None
    entity_type: str | None = "batch"
    parent_id: str | None
    timestamp: datetime
    batch_id: str
    class_id: str
    course_code: str
    associations: list[StudentAssociationConfirmation]
    timeout_triggered: bool
    validation_summary: dict[str, int]
