"""A change and its outbox event commit together or not at all.

Failures are forced *after* the event row has been added to the transaction, so only a rollback
of the whole unit of work can explain an empty outbox.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.classes import service as classes_service
from class_management_service.classes.models import SchoolClass
from class_management_service.outbox import writer
from class_management_service.outbox.models import OutboxEvent
from class_management_service.students import roster_import
from class_management_service.students import service as students_service
from class_management_service.students.models import Student
from tests.http_helpers import (
    assert_error,
    count_rows,
    create_class,
    create_student,
    teacher,
)

A = teacher("teacher-a")


class ForcedFailure(Exception):
    pass


def _fail_after(real: Callable[..., Any]) -> Callable[..., Any]:
    """``real`` (sync or async) runs, and its effect is left in the transaction; then it fails."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if isinstance(result, Awaitable):

            async def then_fail() -> None:
                await result
                raise ForcedFailure

            return then_fail()
        raise ForcedFailure

    return fail


async def _snapshot(session_factory: async_sessionmaker[AsyncSession]) -> tuple[int, int, int]:
    return (
        await count_rows(session_factory, SchoolClass),
        await count_rows(session_factory, Student),
        await count_rows(session_factory, OutboxEvent),
    )


async def test_failures_after_the_event_is_queued_roll_back_change_and_event(
    api_client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    school_class = await create_class(api_client, name="Before")
    student = await create_student(api_client, first="Before")
    before = await _snapshot(session_factory)
    failing_writer = _fail_after(writer.add_outbox_event)
    monkeypatch.setattr(classes_service, "add_outbox_event", failing_writer)
    monkeypatch.setattr(students_service, "add_outbox_event", failing_writer)
    monkeypatch.setattr(
        roster_import, "copy_outbox_records", _fail_after(writer.copy_outbox_records)
    )
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/classes/", {"json": {"name": "New", "course_codes": ["SV1"]}}),
        ("PUT", f"/v1/classes/{school_class['id']}", {"json": {"name": "After"}}),
        (
            "POST",
            "/v1/classes/students",
            {"json": {"person_name": {"first_name": "N", "last_name": "S"}}},
        ),
        (
            "PUT",
            f"/v1/classes/students/{student['id']}",
            {
                "json": {
                    "person_name": {"first_name": "After", "last_name": "S"},
                    "add_class_ids": [school_class["id"]],
                }
            },
        ),
        (
            "POST",
            f"/v1/classes/{school_class['id']}/students/import",
            {
                "content": "first_name,last_name\nNew,Student\n",
                "headers": {**A, "Content-Type": "text/csv"},
            },
        ),
    ]

    for method, path, request in requests:
        response = await api_client.request(method, path, **{"headers": A, **request})
        # The last-resort handler answers with the contract body, no trace.
        assert_error(response, 500, "INTERNAL_ERROR")

    assert await _snapshot(session_factory) == before
    monkeypatch.undo()
    assert (await api_client.get(f"/v1/classes/{school_class['id']}", headers=A)).json() == (
        school_class
    )
    fetched = await api_client.get(f"/v1/classes/students/{student['id']}", headers=A)
    assert fetched.json() == student


async def test_rejected_writes_leave_neither_change_nor_event(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    school_class = await create_class(api_client)
    await create_student(api_client, first="Bo", email="bo@x.se")
    anna = await create_student(api_client, first="Anna", email="anna@x.se")
    before = await _snapshot(session_factory)

    duplicate = await api_client.post(
        "/v1/classes/students",
        json={
            "person_name": {"first_name": "Other", "last_name": "Bo"},
            "email": "BO@x.se",
            "class_ids": [school_class["id"]],
        },
        headers=A,
    )
    taken = await api_client.put(
        f"/v1/classes/students/{anna['id']}",
        json={"email": "bo@x.se", "add_class_ids": [school_class["id"]]},
        headers=A,
    )
    foreign = await api_client.put(
        f"/v1/classes/students/{anna['id']}",
        json={
            "person_name": {"first_name": "X", "last_name": "Y"},
            "add_class_ids": [str(uuid.uuid4())],
        },
        headers=A,
    )

    assert_error(duplicate, 409, "CONFLICT")
    assert_error(taken, 409, "CONFLICT")
    assert_error(foreign, 404, "NOT_FOUND")
    assert await _snapshot(session_factory) == before
    fetched = await api_client.get(f"/v1/classes/students/{anna['id']}", headers=A)
    assert fetched.json() == anna


async def test_concurrent_updates_to_one_email_give_409_not_500(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    students = [await create_student(api_client, first=f"S{index}") for index in range(5)]
    before = await _snapshot(session_factory)

    responses = await asyncio.gather(
        *(
            api_client.put(
                f"/v1/classes/students/{student['id']}",
                json={"email": "same@x.se"},
                headers=A,
            )
            for student in students
        )
    )

    assert sorted(response.status_code for response in responses) == [200, 409, 409, 409, 409]
    # Exactly one change, with exactly one event.
    classes, students_count, events = await _snapshot(session_factory)
    assert (classes, students_count, events) == (before[0], before[1], before[2] + 1)


async def test_an_import_racing_a_concurrent_insert_is_409_and_writes_nothing(
    api_client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    school_class = await create_class(api_client)
    await create_student(api_client, first="Taken", email="taken@x.se")
    before = await _snapshot(session_factory)

    async def stale_lookup(*_: Any) -> dict[str, Any]:
        # As if another request had inserted taken@x.se just after the import looked.
        return {}

    monkeypatch.setattr(roster_import, "_students_by_email", stale_lookup)
    response = await api_client.post(
        f"/v1/classes/{school_class['id']}/students/import",
        content="first_name,last_name,email\nNew,Student,new@x.se\nTaken,Again,taken@x.se\n",
        headers={**A, "Content-Type": "text/csv"},
    )

    assert_error(response, 409, "CONFLICT")
    assert await _snapshot(session_factory) == before
