"""Read-only lookups for the platform's services (no teacher scoping: callers are trusted).

Batch and essay ids belong to other services and are not always UUIDs (single-essay flows use
ids such as ``single-essay-batch``). Such an id can have no association here: in the
``batch_ids`` list it simply matches nothing; as a path id it is a malformed request (400), the
rule every route follows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from functools import cache

from sqlalchemy import String, Uuid, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.associations.models import EssayStudentAssociation
from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.classes.queries import class_not_found
from class_management_service.errors import NotFound
from class_management_service.http.json_text import JsonText
from class_management_service.internal.schemas import (
    BatchClassInfo,
    EssayAssociation,
    EssayStudentName,
    RosterStudent,
    StudentPersonName,
)
from class_management_service.reads import (
    RawQuery,
    ReadOnlyDatabase,
    fetch_rendered,
    json_rows,
    response_columns,
)
from class_management_service.students.models import Student

# Never null on the wire: without a recorded legal name, the name the teacher entered.
_LEGAL_OR_FULL_NAME = func.coalesce(
    Student.legal_full_name, Student.first_name + " " + Student.last_name
)


def as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@cache
def _roster(*, owned: bool) -> RawQuery:
    """The class's students rendered as :class:`RosterStudent` JSON items (comma-separated; ''
    for none), or no row when the class does not exist (or, ``owned``, is not the teacher's).
    Compiled on first use, not at import."""
    class_id = bindparam("class_id", type_=Uuid)
    members = json_rows(
        select(
            *response_columns(
                RosterStudent,
                Student.__table__,
                {
                    "student_id": lambda: Student.__table__.c.id,
                    "full_legal_name": lambda: _LEGAL_OR_FULL_NAME,
                },
            )
        )
        .join(ClassMembership, ClassMembership.student_id == Student.id)
        .where(ClassMembership.class_id == class_id)
        .order_by(Student.last_name, Student.first_name, Student.id)
    ).subquery("members")
    (item,) = members.c
    # string_agg keeps the order the sorted sub-select produced its rows in.
    items = select(
        func.coalesce(func.string_agg(item, literal_column("','")), literal_column("''"))
    ).scalar_subquery()
    statement = select(items).where(SchoolClass.id == class_id)
    if owned:
        statement = statement.where(
            SchoolClass.created_by_user_id == bindparam("teacher_id", type_=String)
        )
    return RawQuery.of(statement)


async def class_roster(
    db: ReadOnlyDatabase, class_id: uuid.UUID, *, teacher_id: str | None
) -> JsonText:
    """The :class:`ClassRoster` as JSON. ``teacher_id``: only that teacher's class (another
    teacher's is as missing as none)."""
    items = await fetch_rendered(
        db,
        _roster(owned=teacher_id is not None),
        lambda: class_not_found(class_id),
        class_id=class_id,
        teacher_id=teacher_id,
    )
    return JsonText(f'{{"students":[{items}]}}')


async def batch_student_names(session: AsyncSession, batch_id: uuid.UUID) -> list[EssayStudentName]:
    """The author of each essay of the batch that has one (suggested or confirmed)."""
    rows = await session.execute(
        select(
            EssayStudentAssociation.essay_id,
            Student.id.label("student_id"),
            Student.first_name,
            Student.last_name,
            _LEGAL_OR_FULL_NAME.label("legal_full_name"),
        )
        .join(Student, Student.id == EssayStudentAssociation.student_id)
        .where(EssayStudentAssociation.batch_id == batch_id)
        .order_by(EssayStudentAssociation.essay_id)
    )
    return [
        EssayStudentName(
            essay_id=row.essay_id,
            student_id=row.student_id,
            student_person_name=StudentPersonName(
                first_name=row.first_name,
                last_name=row.last_name,
                legal_full_name=row.legal_full_name,
            ),
        )
        for row in rows
    ]


async def essay_association(session: AsyncSession, essay_id: uuid.UUID) -> EssayAssociation:
    association = await session.scalar(
        select(EssayStudentAssociation).where(EssayStudentAssociation.essay_id == essay_id)
    )
    if association is None:
        raise NotFound("No association for this essay.", {"essay_id": str(essay_id)})
    return EssayAssociation.model_validate(association, from_attributes=True)


async def batches_class_info(
    session: AsyncSession, batch_ids: Iterable[str]
) -> dict[str, BatchClassInfo | None]:
    """Every requested batch id, mapped to its class, or to None when it has no associations."""
    info: dict[str, BatchClassInfo | None] = dict.fromkeys(batch_ids)
    # Several spellings (e.g. upper and lower case) may name the same batch.
    spellings: defaultdict[uuid.UUID, list[str]] = defaultdict(list)
    for raw in info:
        if (parsed := as_uuid(raw)) is not None:
            spellings[parsed].append(raw)
    if not spellings:
        return info
    rows = await session.execute(
        # Every association of a batch names the same class, so this is one row per batch.
        select(EssayStudentAssociation.batch_id, SchoolClass.id, SchoolClass.name)
        .distinct()
        .join(SchoolClass, SchoolClass.id == EssayStudentAssociation.class_id)
        .where(EssayStudentAssociation.batch_id.in_(spellings))
    )
    for row in rows:
        for raw in spellings[row.batch_id]:
            info[raw] = BatchClassInfo(class_id=row.id, class_name=row.name)
    return info
