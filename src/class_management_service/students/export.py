"""Students' right of access and to portability (GDPR articles 15 and 20): everything held
about a student as one JSON document, rendered by PostgreSQL in one statement.

One section per table that refers to the student (:data:`EXPORT_SECTIONS`); a new such table
adds its section (and its field on :class:`StudentExport`) — the export test walks the schema's
foreign keys to ``students`` and fails for a table without one. Erasure: :mod:`.data_rights`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    Uuid,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
)

from class_management_service.associations.models import (
    AssociationHistory,
    BatchConfirmation,
    EssayStudentAssociation,
)
from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.courses.models import Course
from class_management_service.reads import (
    RawQuery,
    ReadOnlyDatabase,
    fetch_rendered,
    iso_timestamp,
    response_columns,
)
from class_management_service.students.export_schemas import (
    ExportedAssociation,
    ExportedDecision,
    ExportedMembership,
    ExportedStudent,
)
from class_management_service.students.models import Student
from class_management_service.students.queries import student_not_found


def _student_id() -> ColumnElement[uuid.UUID]:
    return bindparam("student_id", type_=Uuid)


@dataclass(frozen=True, slots=True)
class ExportSection:
    """One table's rows about the student: ``rows()`` selects them labelled like the section's
    model (parameter ``student_id``)."""

    table: str
    rows: Callable[[], Select[Any]]


def _memberships() -> Select[Any]:
    computed: dict[str, Callable[[], ColumnElement[Any]]] = {
        "class_name": lambda: SchoolClass.__table__.c.name,
        "course_code": lambda: Course.__table__.c.course_code,
        "class_archived_at": lambda: iso_timestamp(SchoolClass.__table__.c.archived_at),
    }
    return (
        select(*response_columns(ExportedMembership, ClassMembership.__table__, computed))
        .join(SchoolClass, SchoolClass.id == ClassMembership.class_id)
        .join(Course, Course.id == SchoolClass.course_id)
        .where(ClassMembership.student_id == _student_id())
        .order_by(ClassMembership.class_id)
    )


def _associations() -> Select[Any]:
    a = EssayStudentAssociation
    computed: dict[str, Callable[[], ColumnElement[Any]]] = {
        "batch_finalized_at": lambda: iso_timestamp(BatchConfirmation.__table__.c.confirmed_at),
        "batch_timeout_triggered": lambda: BatchConfirmation.__table__.c.timeout_triggered,
    }
    return (
        select(*response_columns(ExportedAssociation, a.__table__, computed))
        .outerjoin(BatchConfirmation, BatchConfirmation.batch_id == a.batch_id)
        .where(a.student_id == _student_id())
        .order_by(a.created_at, a.essay_id)
    )


def _decisions() -> Select[Any]:
    # The stored changes only. An essay's derived "ingested" entry (associations/history.py)
    # adds nothing about the student: while the essay is theirs, its row is in
    # essay_associations with the same facts (created_at, correlation_id, the suggestion); once
    # it is not, its first stored change names them as from_student_id. So the section stays
    # one entry per association_history row naming the student.
    h = AssociationHistory
    student = _student_id()
    return (
        select(*response_columns(ExportedDecision, h.__table__))
        .where(or_(h.from_student_id == student, h.to_student_id == student))
        .order_by(h.changed_at, h.id)
    )


# Section name (its key in the document, a field of StudentExport) → the table it exports.
EXPORT_SECTIONS: dict[str, ExportSection] = {
    "class_memberships": ExportSection("class_students", _memberships),
    "essay_associations": ExportSection("essay_student_associations", _associations),
    "decision_history": ExportSection("association_history", _decisions),
}


def _json_array(rows: Select[Any]) -> ColumnElement[Any]:
    """The rows as one JSON array (``[]`` for none), in the select's order."""
    table = rows.subquery()
    return (
        select(
            func.coalesce(
                func.json_agg(func.row_to_json(table.table_valued())),
                literal_column("'[]'::json"),
            )
        )
        .select_from(table)
        .scalar_subquery()
    )


@cache
def _export_query() -> RawQuery:
    """:class:`StudentExport` as JSON text, one statement; no row unless the teacher owns the
    student (parameters ``student_id``, ``teacher_id``). Compiled on first use, not at import."""
    profile = (
        select(*response_columns(ExportedStudent, Student.__table__))
        .where(
            Student.id == _student_id(),
            Student.created_by_user_id == bindparam("teacher_id", type_=String),
        )
        .subquery("student")
    )
    pairs: list[ColumnElement[Any]] = [
        literal_column("'exported_at'"),
        iso_timestamp(func.now()),
        literal_column("'student'"),
        func.row_to_json(profile.table_valued()),
    ]
    for name, section in EXPORT_SECTIONS.items():
        pairs += [literal_column(f"'{name}'"), _json_array(section.rows())]
    return RawQuery.of(select(cast(func.json_build_object(*pairs), Text)).select_from(profile))


async def export_student(db: ReadOnlyDatabase, teacher_id: str, student_id: uuid.UUID) -> str:
    """Everything held about the teacher's student, as :class:`StudentExport` JSON."""
    return await fetch_rendered(
        db,
        _export_query(),
        lambda: student_not_found(student_id),
        teacher_id=teacher_id,
        student_id=student_id,
    )
