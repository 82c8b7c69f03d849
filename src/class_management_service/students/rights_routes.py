"""HTTP routes of students' data rights: the export and the erasure (gateway callers,
identified by X-User-ID; another teacher's student is a 404)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from class_management_service.errors import ERROR_RESPONSES
from class_management_service.http.deps import TeacherId, Uow, read_db
from class_management_service.http.json_text import JsonText
from class_management_service.students import data_rights, export, queries
from class_management_service.students.export_schemas import StudentExport
from class_management_service.students.routes import STUDENTS
from class_management_service.students.schemas import StudentResponse

router = APIRouter(tags=["students' data rights"], responses=ERROR_RESPONSES)


@router.get(
    f"{STUDENTS}/{{student_id}}/export",
    response_model=StudentExport,
    summary="Export everything held about a student",
    description=(
        "GDPR articles 15 and 20: the student's profile, class memberships and essay "
        "associations (with their batches and the decisions taken on them), as one JSON "
        "document. Works for an erased student too (then showing only the pseudonymous record)."
    ),
)
async def export_student(
    student_id: uuid.UUID, teacher_id: TeacherId, request: Request
) -> JsonText:
    return JsonText(await export.export_student(read_db(request), teacher_id, student_id))


@router.post(
    f"{STUDENTS}/{{student_id}}/erase",
    response_model=StudentResponse,
    summary="Erase a student's personal data",
    description=(
        f"GDPR article 17: the names become the pseudonym `{data_rights.PSEUDONYM}`, the "
        "e-mail and legal name are removed (from every table, the outbox's rows included), the "
        "student leaves every class (archived ones too) and so every roster, list and search; "
        "the essays stay linked to the student's id (their file names and match reasons go), "
        "so the platform's results stay consistent. Publishes `StudentUpdatedV1` with "
        "`erased_fields`. Erasing an erased student changes nothing and publishes nothing (200). "
        "Answers the erased student; an erased student cannot be changed afterwards (409)."
    ),
)
async def erase_student(
    student_id: uuid.UUID, teacher_id: TeacherId, uow: Uow, request: Request
) -> JsonText:
    await data_rights.erase_student(uow, teacher_id, student_id)
    return JsonText(await queries.get_student(read_db(request), teacher_id, student_id))
