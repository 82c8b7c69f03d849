"""Routes for platform services: NLP roster and batch/essay lookups (internal authentication)."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.models import EssayStudentAssociation
from tests.http_helpers import (
    assert_error,
    create_class,
    create_student,
)


async def test_internal_routes_need_the_key_and_the_service_id(
    api_client: httpx.AsyncClient, internal_headers: dict[str, str]
) -> None:
    # (The roster also admits teachers and, if enabled, anonymous callers:
    # test_roster_access.py.)
    paths = [
        f"/internal/v1/batches/{uuid.uuid4()}/student-names",
        f"/internal/v1/associations/essay/{uuid.uuid4()}",
        f"/internal/v1/batches/class-info?batch_ids={uuid.uuid4()}",
    ]
    wrong_key = {**internal_headers, "X-Internal-API-Key": "wrong"}
    no_service = {"X-Internal-API-Key": internal_headers["X-Internal-API-Key"]}
    # A teacher identity is no substitute for the internal key.
    for headers in ({}, wrong_key, no_service, {"X-User-ID": "teacher-a"}):
        for path in paths:
            assert_error(await api_client.get(path, headers=headers), 401, "UNAUTHORIZED")


async def test_roster_lists_the_class_students_for_nlp(
    api_client: httpx.AsyncClient, internal_headers: dict[str, str]
) -> None:
    school_class = await create_class(api_client, "teacher-a")
    other_class = await create_class(api_client, "teacher-a", name="Other")
    bo = await create_student(
        api_client, first="Bo", last="Ek", email="bo@x.se", class_ids=[school_class["id"]]
    )
    anna = await create_student(
        api_client,
        first="Anna",
        last="Åberg",
        legal="Anna Maria Åberg",
        class_ids=[school_class["id"]],
    )
    await create_student(api_client, first="Not", last="Member", class_ids=[other_class["id"]])

    response = await api_client.get(
        f"/v1/classes/{school_class['id']}/roster", headers=internal_headers
    )
    missing = await api_client.get(f"/v1/classes/{uuid.uuid4()}/roster", headers=internal_headers)
    empty = await api_client.get(
        f"/v1/classes/{other_class['id']}/roster", headers=internal_headers
    )

    assert response.status_code == 200
    assert response.json() == {
        "students": [
            {
                "student_id": bo["id"],
                "first_name": "Bo",
                "last_name": "Ek",
                "full_legal_name": "Bo Ek",  # no legal name recorded: first + last
                "email": "bo@x.se",
            },
            {
                "student_id": anna["id"],
                "first_name": "Anna",
                "last_name": "Åberg",
                "full_legal_name": "Anna Maria Åberg",
                "email": None,
            },
        ]
    }
    assert_error(missing, 404, "NOT_FOUND")
    assert len(empty.json()["students"]) == 1


async def test_batch_and_essay_lookups_read_the_associations(
    api_client: httpx.AsyncClient,
    internal_headers: dict[str, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    school_class = await create_class(api_client, name="9A English")
    anna = await create_student(api_client, first="Anna", last="Svensson", legal="Anna M Svensson")
    batch_id, other_batch = uuid.uuid4(), uuid.uuid4()
    matched_essay, unmatched_essay = uuid.uuid4(), uuid.uuid4()

    async def get(path: str) -> httpx.Response:
        return await api_client.get(path, headers=internal_headers)

    # Before any association exists, everything is empty.
    assert (await get(f"/internal/v1/batches/{batch_id}/student-names")).json() == []
    assert_error(await get(f"/internal/v1/associations/essay/{matched_essay}"), 404, "NOT_FOUND")

    async with session_factory() as session:
        session.add_all(
            [
                EssayStudentAssociation(
                    essay_id=matched_essay,
                    batch_id=batch_id,
                    class_id=uuid.UUID(school_class["id"]),
                    student_id=uuid.UUID(anna["id"]),
                    confidence_score=0.93,
                    status="pending_validation",
                ),
                EssayStudentAssociation(
                    essay_id=unmatched_essay,
                    batch_id=batch_id,
                    class_id=uuid.UUID(school_class["id"]),
                    student_id=None,
                    status="no_match",
                ),
            ]
        )
        await session.commit()

    names = await get(f"/internal/v1/batches/{batch_id}/student-names")
    association = await get(f"/internal/v1/associations/essay/{matched_essay}")
    class_info = await get(
        f"/internal/v1/batches/class-info?batch_ids={batch_id}, {other_batch},single-essay-batch,"
    )

    assert names.json() == [
        {
            "essay_id": str(matched_essay),
            "student_id": anna["id"],
            "student_person_name": {
                "first_name": "Anna",
                "last_name": "Svensson",
                "legal_full_name": "Anna M Svensson",
            },
        }
    ]
    body = association.json()
    assert (body["essay_id"], body["batch_id"], body["student_id"]) == (
        str(matched_essay),
        str(batch_id),
        anna["id"],
    )
    assert (body["status"], body["confidence_score"], body["class_id"]) == (
        "pending_validation",
        0.93,
        school_class["id"],
    )
    unmatched = (await get(f"/internal/v1/associations/essay/{unmatched_essay}")).json()
    assert (unmatched["status"], unmatched["student_id"]) == ("no_match", None)
    assert class_info.json() == {
        str(batch_id): {"class_id": school_class["id"], "class_name": "9A English"},
        str(other_batch): None,
        "single-essay-batch": None,
    }
    # In the batch_ids list an id that is not a UUID matches nothing (above); as a path id it
    # is a malformed request, as on every route.
    bad_batch = await get("/internal/v1/batches/single-essay-batch/student-names")
    assert_error(bad_batch, 400, "BAD_REQUEST")
    assert_error(await get("/internal/v1/associations/essay/not-a-uuid"), 400, "BAD_REQUEST")


async def test_class_info_validates_its_query(
    api_client: httpx.AsyncClient, internal_headers: dict[str, str]
) -> None:
    too_many = ",".join(str(uuid.uuid4()) for _ in range(501))
    for query in ("", f"?batch_ids={too_many}"):
        response = await api_client.get(
            f"/internal/v1/batches/class-info{query}", headers=internal_headers
        )
        assert_error(response, 422, "VALIDATION_ERROR")
    empty = await api_client.get(
        "/internal/v1/batches/class-info?batch_ids=", headers=internal_headers
    )
    assert empty.json() == {}
