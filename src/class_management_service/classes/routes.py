"""HTTP routes of the classes feature (gateway callers, identified by X-User-ID)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from starlette.convertors import StringConvertor, register_url_convertor

from class_management_service.classes import queries, service
from class_management_service.classes.schemas import (
    ClassCreate,
    ClassDeleted,
    ClassList,
    ClassResponse,
    ClassSort,
    ClassUpdate,
    SearchText,
)
from class_management_service.courses.domain import CourseCode
from class_management_service.errors import ERROR_RESPONSES
from class_management_service.http.deps import ReadDb, TeacherId, Uow
from class_management_service.http.json_text import JsonText
from class_management_service.http.pagination import LIST_RESPONSES, PageQuery

router = APIRouter(prefix="/v1/classes", tags=["classes"], responses=ERROR_RESPONSES)


class _ClassIdConvertor(StringConvertor):
    """A class id segment is anything but ``students``: ``/v1/classes/students`` is the students
    collection, and a method it does not serve is its 405, not a lookup of a class "students"
    (a 422 with a ``class_id`` error)."""

    regex = "(?!students$)[^/]+"


register_url_convertor("class_id", _ClassIdConvertor())


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=ClassResponse,
    summary="Create a class",
    description=(
        "Creates a class owned by the calling teacher and publishes `ClassCreatedV1` "
        "(`huleedu.class.created.v1`) in the same transaction."
    ),
)
async def create_class(body: ClassCreate, teacher_id: TeacherId, uow: Uow, db: ReadDb) -> JsonText:
    class_id = await service.create_class(uow, teacher_id, body)
    return JsonText(await queries.get_class(db, teacher_id, class_id), status.HTTP_201_CREATED)


@router.get(
    "/",
    response_model=ClassList,
    summary="List own classes",
    description=(
        "The calling teacher's classes, filtered, sorted and paginated (by `cursor`, or by "
        "`offset`)."
    ),
    responses=LIST_RESPONSES,
)
async def list_classes(
    teacher_id: TeacherId,
    db: ReadDb,
    page: PageQuery,
    sort: Annotated[ClassSort, Query(description="Sort key; `-` sorts descending.")] = (
        ClassSort.CREATED_AT_DESC
    ),
    course_code: Annotated[CourseCode | None, Query(description="Only this course.")] = None,
    q: Annotated[
        SearchText | None, Query(description="Case-insensitive substring of the class name.")
    ] = None,
) -> JsonText:
    return await queries.list_classes(
        db, teacher_id, page, sort=sort, course_code=course_code, name_contains=q
    )


@router.get(
    "/{class_id:class_id}",
    response_model=ClassResponse,
    summary="Get a class",
    description="404 also when the class belongs to another teacher.",
)
async def get_class(class_id: uuid.UUID, teacher_id: TeacherId, db: ReadDb) -> JsonText:
    return JsonText(await queries.get_class(db, teacher_id, class_id))


@router.put(
    "/{class_id:class_id}",
    response_model=ClassResponse,
    summary="Update a class",
    description=(
        "Changes the name and/or the course; omitted or null fields keep their value. "
        "Publishes `ClassUpdatedV1` (`huleedu.class.updated.v1`) only when something changed; "
        'its null fields mean "not changed".'
    ),
)
async def update_class(
    class_id: uuid.UUID, body: ClassUpdate, teacher_id: TeacherId, uow: Uow, db: ReadDb
) -> JsonText:
    await service.update_class(uow, teacher_id, class_id, body)
    return JsonText(await queries.get_class(db, teacher_id, class_id))


@router.delete(
    "/{class_id:class_id}",
    summary="Delete a class",
    description=(
        "Deletes the class and its memberships (the students themselves stay), and the essay "
        "associations recorded for the class. Answers 200 with a message (the platform's "
        "clients read a JSON body). Publishes no event (the contract has none)."
    ),
)
async def delete_class(class_id: uuid.UUID, teacher_id: TeacherId, uow: Uow) -> ClassDeleted:
    await service.delete_class(uow, teacher_id, class_id)
    return ClassDeleted()
