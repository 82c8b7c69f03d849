"""Rules the teacher review API enforces over a real PostgreSQL: clean 401/404/422 answers on
bad decisions, and nothing written by a refused request."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.models import EssayStudentAssociation
from tests.factories import seed_batch
from tests.postgres.associations.conftest import Headers, _item, _url


async def test_request_errors(
    api_client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    teacher_headers: Headers,
) -> None:
    batch = await seed_batch(session_factory)
    foreign = await seed_batch(session_factory, teacher="teacher-b")
    headers = teacher_headers("teacher-a")
    url = _url(batch.batch_id, confirm=True)

    async def post(items: list[dict[str, object]], who: str = "teacher-a") -> httpx.Response:
        return await api_client.post(
            url, json={"associations": items}, headers=teacher_headers(who)
        )

    not_in_batch = await post([_item(foreign.essays[0], None, confirmed=False)])
    assert not_in_batch.status_code == 422
    assert not_in_batch.json()["error"]["details"]["essays_not_in_batch"] == [
        str(foreign.essays[0])
    ]
    # A student of another teacher's class is not in this class's roster.
    outside = await post([_item(batch.essays[0], foreign.suggested[0])])
    assert outside.status_code == 422
    assert "students_not_in_class" in outside.json()["error"]["details"]
    unknown_student = await post([_item(batch.essays[0], uuid.uuid4())])
    assert unknown_student.status_code == 422
    no_student = await post([_item(batch.essays[0], None)])
    assert no_student.status_code == 422
    empty = await post([])
    assert empty.status_code == 422
    malformed = await api_client.post(
        url, json={"associations": [{"essay_id": "x", "confirmed": True}]}, headers=headers
    )
    assert malformed.status_code == 422
    other_teacher = await post([_item(batch.essays[0], batch.suggested[0])], who="teacher-b")
    assert other_teacher.status_code == 404
    anonymous = await api_client.post(
        url, json={"associations": [_item(batch.essays[0], batch.suggested[0])]}
    )
    assert anonymous.status_code == 401

    # Nothing was written by any of the refused requests.
    async with session_factory() as session:
        undecided = await session.scalar(
            select(func.count()).where(
                EssayStudentAssociation.batch_id == batch.batch_id,
                EssayStudentAssociation.status == AssociationStatus.PENDING_VALIDATION.value,
            )
        )
    assert undecided == 3
