"""Routes for the platform's services (NLP roster, batch/essay lookups).

Callers authenticate with ``X-Internal-API-Key`` (compared in constant time) and name
themselves in ``X-Service-ID``; there is no teacher scoping. The roster also answers teachers
(their own classes) and, where the operator allows it, callers without credentials.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from class_management_service.errors import ERROR_RESPONSES, ValidationFailed
from class_management_service.http.deps import InternalService, RosterAccess, Uow, read_db
from class_management_service.http.json_text import JsonText
from class_management_service.internal import queries
from class_management_service.internal.schemas import (
    BatchClassInfo,
    ClassRoster,
    EssayAssociation,
    EssayStudentName,
)
from class_management_service.settings import ROSTER_UNAUTHENTICATED_ACCESS

router = APIRouter(tags=["internal"], responses=ERROR_RESPONSES)

MAX_BATCH_IDS = 500


@router.get(
    "/v1/classes/{class_id}/roster",
    summary="Class roster for author matching (NLP service)",
    response_model=ClassRoster,
    description=(
        "Every student of the class, sorted by last and first name. `full_legal_name` falls "
        "back to first and last name when no legal name is recorded.\n\n"
        "Callers: an internal service (`X-Internal-API-Key` + `X-Service-ID`, any class); a "
        "teacher through the gateway (`X-User-ID`: only their own classes, another teacher's "
        "class is a 404); a request with neither only when the operator set "
        f"`{ROSTER_UNAUTHENTICATED_ACCESS}=true` (the platform's NLP client sends no "
        "credentials), otherwise 401. Presented credentials must be valid (a wrong key is a "
        "401 even then)."
    ),
)
async def class_roster(class_id: uuid.UUID, reader: RosterAccess, request: Request) -> JsonText:
    return await queries.class_roster(read_db(request), class_id, teacher_id=reader.teacher_id)


@router.get(
    "/internal/v1/batches/class-info",
    summary="Class of each batch",
    description=(
        "For each id in `batch_ids` (comma-separated, at most "
        f"{MAX_BATCH_IDS}), the class its essays were matched against, or null when the "
        "service has no associations for that batch."
    ),
)
async def batches_class_info(
    batch_ids: Annotated[
        str,
        Query(
            max_length=MAX_BATCH_IDS * 40,
            description="Comma-separated batch ids.",
            examples=["1b6f0a9e-5a4e-4d8f-9c39-2b1f6f0c2d11,5d3c9a61-0e0b-4a47-8f0e-9a6c1b2e7f40"],
        ),
    ],
    _caller: InternalService,
    uow: Uow,
) -> dict[str, BatchClassInfo | None]:
    ids = [batch_id.strip() for batch_id in batch_ids.split(",") if batch_id.strip()]
    if len(set(ids)) > MAX_BATCH_IDS:
        raise ValidationFailed(f"At most {MAX_BATCH_IDS} batch ids per request.")
    return await queries.batches_class_info(uow.session, ids)


@router.get(
    "/internal/v1/batches/{batch_id}/student-names",
    summary="Author names of a batch's essays",
    description=(
        "One entry per essay of the batch that has a (suggested or confirmed) student; "
        "essays without one are left out. An unknown batch gives an empty list."
    ),
)
async def batch_student_names(
    batch_id: uuid.UUID, _caller: InternalService, uow: Uow
) -> list[EssayStudentName]:
    return await queries.batch_student_names(uow.session, batch_id)


@router.get(
    "/internal/v1/associations/essay/{essay_id}",
    summary="The association of one essay",
    description="404 when the service holds no association for the essay.",
)
async def essay_association(
    essay_id: uuid.UUID, _caller: InternalService, uow: Uow
) -> EssayAssociation:
    return await queries.essay_association(uow.session, essay_id)
