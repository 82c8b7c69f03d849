"""Read side of the teacher review: a batch's associations as the teacher sees them, and an
essay's decision history."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    ScalarSelect,
    Select,
    String,
    Text,
    Uuid,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.associations.domain import (
    SYSTEM_ACTOR,
    AssociationStatus,
    HistoryMethod,
    ValidationMethod,
)
from class_management_service.associations.models import (
    AssociationHistory,
    BatchConfirmation,
    EssayStudentAssociation,
)
from class_management_service.associations.schemas import (
    AlternativeOut,
    BatchAssociationsResponse,
    EssayHistoryResponse,
    HistoryEntryOut,
    StudentAssociationOut,
)
from class_management_service.classes.models import SchoolClass
from class_management_service.courses.models import Course
from class_management_service.errors import NotFound
from class_management_service.reads import (
    RawQuery,
    ReadOnlyDatabase,
    fetch_rendered,
    iso_timestamp,
    json_rows,
    response_columns,
)
from class_management_service.students.models import Student


def _alternatives() -> ScalarSelect[Any]:
    """The essay's stored suggestions but its current student's, as :class:`AlternativeOut`
    objects in rank order; a student deleted since is left out."""
    a = EssayStudentAssociation
    suggested = (
        func.jsonb_to_recordset(a.suggestions)
        .table_valued(
            column("student_id", Uuid),
            column("confidence_score", Float),
            column("match_reasons", JSONB),
        )
        .render_derived(name="s", with_types=True)
    )
    item = func.jsonb_build_object(
        literal_column("'student_id'"),
        suggested.c.student_id,
        literal_column("'student_name'"),
        Student.first_name + literal_column("' '") + Student.last_name,
        literal_column("'confidence_score'"),
        suggested.c.confidence_score,
        literal_column("'match_reasons'"),
        suggested.c.match_reasons,
    )
    ranked = aggregate_order_by(item, suggested.c.confidence_score.desc(), suggested.c.student_id)
    return (
        select(func.coalesce(func.jsonb_agg(ranked), literal_column("'[]'::jsonb")))
        .select_from(suggested.join(Student, Student.id == suggested.c.student_id))
        .where(suggested.c.student_id.is_distinct_from(a.student_id))
        .correlate(a)
        .scalar_subquery()
    )


def _history_count() -> ColumnElement[int]:
    """The stored changes, plus the derived "ingested" entry of an ingested row."""
    a = EssayStudentAssociation
    stored = (
        select(func.count())
        .where(AssociationHistory.association_id == a.id)
        .correlate(a)
        .scalar_subquery()
    )
    return stored + case((_was_ingested(), 1), else_=0)


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
                _alternatives().label("alternatives"),
                _history_count().label("history_count"),
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
            auto_decided=0,
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
                alternatives=[AlternativeOut.model_validate(alt) for alt in row.alternatives],
                history_count=row.history_count,
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
        auto_decided=sum(
            1 for item in associations if item.validation_method == ValidationMethod.AUTO
        ),
        associations=associations,
    )


def _was_ingested() -> ColumnElement[bool]:
    # Rows the consumer stored carry their event's id; rows made otherwise have no ingest step.
    return EssayStudentAssociation.source_event_id.is_not(None)


def _ingested_entry() -> Select[Any]:
    """The "ingested" entry of the association's history, derived from the row's ingest-time
    facts (:mod:`.history`), in the columns of :class:`HistoryEntryOut`."""
    a = EssayStudentAssociation
    # The student chosen at ingestion: the first ranked suggestion (the NULL a deleted
    # student's id would have become in a stored entry).
    chosen = (
        select(Student.id)
        .where(
            Student.id == cast(a.suggestions.op("#>>")(literal_column("'{0,student_id}'")), Uuid)
        )
        .correlate(a)
        .scalar_subquery()
    )
    initial_status = case(
        (
            func.jsonb_array_length(a.suggestions) == 0,
            literal(AssociationStatus.NO_MATCH.value, Text),
        ),
        else_=literal(AssociationStatus.PENDING_VALIDATION.value, Text),
    )
    computed: dict[str, Callable[[], ColumnElement[Any]]] = {
        # Before every stored entry (identity values start at 1).
        "id": lambda: literal(0, BigInteger),
        "changed_at": lambda: iso_timestamp(a.created_at),
        "actor": lambda: literal(SYSTEM_ACTOR, Text),
        "method": lambda: literal(HistoryMethod.INGESTED.value, Text),
        "from_student_id": lambda: null().cast(Uuid),
        "to_student_id": lambda: chosen,
        "from_status": lambda: null().cast(Text),
        "to_status": lambda: initial_status,
    }
    return (
        select(*response_columns(HistoryEntryOut, a.__table__, computed))
        .where(_was_ingested())
        .correlate(a)
    )


def _history_entries() -> ScalarSelect[Any]:
    """The association's history as a JSON array of :class:`HistoryEntryOut`, oldest first: the
    derived "ingested" entry, then the stored changes."""
    h = AssociationHistory
    stored = (
        select(*response_columns(HistoryEntryOut, h.__table__))
        .where(h.association_id == EssayStudentAssociation.id)
        .correlate(EssayStudentAssociation)
    )
    entries = union_all(_ingested_entry(), stored).subquery("entry")
    entry = func.row_to_json(entries.table_valued())
    return (
        select(
            func.coalesce(
                func.json_agg(aggregate_order_by(entry, entries.c.id)),
                literal_column("'[]'::json"),
            )
        )
        .select_from(entries)
        .scalar_subquery()
    )


@cache
def _essay_history_query() -> RawQuery:
    """Compiled on first use, not at import: most processes never read an essay's history."""
    return RawQuery.of(
        json_rows(
            select(
                *response_columns(
                    EssayHistoryResponse,
                    EssayStudentAssociation.__table__,
                    {
                        "association_id": lambda: EssayStudentAssociation.__table__.c.id,
                        "history": _history_entries,
                    },
                )
            )
            .join(SchoolClass, SchoolClass.id == EssayStudentAssociation.class_id)
            .where(
                EssayStudentAssociation.batch_id == bindparam("batch_id", type_=Uuid),
                EssayStudentAssociation.essay_id == bindparam("essay_id", type_=Uuid),
                SchoolClass.created_by_user_id == bindparam("teacher_id", type_=String),
            )
        )
    )


async def get_essay_history(
    db: ReadOnlyDatabase, *, batch_id: uuid.UUID, essay_id: uuid.UUID, teacher_id: str
) -> str:
    """The essay's history as :class:`EssayHistoryResponse` JSON; another teacher's essay, or
    one not in this batch, is not found."""
    return await fetch_rendered(
        db,
        _essay_history_query(),
        lambda: NotFound(
            "Essay not found in this batch.",
            {"batch_id": str(batch_id), "essay_id": str(essay_id)},
        ),
        batch_id=batch_id,
        essay_id=essay_id,
        teacher_id=teacher_id,
    )
