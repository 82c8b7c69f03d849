"""HTTP routes of the associations feature: the teacher's review of a batch."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request

from class_management_service.associations import queries, service
from class_management_service.associations.decisions import TeacherDecision
from class_management_service.associations.schemas import (
    BatchAssociationsResponse,
    ConfirmAssociationsRequest,
    ConfirmAssociationsResponse,
    EssayHistoryResponse,
)
from class_management_service.errors import ERROR_RESPONSES, MalformedRequest
from class_management_service.http.deps import ServiceClock, TeacherId, Uow, read_db
from class_management_service.http.json_text import JsonText
from class_management_service.observability.context import current_correlation_id

router = APIRouter(prefix="/v1/batches", tags=["student associations"], responses=ERROR_RESPONSES)
# Checked by _batch_uuid (400, not FastAPI's 422: the contract's answer to a non-UUID path id).
BatchId = Annotated[
    str, Path(description="The batch's UUID.", json_schema_extra={"format": "uuid"})
]


def _batch_uuid(batch_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(batch_id)
    except ValueError:
        raise MalformedRequest("batch_id must be a UUID.", {"batch_id": batch_id[:100]}) from None


@router.get(
    "/{batch_id}/student-associations",
    summary="The suggested/decided author of every essay of a batch",
    response_model=BatchAssociationsResponse,
    description=(
        "Every essay of the batch with its suggested or decided student, the other ranked "
        "suggestions (`alternatives`) and how many changes its history holds; `auto_decided` "
        "counts the essays the auto-confirm policy decided. A batch the teacher has nothing "
        "for (not stored yet, or another teacher's) lists no associations."
    ),
    responses={k: ERROR_RESPONSES[k] for k in (400, 401)},
)
async def list_batch_associations(
    batch_id: BatchId, teacher_id: TeacherId, uow: Uow
) -> BatchAssociationsResponse:
    return await queries.get_batch_associations(
        uow.session, batch_id=_batch_uuid(batch_id), teacher_id=teacher_id
    )


@router.post(
    "/{batch_id}/student-associations/confirm",
    summary="Confirm, reject or reassign essay authors",
    description=(
        "Each item confirms (`confirmed: true` with the author's `student_id`; a student other "
        "than the suggestion reassigns the essay and must be in the class roster) or rejects "
        "(`confirmed: false`) one essay; `confirmed: true` with `student_id: null` for an essay "
        "without a student confirms that it has none. Repeating a decision is a no-op. When "
        "every essay of the batch is decided, StudentAssociationsConfirmedV1 is published once "
        "(with this request's correlation id and trace context); afterwards a different "
        "decision is a 409. An essay not in the batch or a student outside the "
        "class is a 422 (`details` names them)."
    ),
    response_model=ConfirmAssociationsResponse,
)
async def confirm_batch_associations(
    batch_id: BatchId,
    body: ConfirmAssociationsRequest,
    teacher_id: TeacherId,
    uow: Uow,
    clock: ServiceClock,
) -> ConfirmAssociationsResponse:
    return await service.confirm_associations(
        uow,
        batch_id=_batch_uuid(batch_id),
        teacher_id=teacher_id,
        decisions=[
            TeacherDecision(item.essay_id, item.student_id, item.confirmed)
            for item in body.associations
        ],
        now=clock.now(),
        correlation_id=current_correlation_id(),
    )


@router.get(
    "/{batch_id}/essays/{essay_id}/history",
    summary="Every change of an essay's association, oldest first",
    response_model=EssayHistoryResponse,
    description=(
        "Who changed the essay's author or status, when, from what to what, how (`ingested`, "
        "`auto`, `teacher_confirm`, `teacher_reject`, `teacher_reassign`, `timeout`, "
        "`erasure`) and in which request or event (`correlation_id`). Another teacher's essay, "
        "or one not in this batch, is a 404."
    ),
    responses={k: ERROR_RESPONSES[k] for k in (400, 401, 404)},
)
async def get_essay_history(
    batch_id: uuid.UUID, essay_id: uuid.UUID, teacher_id: TeacherId, request: Request
) -> JsonText:
    return JsonText(
        await queries.get_essay_history(
            read_db(request), batch_id=batch_id, essay_id=essay_id, teacher_id=teacher_id
        )
    )
