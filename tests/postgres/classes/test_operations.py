"""The classes use cases through the API over a real PostgreSQL: create, read, list, update,
delete, and a teacher seeing only own classes.

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


async def test_create_returns_the_class_and_queues_class_created(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    correlation_id = str(uuid.uuid4())
    response = await api_client.post(
        "/v1/classes/",
        json={"name": "  9A English  ", "course_codes": ["ENG5"]},
        headers={**A, "X-Correlation-ID": correlation_id},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "9A English"
    assert (body["course_code"], body["course_name"], body["student_count"]) == (
        "ENG5",
        "English 5",
        0,
    )
    (event,) = await outbox_events(session_factory, topics.CLASS_CREATED)
    assert event.message_key == event.aggregate_id == body["id"]
    assert event.envelope["correlation_id"] == correlation_id
    data = dict(event.envelope["data"])
    assert data.pop("timestamp")
    assert data == {
        "event": "class.created",
        "class_id": body["id"],
        "class_designation": "9A English",
        "course_codes": ["ENG5"],
        "user_id": "teacher-a",
        "correlation_id": correlation_id,
    }


async def test_a_teacher_only_ever_sees_and_changes_own_classes(
    api_client: httpx.AsyncClient,
) -> None:
    created = await create_class(api_client, "teacher-a", name="9A")
    path = f"/v1/classes/{created['id']}"
    missing_path = f"/v1/classes/{uuid.uuid4()}"

    assert (await api_client.get(path, headers=A)).json() == created
    # Teacher B: every route answers as if the class did not exist.
    foreign = assert_error(await api_client.get(path, headers=B), 404, "NOT_FOUND")
    missing = assert_error(await api_client.get(missing_path, headers=A), 404, "NOT_FOUND")
    assert foreign["message"] == missing["message"]
    assert (await api_client.get("/v1/classes/", headers=B)).json()["pagination"]["total"] == 0
    assert_error(await api_client.put(path, json={"name": "B"}, headers=B), 404, "NOT_FOUND")
    assert_error(await api_client.delete(path, headers=B), 404, "NOT_FOUND")
    assert (await api_client.get(path, headers=A)).json() == created

    assert_error(
        await api_client.put(missing_path, json={"name": "B"}, headers=A), 404, "NOT_FOUND"
    )
    assert_error(await api_client.delete(missing_path, headers=A), 404, "NOT_FOUND")
    invalid = await api_client.put(path, json={"course_codes": ["ENG5", "ENG6"]}, headers=A)
    assert_error(invalid, 422, "VALIDATION_ERROR")


async def test_list_paginates_filters_and_sorts(api_client: httpx.AsyncClient) -> None:
    for name, course in [
        ("English 9A", "ENG5"),
        ("english 9B", "ENG6"),
        ("Svenska 9A", "SV1"),
        ("100%_literal", "SV1"),
        ("Zoology", "ENG7"),
    ]:
        await create_class(api_client, "teacher-a", name=name, course=course)
    await create_class(api_client, "teacher-b", name="English of B")

    async def page(query: str) -> dict[str, Any]:
        response = await api_client.get(f"/v1/classes/?{query}", headers=A)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def names(query: str) -> list[str]:
        return [item["name"] for item in (await page(query))["classes"]]

    first = await page("limit=2&sort=name")
    assert [item["name"] for item in first["classes"]] == ["100%_literal", "English 9A"]
    assert first["pagination"] == {"limit": 2, "offset": 0, "returned": 2, "total": 5}
    last = await page("limit=2&offset=4&sort=name")
    assert [item["name"] for item in last["classes"]] == ["Zoology"]
    assert last["pagination"] == {"limit": 2, "offset": 4, "returned": 1, "total": 5}
    assert await page("offset=10") == {
        "classes": [],
        "pagination": {"limit": 20, "offset": 10, "returned": 0, "total": 5},
        "next": None,
    }

    assert await names("course_code=SV1&sort=name") == ["100%_literal", "Svenska 9A"]
    assert await names("q=ENGLISH&sort=-name") == ["english 9B", "English 9A"]
    assert await names("q=9a&sort=name") == ["English 9A", "Svenska 9A"]
    assert await names("q=%25_") == ["100%_literal"]  # LIKE wildcards are taken literally
    created_order = ["English 9A", "english 9B", "Svenska 9A", "100%_literal", "Zoology"]
    assert await names("sort=created_at") == created_order
    assert await names("") == created_order[::-1]  # newest first by default


async def test_update_queues_class_updated_only_when_something_changes(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    created = await create_class(api_client, name="9A", course="ENG5")
    path = f"/v1/classes/{created['id']}"

    for unchanged in ({}, {"name": "9A"}, {"course_codes": ["ENG5"], "name": None}):
        response = await api_client.put(path, json=unchanged, headers=A)
        assert response.json() == created
    renamed = await api_client.put(path, json={"name": "9B"}, headers=A)
    moved = await api_client.put(path, json={"course_codes": ["SV2"]}, headers=A)

    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["course_code"]) == ("9B", "ENG5")
    assert (moved.json()["name"], moved.json()["course_code"]) == ("9B", "SV2")
    assert moved.json()["updated_at"] > created["updated_at"]
    events = await outbox_events(session_factory, topics.CLASS_UPDATED)
    payloads = [event.envelope["data"] for event in events]
    assert [(p["class_designation"], p["course_codes"]) for p in payloads] == [
        ("9B", None),
        (None, ["SV2"]),
    ]
    assert all(p["event"] == "class.updated" and p["user_id"] == "teacher-a" for p in payloads)
    assert all(event.message_key == created["id"] for event in events)


async def test_delete_removes_class_and_memberships_and_publishes_nothing(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    created = await create_class(api_client)
    anna = await create_student(api_client, first="Anna", class_ids=[created["id"]])
    await create_student(api_client, first="Bo", class_ids=[created["id"]])
    listed = (await api_client.get("/v1/classes/", headers=A)).json()
    fetched = (await api_client.get(f"/v1/classes/{created['id']}", headers=A)).json()
    assert listed["classes"][0]["student_count"] == fetched["student_count"] == 2
    events_before = len(await outbox_events(session_factory))

    response = await api_client.delete(f"/v1/classes/{created['id']}", headers=A)

    assert (response.status_code, response.json()) == (
        200,
        {"message": "Class deleted successfully"},
    )
    gone = await api_client.get(f"/v1/classes/{created['id']}", headers=A)
    assert_error(gone, 404, "NOT_FOUND")
    student = await api_client.get(f"/v1/classes/students/{anna['id']}", headers=A)
    assert student.json()["class_ids"] == []
    assert len(await outbox_events(session_factory)) == events_before
