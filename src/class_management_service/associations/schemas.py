"""Wire shapes of the review API and of the StudentAssociationsConfirmedV1 event."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from class_management_service.associations.domain import (
    AssociationStatus,
    HistoryMethod,
    ValidationMethod,
)

# A batch has tens of essays; a cap keeps one request from locking and rewriting unbounded rows.
MAX_DECISIONS_PER_REQUEST = 2000


# ---- review API ----------------------------------------------------------------------------


class AssociationDecisionIn(BaseModel):
    """Confirm (``confirmed: true`` with the author's ``student_id``; a different student than
    suggested reassigns the essay) or reject (``confirmed: false``; ``student_id`` is ignored).
    ``confirmed: true`` with ``student_id: null`` for an essay without a student (no suggestion)
    confirms that it has none: decided, without an author."""

    model_config = ConfigDict(extra="ignore")

    essay_id: uuid.UUID
    student_id: uuid.UUID | None = None
    confirmed: bool


class ConfirmAssociationsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    associations: list[AssociationDecisionIn] = Field(
        min_length=1, max_length=MAX_DECISIONS_PER_REQUEST
    )
    confirmation_method: str | None = Field(
        default=None,
        max_length=100,
        description=(
            "How the teacher decided (the platform sends `manual_teacher_review`); accepted for "
            "the platform's clients, every decision made here is recorded as `human`."
        ),
    )


class AlternativeOut(BaseModel):
    """Another valid suggestion for the essay (a student of the class), as the NLP ranked it."""

    student_id: uuid.UUID
    student_name: str = Field(description="First and last name of the suggested student")
    confidence_score: float
    match_reasons: list[str]


class StudentAssociationOut(BaseModel):
    essay_id: uuid.UUID
    filename: str | None
    suggested_student_id: uuid.UUID | None = Field(
        description=(
            "The platform's name for the essay's student: the suggestion, or the student a "
            "decision has set since (null when the essay has none). Confirming the listed value "
            "for every essay (the platform's 'confirm as listed') decides the whole batch."
        )
    )
    student_id: uuid.UUID | None
    student_name: str | None = Field(description="First and last name of the associated student")
    student_email: str | None
    confidence_score: float | None
    match_reasons: list[str]
    status: AssociationStatus
    validation_method: ValidationMethod | None
    validated_by: str | None
    validated_at: datetime | None
    created_at: datetime = Field(description="When the suggestion was stored")
    alternatives: list[AlternativeOut] = Field(
        description=(
            "The essay's other valid suggestions (every one but the current student's), highest "
            "confidence first, ties by student id. Reassigning to one is one decision: confirm "
            "the essay with that `student_id`."
        )
    )
    history_count: int = Field(
        description="Changes recorded for the essay (`GET .../essays/{essay_id}/history`)"
    )


class BatchAssociationsResponse(BaseModel):
    """A batch the teacher has nothing for (not ingested yet, or another teacher's) lists no
    associations, with ``class_id`` and ``course_code`` null."""

    batch_id: uuid.UUID
    class_id: uuid.UUID | None
    course_code: str | None
    finalized: bool = Field(
        description="Every essay is decided and StudentAssociationsConfirmedV1 was emitted"
    )
    finalized_at: datetime | None
    timeout_triggered: bool | None = Field(description="Set once finalized")
    status_counts: dict[str, int]
    auto_decided: int = Field(
        description=(
            "Essays whose decision is the auto-confirm policy's (validation_method `auto`); a "
            "teacher's later change makes it theirs"
        )
    )
    associations: list[StudentAssociationOut]


class ConfirmAssociationsResponse(BatchAssociationsResponse):
    changed: int = Field(description="Associations this request changed")
    unchanged: int = Field(description="Decisions that repeated the stored state (no-ops)")
    status: Literal["confirmed"] = Field(
        default="confirmed",
        description="The decisions are recorded (`finalized` says whether the batch is complete)",
    )
    associations_confirmed: int = Field(description="Items of this request with confirmed: true")
    associations_rejected: int = Field(description="Items of this request with confirmed: false")


class HistoryEntryOut(BaseModel):
    id: int = Field(description="Increasing in the order the changes were made")
    changed_at: datetime
    actor: str = Field(description="The teacher's user id, or `system` (ingestion, auto, timeout)")
    method: HistoryMethod
    from_student_id: uuid.UUID | None
    to_student_id: uuid.UUID | None
    from_status: AssociationStatus | None = Field(description="Null for the first entry")
    to_status: AssociationStatus
    correlation_id: uuid.UUID | None = Field(
        description="The request's or the event's that made the change"
    )


class EssayHistoryResponse(BaseModel):
    batch_id: uuid.UUID
    essay_id: uuid.UUID
    association_id: uuid.UUID
    history: list[HistoryEntryOut] = Field(description="Oldest first")


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
