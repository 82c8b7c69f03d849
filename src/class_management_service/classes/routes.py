"""HTTP routes of the classes feature (gateway callers, identified by X-User-ID)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from starlette.convertors import StringConvertor, register_url_convertor

from class_management_service.classes import archive, queries, service
from class_management_service.classes.schemas import (
    ArchiveReport,
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
from class_management_service.http.deps import TeacherId, Uow, read_db
from class_management_service.http.json_text import JsonText
from class_management_service.http.pagination import LIST_RESPONSES, PageQuery

router = APIRouter(prefix="/v1/classes", tags=["classes"], responses=ERROR_RESPONSES)


class _ClassIdConvertor(StringConvertor):
    """A class id segment is anything but ``students`` and ``archive``: ``/v1/classes/students``
    is the students collection and ``/v1/classes/archive`` the bulk archive, and a method they
    do not serve is their 405, not a lookup of a class "students" (a 422 with a ``class_id``
    error)."""

    regex = "(?!(?:students|archive)$)[^/]+"


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
async def create_class(
    body: ClassCreate, teacher_id: TeacherId, uow: Uow, request: Request
) -> JsonText:
    class_id = await service.create_class(uow, teacher_id, body)
    return JsonText(
        await queries.get_class(read_db(request), teacher_id, class_id), status.HTTP_201_CREATED
    )


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
    request: Request,
    page: PageQuery,
    sort: Annotated[ClassSort, Query(description="Sort key; `-` sorts descending.")] = (
        ClassSort.CREATED_AT_DESC
    ),
    course_code: Annotated[CourseCode | None, Query(description="Only this course.")] = None,
    q: Annotated[
        SearchText | None, Query(description="Case-insensitive substring of the class name.")
    ] = None,
    include_archived: Annotated[
        bool, Query(description="Also list archived classes (hidden by default).")
    ] = False,
) -> JsonText:
    return await queries.list_classes(
        read_db(request),
        teacher_id,
        page,
        sort=sort,
        course_code=course_code,
        name_contains=q,
        include_archived=include_archived,
    )


@router.get(
    "/{class_id:class_id}",
    response_model=ClassResponse,
    summary="Get a class",
    description="404 also when the class belongs to another teacher.",
)
async def get_class(class_id: uuid.UUID, teacher_id: TeacherId, request: Request) -> JsonText:
    return JsonText(await queries.get_class(read_db(request), teacher_id, class_id))


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
    class_id: uuid.UUID, body: ClassUpdate, teacher_id: TeacherId, uow: Uow, request: Request
) -> JsonText:
    await service.update_class(uow, teacher_id, class_id, body)
    return JsonText(await queries.get_class(read_db(request), teacher_id, class_id))


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


_READ_ONLY = (
    "An archived class is read-only: every write touching it or its memberships (update, "
    "delete, students joining or leaving it, roster import) is a 409 until it is unarchived. It "
    "is still served: by id, in lists with `include_archived=true`, its roster to the NLP "
    "service, and the review of its batches."
)


@router.post(
    "/archive",
    response_model=ArchiveReport,
    summary="Archive every class of a course",
    description=(
        "Term-end archive: archives every active class of the calling teacher in `course_code` "
        "and reports how many (and which). Publishes `ClassUpdatedV1` per class archived. "
        + _READ_ONLY
    ),
)
async def archive_course(
    course_code: Annotated[CourseCode, Query(description="The course whose classes to archive.")],
    teacher_id: TeacherId,
    uow: Uow,
) -> ArchiveReport:
    class_ids = await archive.archive_course(uow, teacher_id, course_code)
    return ArchiveReport(course_code=course_code, archived=len(class_ids), class_ids=class_ids)


@router.post(
    "/{class_id:class_id}/archive",
    response_model=ClassResponse,
    summary="Archive a class",
    description=(
        "Sets `archived_at` and publishes `ClassUpdatedV1` (with `archived: true`); archiving "
        "an archived class changes nothing. " + _READ_ONLY
    ),
)
async def archive_class(
    class_id: uuid.UUID, teacher_id: TeacherId, uow: Uow, request: Request
) -> JsonText:
    await archive.set_archived(uow, teacher_id, class_id, archived=True)
    return JsonText(await queries.get_class(read_db(request), teacher_id, class_id))


@router.post(
    "/{class_id:class_id}/unarchive",
    response_model=ClassResponse,
    summary="Unarchive a class",
    description=(
        "Makes an archived class active (writable, listed) again and publishes `ClassUpdatedV1` "
        "(with `archived: false`); unarchiving an active class changes nothing."
    ),
)
async def unarchive_class(
    class_id: uuid.UUID, teacher_id: TeacherId, uow: Uow, request: Request
) -> JsonText:
    await archive.set_archived(uow, teacher_id, class_id, archived=False)
    return JsonText(await queries.get_class(read_db(request), teacher_id, class_id))
