"""Read side of the classes feature: the GET responses, rendered as JSON by PostgreSQL.

The rendered select is derived from :class:`ClassResponse` (:func:`reads.response_columns`):
each field is the ``classes`` column of the same name unless :data:`_COMPUTED` builds it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, String, Uuid, bindparam, func, select

from class_management_service.classes.models import SchoolClass
from class_management_service.classes.schemas import ClassResponse, ClassSort
from class_management_service.courses.domain import CourseCode
from class_management_service.courses.models import Course
from class_management_service.errors import NotFound
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

# Sort keys by the columns both the classes table and a rendered class have (keyset indexes in
# models.SchoolClass).
_SORT_KEYS: dict[str, KeyParts] = {
    "name": lambda c: [func.lower(c.name)],
    "created_at": lambda c: [c.created_at],
}


def class_not_found(class_id: uuid.UUID) -> NotFound:
    return NotFound("Class not found.", {"class_id": str(class_id)})


# The response fields that are not a column of the class row itself.
_COMPUTED: dict[str, Callable[[], ColumnElement[Any]]] = {
    "course_code": lambda: Course.__table__.c.course_code,
    "course_name": lambda: Course.__table__.c.name,
}


def owned_classes() -> Select[Any]:
    """Class rows labelled and shaped like :class:`ClassResponse`, in its field order; one
    statement for any number of rows; parameter ``teacher_id``."""
    return (
        select(*response_columns(ClassResponse, SchoolClass.__table__, _COMPUTED))
        .join(Course, Course.id == SchoolClass.course_id)
        .where(SchoolClass.created_by_user_id == bindparam("teacher_id", type_=String))
    )


@cache
def _class_query() -> RawQuery:
    """Compiled on first use, not at import (as every statement here): processes that never
    read a class do not pay for it."""
    return RawQuery.of(
        json_rows(owned_classes().where(SchoolClass.id == bindparam("class_id", type_=Uuid)))
    )


@cache
def _list_queries(
    sort: ClassSort, by_course: bool, by_name: bool, include_archived: bool
) -> ListQuery:
    """One compiled pair of statements per filter combination (32 at most)."""
    statement = owned_classes()
    if not include_archived:
        statement = statement.where(SchoolClass.archived_at.is_(None))
    if by_course:
        statement = statement.where(Course.course_code == bindparam("course_code", type_=String))
    if by_name:
        statement = statement.where(SchoolClass.name.ilike(bindparam("name", type_=String)))
    return page_query(
        f"classes:{sort.value}", statement, SchoolClass.__table__, sort_key(sort, _SORT_KEYS)
    )


async def get_class(db: ReadOnlyDatabase, teacher_id: str, class_id: uuid.UUID) -> str:
    """The class as :class:`ClassResponse` JSON."""
    return await fetch_rendered(
        db,
        _class_query(),
        lambda: class_not_found(class_id),
        teacher_id=teacher_id,
        class_id=class_id,
    )


async def list_classes(
    db: ReadOnlyDatabase,
    teacher_id: str,
    page: PageRequest,
    *,
    sort: ClassSort,
    course_code: CourseCode | None = None,
    name_contains: str | None = None,
    include_archived: bool = False,
) -> JsonText:
    """A :class:`ClassList` page, as JSON; archived classes only with ``include_archived``."""
    query = _list_queries(sort, course_code is not None, bool(name_contains), include_archived)
    async with db.connection() as connection:
        return await fetch_page(
            connection,
            query,
            page,
            "classes",
            teacher_id=teacher_id,
            course_code=course_code.value if course_code is not None else None,
            name=contains(name_contains) if name_contains else None,
        )
