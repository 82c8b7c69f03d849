"""The students use cases through the API over a real PostgreSQL: create, read, list, update,
delete, and a teacher seeing only own students.

Each test gets a fresh database (a few hundred milliseconds), so related checks share a test.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging import topics
from tests.http_helpers import (
    assert_error,
    create_class,
    create_student,
    outbox_events,
    teacher,
)

A, B = teacher("teacher-a"), teacher("teacher-b")
STUDENTS = "/v1/classes/students"


def _without_timestamp(event_data: dict[str, Any]) -> dict[str, Any]:
    data = dict(event_data)
    assert data.pop("timestamp")
    return data


async def test_create_normalizes_email_joins_classes_and_queues_student_created(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    school_class = await create_class(api_client)
    correlation_id = str(uuid.uuid4())

    response = await api_client.post(
        STUDENTS,
        json={
            "person_name": {
                "first_name": " Anna ",
                "last_name": "Svensson",
                "legal_full_name": "Anna Maria Svensson",
            },
            "email": "  Anna.Svensson@Example.COM ",
            "class_ids": [school_class["id"], school_class["id"]],
        },
        headers={**A, "X-Correlation-ID": correlation_id},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["person_name"] == {
        "first_name": "Anna",
        "last_name": "Svensson",
        "legal_full_name": "Anna Maria Svensson",
    }
    assert body["email"] == "anna.svensson@example.com"
    assert body["class_ids"] == [school_class["id"]]
    (event,) = await outbox_events(session_factory, topics.STUDENT_CREATED)
    assert event.message_key == body["id"]
    assert event.envelope["correlation_id"] == correlation_id
    assert _without_timestamp(event.envelope["data"]) == {
        "event": "student.created",
        "student_id": body["id"],
        "first_name": "Anna",
        "last_name": "Svensson",
        "student_email": "anna.svensson@example.com",
        "class_ids": [school_class["id"]],
        "created_by_user_id": "teacher-a",
        "correlation_id": correlation_id,
    }


async def test_teacher_b_cannot_read_list_update_or_delete_a_student_of_teacher_a(
    api_client: httpx.AsyncClient,
) -> None:
    school_class = await create_class(api_client, "teacher-a")
    student = await create_student(api_client, "teacher-a", class_ids=[school_class["id"]])
    path = f"{STUDENTS}/{student['id']}"
    missing_path = f"{STUDENTS}/{uuid.uuid4()}"

    foreign = assert_error(await api_client.get(path, headers=B), 404, "NOT_FOUND")
    missing = assert_error(await api_client.get(missing_path, headers=A), 404, "NOT_FOUND")
    assert foreign["message"] == missing["message"]
    assert (await api_client.get(STUDENTS, headers=B)).json()["students"] == []
    by_class = await api_client.get(f"{STUDENTS}?class_id={school_class['id']}", headers=B)
    assert by_class.json()["pagination"]["total"] == 0
    class_students = await api_client.get(f"/v1/classes/{school_class['id']}/students", headers=B)
    assert_error(class_students, 404, "NOT_FOUND")
    rename = {"person_name": {"first_name": "X", "last_name": "Y"}}
    assert_error(await api_client.put(path, json=rename, headers=B), 404, "NOT_FOUND")
    assert_error(await api_client.delete(path, headers=B), 404, "NOT_FOUND")
    assert_error(await api_client.put(missing_path, json=rename, headers=A), 404, "NOT_FOUND")
    assert_error(await api_client.delete(missing_path, headers=A), 404, "NOT_FOUND")
    assert (await api_client.get(path, headers=A)).json() == student


async def test_lists_paginate_filter_and_sort(api_client: httpx.AsyncClient) -> None:
    nine_a = await create_class(api_client, name="9A")
    nine_b = await create_class(api_client, name="9B")
    for first, last, email, classes in [
        ("Anna", "Svensson", "anna@school.se", [nine_a["id"]]),
        ("Bo", "Ek", "bo@school.se", [nine_a["id"], nine_b["id"]]),
        ("Cecilia", "Åberg", None, [nine_b["id"]]),
        ("David", "Svensson", "dave@other.org", []),
    ]:
        await create_student(api_client, first=first, last=last, email=email, class_ids=classes)
    await create_student(api_client, "teacher-b", first="Eve", last="Svensson")

    async def page(path: str) -> dict[str, Any]:
        response = await api_client.get(path, headers=A)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def firsts(path: str) -> list[str]:
        return [item["person_name"]["first_name"] for item in (await page(path))["students"]]

    first_page = await page(f"{STUDENTS}?limit=2")
    assert [s["person_name"]["first_name"] for s in first_page["students"]] == ["Bo", "Anna"]
    assert first_page["pagination"] == {"limit": 2, "offset": 0, "returned": 2, "total": 4}
    assert await firsts(f"{STUDENTS}?limit=2&offset=2") == ["David", "Cecilia"]
    assert await firsts(f"{STUDENTS}?sort=-name") == ["Cecilia", "David", "Anna", "Bo"]
    assert await firsts(f"{STUDENTS}?sort=created_at") == ["Anna", "Bo", "Cecilia", "David"]
    assert await firsts(f"{STUDENTS}?sort=email") == ["Anna", "Bo", "David", "Cecilia"]
    assert await firsts(f"{STUDENTS}?class_id={nine_a['id']}") == ["Bo", "Anna"]
    assert await firsts(f"{STUDENTS}?q=svensson") == ["Anna", "David"]
    assert await firsts(f"{STUDENTS}?q=anna%20svens") == ["Anna"]
    assert await firsts(f"{STUDENTS}?q=SCHOOL.SE&class_id={nine_b['id']}") == ["Bo"]
    class_page = await page(f"/v1/classes/{nine_b['id']}/students?sort=-name")
    assert [s["person_name"]["first_name"] for s in class_page["students"]] == ["Cecilia", "Bo"]
    assert class_page["pagination"] == {"limit": 20, "offset": 0, "returned": 2, "total": 2}
    bo = next(s for s in class_page["students"] if s["person_name"]["first_name"] == "Bo")
    assert bo["class_ids"] == sorted([nine_a["id"], nine_b["id"]])
    missing_class = await api_client.get(f"/v1/classes/{uuid.uuid4()}/students", headers=A)
    assert_error(missing_class, 404, "NOT_FOUND")


async def test_update_changes_names_email_and_classes_and_queues_student_updated(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    nine_a = await create_class(api_client, name="9A")
    nine_b = await create_class(api_client, name="9B")
    student = await create_student(
        api_client, legal="Anna Maria Svensson", email="anna@x.se", class_ids=[nine_a["id"]]
    )
    path = f"{STUDENTS}/{student['id']}"

    for unchanged in (
        {},
        {"person_name": {"first_name": "Anna", "last_name": "Svensson"}, "email": "ANNA@x.se"},
        {"add_class_ids": [nine_a["id"]], "remove_class_ids": [nine_b["id"]]},
    ):
        response = await api_client.put(path, json=unchanged, headers=A)
        assert response.json() == student
    assert await outbox_events(session_factory, topics.STUDENT_UPDATED) == []

    response = await api_client.put(
        path,
        json={
            "person_name": {"first_name": "Anna", "last_name": "Berg"},
            "email": "anna.berg@x.se",
            "add_class_ids": [nine_b["id"]],
            "remove_class_ids": [nine_a["id"]],
        },
        headers=A,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    # legal_full_name was not in the request, so it stays.
    assert body["person_name"] == {
        "first_name": "Anna",
        "last_name": "Berg",
        "legal_full_name": "Anna Maria Svensson",
    }
    assert (body["email"], body["class_ids"]) == ("anna.berg@x.se", [nine_b["id"]])
    assert body["updated_at"] > student["updated_at"]
    (event,) = await outbox_events(session_factory, topics.STUDENT_UPDATED)
    assert event.message_key == student["id"]
    data = _without_timestamp(event.envelope["data"])
    assert data.pop("correlation_id")
    assert data == {
        "event": "student.updated",
        "student_id": student["id"],
        "first_name": None,
        "last_name": "Berg",
        "student_email": "anna.berg@x.se",
        "add_class_ids": [nine_b["id"]],
        "remove_class_ids": [nine_a["id"]],
        "updated_by_user_id": "teacher-a",
    }


async def test_update_of_person_name_is_partial(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    student = await create_student(api_client, first="Anna", last="Svensson", legal="Anna M S")
    path = f"{STUDENTS}/{student['id']}"

    first_only = await api_client.put(path, json={"person_name": {"first_name": "X"}}, headers=A)
    last_only = await api_client.put(path, json={"person_name": {"last_name": "Berg"}}, headers=A)
    legal_only = await api_client.put(
        path, json={"person_name": {"legal_full_name": "X Berg"}}, headers=A
    )
    nothing = await api_client.put(path, json={"person_name": {"first_name": None}}, headers=A)
    empty_name = await api_client.put(path, json={"person_name": {"first_name": " "}}, headers=A)

    assert first_only.status_code == 200, first_only.text
    assert first_only.json()["person_name"] == {
        "first_name": "X",
        "last_name": "Svensson",
        "legal_full_name": "Anna M S",
    }
    assert (last_only.json()["first_name"], last_only.json()["last_name"]) == ("X", "Berg")
    assert legal_only.json()["person_name"] == {
        "first_name": "X",
        "last_name": "Berg",
        "legal_full_name": "X Berg",
    }
    assert nothing.json() == legal_only.json()
    # Partial, yet still validated: a name that is given must not be blank.
    assert_error(empty_name, 422, "VALIDATION_ERROR")
    events = await outbox_events(session_factory, topics.STUDENT_UPDATED)
    assert [
        (e.envelope["data"]["first_name"], e.envelope["data"]["last_name"]) for e in events
    ] == [
        ("X", None),
        (None, "Berg"),
        (None, None),  # legal_full_name is not in the contract's event
    ]
