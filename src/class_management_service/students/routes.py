"""HTTP routes of the students feature (gateway callers, identified by X-User-ID).

Included before the classes router: ``/v1/classes/students/...`` must win over
``/v1/classes/{class_id}``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from class_management_service.classes.schemas import SearchText
from class_management_service.errors import (
    ERROR_RESPONSES,
    ErrorResponse,
    ServiceError,
    ValidationFailed,
)
from class_management_service.http.deps import TeacherId, Uow, read_db
from class_management_service.http.json_text import JsonText
from class_management_service.http.pagination import LIST_RESPONSES, PageQuery
from class_management_service.students import queries, roster_import, service
from class_management_service.students.importer import COLUMN_ALIASES, MAX_ROWS, parse_roster
from class_management_service.students.schemas import (
    ImportReportRows,
    RosterImportReport,
    StudentCreate,
    StudentDeleted,
    StudentList,
    StudentResponse,
    StudentSort,
    StudentUpdate,
)

router = APIRouter(tags=["students"], responses=ERROR_RESPONSES)

STUDENTS = "/v1/classes/students"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


SortQuery = Annotated[StudentSort, Query(description="Sort key; `-` sorts descending.")]
SearchQuery = Annotated[
    SearchText | None,
    Query(description="Case-insensitive substring of the first, last or full name or e-mail."),
]


@router.post(
    STUDENTS,
    status_code=status.HTTP_201_CREATED,
    response_model=StudentResponse,
    summary="Create a student",
    description=(
        "Creates a student owned by the calling teacher, optionally in some of the teacher's "
        "classes (`class_ids`; another teacher's class is a 404), and publishes "
        "`StudentCreatedV1` (`huleedu.class.student.created.v1`) in the same transaction. "
        "The e-mail is stored normalised (NFKC, case-folded, invisible characters removed); "
        "one teacher cannot have two students whose e-mails are equal in that form (409)."
    ),
)
async def create_student(
    body: StudentCreate, teacher_id: TeacherId, uow: Uow, request: Request
) -> JsonText:
    student_id = await service.create_student(uow, teacher_id, body)
    return JsonText(
        await queries.get_student(read_db(request), teacher_id, student_id), status.HTTP_201_CREATED
    )


@router.get(
    STUDENTS,
    response_model=StudentList,
    summary="List own students",
    description=(
        "The calling teacher's students, filtered, sorted and paginated. `class_id` narrows the "
        "list to one class (a class the teacher does not own simply matches nothing). Pages "
        "by `cursor`, or by `offset`."
    ),
    responses=LIST_RESPONSES,
)
async def list_students(
    teacher_id: TeacherId,
    request: Request,
    page: PageQuery,
    sort: SortQuery = StudentSort.NAME,
    class_id: Annotated[uuid.UUID | None, Query(description="Only this class.")] = None,
    q: SearchQuery = None,
) -> JsonText:
    return await queries.list_students(
        read_db(request), teacher_id, page, sort=sort, class_id=class_id, search=q
    )


@router.get(
    f"{STUDENTS}/{{student_id}}",
    response_model=StudentResponse,
    summary="Get a student",
    description="404 also when the student belongs to another teacher.",
)
async def get_student(student_id: uuid.UUID, teacher_id: TeacherId, request: Request) -> JsonText:
    return JsonText(await queries.get_student(read_db(request), teacher_id, student_id))


@router.put(
    f"{STUDENTS}/{{student_id}}",
    response_model=StudentResponse,
    summary="Update a student",
    description=(
        "Omitted or null fields keep their value; `person_name` changes only the name fields "
        "it contains. `add_class_ids` must be the teacher's own classes (404 otherwise); "
        "removing a class the student is not in is a no-op; a class in both lists is a 422. "
        "Publishes `StudentUpdatedV1` (`huleedu.class.student.updated.v1`) only when something "
        'changed; its null fields mean "not changed".'
    ),
)
async def update_student(
    student_id: uuid.UUID, body: StudentUpdate, teacher_id: TeacherId, uow: Uow, request: Request
) -> JsonText:
    await service.update_student(uow, teacher_id, student_id, body)
    return JsonText(await queries.get_student(read_db(request), teacher_id, student_id))


@router.delete(
    f"{STUDENTS}/{{student_id}}",
    summary="Delete a student",
    description=(
        "Deletes the student and their class memberships; answers 200 with a message (the "
        "platform's clients read a JSON body). A student recorded as the author of essays "
        "(essay-student associations) cannot be deleted: 409. Publishes no event (the contract "
        "has none)."
    ),
)
async def delete_student(student_id: uuid.UUID, teacher_id: TeacherId, uow: Uow) -> StudentDeleted:
    await service.delete_student(uow, teacher_id, student_id)
    return StudentDeleted()


@router.get(
    "/v1/classes/{class_id}/students",
    response_model=StudentList,
    summary="List the students of a class",
    description="Like `GET /v1/classes/students?class_id=...`, but 404 for a class not owned.",
    responses=LIST_RESPONSES,
)
async def list_class_students(
    class_id: uuid.UUID,
    teacher_id: TeacherId,
    request: Request,
    page: PageQuery,
    sort: SortQuery = StudentSort.NAME,
    q: SearchQuery = None,
) -> JsonText:
    return await queries.list_class_students(
        read_db(request), teacher_id, class_id, page, sort=sort, search=q
    )


_CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})
_HEADER_DOC = "; ".join(
    f"`{column}`: " + ", ".join(f"`{alias}`" for alias in aliases)
    for column, aliases in COLUMN_ALIASES.items()
)
_EXAMPLE_CSV = (
    "first_name,last_name,legal_full_name,email\n"
    "Anna,Svensson,Anna Maria Svensson,anna.svensson@example.com\n"
    "Erik,Lind,,\n"
)


async def _csv_upload(request: Request) -> bytes:
    """The CSV bytes of a raw ``text/csv`` body or of the ``file`` part of a multipart form."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in _CSV_MEDIA_TYPES:
        return await request.body()
    if media_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ValidationFailed("The multipart form needs the CSV as a file part 'file'.")
            return await upload.read()
    raise UnsupportedMediaType(
        "Send the roster as text/csv, or as multipart/form-data with a 'file' part.",
        {"content_type": media_type[:100]},
    )


