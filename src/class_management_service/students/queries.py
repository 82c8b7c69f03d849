"""Read side of the students feature: the GET responses, rendered as JSON by PostgreSQL.

The rendered select is derived from the response model (:func:`reads.response_columns`): each
field of :class:`StudentResponse` is the ``students`` column of the same name (timestamps in their
ISO form), unless :data:`_COMPUTED` says how to compute it. So a new plain column reaches the
responses by being added to the model, the migration and the response schema, and a response
field the database cannot produce fails at import.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import cache
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Uuid,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.errors import Conflict, NotFound
from class_management_service.http.json_text import JsonText
from class_management_service.http.pagination import (
    KeyParts,
    ListQuery,
    PageRequest,
    contains,
    fetch_page,
    page_query,
    sort_key,
)
from class_management_service.reads import (
    RawQuery,
    ReadOnlyDatabase,
    fetch_rendered,
    json_rows,
    response_columns,
)
from class_management_service.students.models import Student
from class_management_service.students.schemas import (
    PersonNameResponse,
    StudentResponse,
    StudentSort,
)

# Sort keys by the columns both the students table and a rendered student have (keyset indexes
# in models.Student). The e-mail may be NULL: those rows sort last (first descending), as
# PostgreSQL orders NULLs, by a key that is never NULL itself.
_SORT_KEYS: dict[str, KeyParts] = {
    "name": lambda c: [func.lower(c.last_name + " " + c.first_name)],
    "email": lambda c: [c.email.is_(None), func.coalesce(c.email, literal_column("''"))],
    "created_at": lambda c: [c.created_at],
}


def student_not_found(student_id: uuid.UUID) -> NotFound:
    return NotFound("Student not found.", {"student_id": str(student_id)})


def student_erased(student_id: uuid.UUID) -> Conflict:
    return Conflict(
        "The student's personal data was erased; the record cannot be changed.",
        {"student_id": str(student_id)},
    )


def _person_name() -> ColumnElement[Any]:
    names = (
        select(*response_columns(PersonNameResponse, Student.__table__))
        .correlate(Student)
        .subquery("n")
    )
    return select(func.row_to_json(names.table_valued())).scalar_subquery()


def _class_ids() -> ColumnElement[Any]:
    class_ids = (
        select(
            func.array_agg(aggregate_order_by(ClassMembership.class_id, ClassMembership.class_id))
        )
        .where(ClassMembership.student_id == Student.id)
        .correlate(Student)
        .scalar_subquery()
    )
    # array_agg over no memberships is NULL; the response has an empty list.
    return func.coalesce(class_ids, literal_column("'{}'::uuid[]"))


# The response fields that are not a column of their own.
_COMPUTED: dict[str, Callable[[], ColumnElement[Any]]] = {
    "full_name": lambda: Student.first_name + " " + Student.last_name,
    "person_name": _person_name,
    "class_ids": _class_ids,
}


def owned_students() -> Select[Any]:
    """Student rows labelled and shaped like :class:`StudentResponse`, in its field order;
    parameter ``teacher_id``."""
    return select(*response_columns(StudentResponse, Student.__table__, _COMPUTED)).where(
        Student.created_by_user_id == bindparam("teacher_id", type_=String)
    )


@cache
def _student_query() -> RawQuery:
    """Compiled on first use, not at import (as every statement here)."""
    return RawQuery.of(
        json_rows(owned_students().where(Student.id == bindparam("student_id", type_=Uuid)))
    )


@cache
def _list_queries(
    sort: StudentSort, by_class: bool, by_text: bool, class_owned: bool = False
) -> ListQuery:
    """One compiled pair of statements per filter combination (36 at most); ``class_owned``:
    the list is found only if the teacher owns the class."""
    # Erased students are never listed (nor found by search); GET by id still answers.
    statement = owned_students().where(Student.erased_at.is_(None))
    class_id = bindparam("class_id", type_=Uuid)
    if by_class:
        statement = statement.where(
            Student.id.in_(
                select(ClassMembership.student_id).where(ClassMembership.class_id == class_id)
            )
        )
    if by_text:
        pattern = bindparam("pattern", type_=String)
        statement = statement.where(
            or_(
                Student.first_name.ilike(pattern),
                Student.last_name.ilike(pattern),
                (Student.first_name + " " + Student.last_name).ilike(pattern),
                Student.email.ilike(pattern),
            )
        )
    owned_class = exists().where(
        SchoolClass.id == class_id,
        SchoolClass.created_by_user_id == bindparam("teacher_id", type_=String),
    )
    return page_query(
        f"students:{sort.value}",
        statement,
        Student.__table__,
        sort_key(sort, _SORT_KEYS),
        found=owned_class if class_owned else None,
    )


async def get_student(db: ReadOnlyDatabase, teacher_id: str, student_id: uuid.UUID) -> str:
    """The student as :class:`StudentResponse` JSON."""
    return await fetch_rendered(
        db,
        _student_query(),
        lambda: student_not_found(student_id),
        teacher_id=teacher_id,
        student_id=student_id,
    )


async def list_students(
    db: ReadOnlyDatabase,
    teacher_id: str,
    page: PageRequest,
    *,
    sort: StudentSort,
    class_id: uuid.UUID | None = None,
    search: str | None = None,
) -> JsonText:
    """A :class:`StudentList` page of the teacher's students as JSON; ``class_id`` narrows to
    one class (another teacher's: empty)."""
    async with db.connection() as connection:
        return await _list_students(connection, teacher_id, page, sort, class_id, search)


async def _list_students(
    connection: asyncpg.Connection,
    teacher_id: str,
    page: PageRequest,
    sort: StudentSort,
    class_id: uuid.UUID | None,
    search: str | None,
    *,
    class_owned: bool = False,
) -> JsonText:
    query = _list_queries(sort, class_id is not None, bool(search), class_owned)
    return await fetch_page(
        connection,
        query,
        page,
        "students",
        # The same answer ensure_owned_classes gives.
        lambda: NotFound("Class not found.", {"class_ids": [str(class_id)]}),
        teacher_id=teacher_id,
        class_id=class_id,
        pattern=contains(search) if search else None,
    )


async def list_class_students(
    db: ReadOnlyDatabase,
    teacher_id: str,
    class_id: uuid.UUID,
    page: PageRequest,
    *,
    sort: StudentSort,
    search: str | None = None,
) -> JsonText:
    """Like :func:`list_students` for one class, but 404 unless the teacher owns the class."""
    async with db.connection() as connection:
        return await _list_students(
            connection, teacher_id, page, sort, class_id, search, class_owned=True
        )