@router.post(
    "/v1/classes/{class_id}/students/import",
    summary="Import a class roster from CSV",
    description=(
        "Creates or updates the teacher's students from a CSV file and makes every accepted "
        "row a member of the class, in one transaction. Re-importing the same file changes "
        "nothing (every row `unchanged`).\n\n"
        "**File**: UTF-8 (a byte-order mark is fine), comma-, semicolon- or tab-separated "
        "(detected from the header line), with a header row. Columns, matched "
        "case-insensitively with spaces/hyphens read as underscores: "
        f"{_HEADER_DOC}. `first_name` and `last_name` are required; other columns are ignored "
        f"(and listed in `ignored_columns`). At most {MAX_ROWS} rows.\n\n"
        "**Matching**: a row with an e-mail is the teacher's student with that e-mail "
        "(compared normalised, as on create); if none exists but exactly one class member of "
        "the same name has no e-mail, the e-mail is given to that student. A row without an "
        "e-mail is the class member with the same first and last name (case-insensitive), else "
        "a new student. "
        "Empty cells never erase stored values.\n\n"
        "**Rows rejected** (the rest still imports): empty or too long names, invalid e-mail, "
        "extra fields, an e-mail repeated in the file (the first row wins), a row without "
        "e-mail whose name another row shares or several class members share.\n\n"
        "**Report**: one entry per row (`row` is the line in the file, the header is 1) with "
        "`created`, `updated` (names changed and/or joined the class), `unchanged` or "
        "`rejected` and a reason, plus totals. `rows=rejected` lists only rejected rows.\n\n"
        "Publishes `StudentCreatedV1` for each created and `StudentUpdatedV1` for each "
        "updated student. Errors: 400 not UTF-8 or malformed CSV, 404 class not found, "
        "413 too many rows or body too large, 415 other content type, 422 missing header "
        "columns."
    ),
    responses={
        415: {"model": ErrorResponse, "description": "Neither text/csv nor multipart/form-data"}
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": _EXAMPLE_CSV},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    },
)
async def import_roster(
    class_id: uuid.UUID,
    request: Request,
    teacher_id: TeacherId,
    uow: Uow,
    rows: Annotated[
        ImportReportRows, Query(description="Which rows the report lists.")
    ] = ImportReportRows.ALL,
) -> RosterImportReport:
    data = await _csv_upload(request)
    # Parsing 50,000 rows takes a while: off the event loop, other requests keep flowing.
    roster = await run_in_threadpool(parse_roster, data)
    return await roster_import.import_roster(uow, teacher_id, class_id, roster, report_rows=rows)
