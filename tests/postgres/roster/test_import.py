"""POST /v1/classes/{class_id}/students/import over the in-process app and a real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging import topics
from class_management_service.students.importer import MAX_ROWS
from class_management_service.students.models import Student
from tests.http_helpers import (
    assert_error,
    count_rows,
    create_class,
    create_student,
    outbox_events,
    teacher,
)

A, B = teacher("teacher-a"), teacher("teacher-b")
CSV = {**A, "Content-Type": "text/csv"}

ROSTER = (
    "first_name,last_name,legal_full_name,email\n"
    "Anna,Svensson,Anna Maria Svensson,Anna@Example.com\n"
    "Bo,Ek,,bo@example.com\n"
    "Cecilia,Åberg,,\n"
    ",Nameless,,x@example.com\n"
)


def _import_path(class_id: str, query: str = "") -> str:
    return f"/v1/classes/{class_id}/students/import{query}"


def _statuses(report: dict[str, Any]) -> list[tuple[int, str]]:
    return [(row["row"], row["status"]) for row in report["rows"]]


async def test_import_creates_members_and_events_and_a_reimport_changes_nothing(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    school_class = await create_class(api_client)
    correlation_id = str(uuid.uuid4())

    response = await api_client.post(
        _import_path(school_class["id"]),
        content=ROSTER.encode(),
        headers={**CSV, "X-Correlation-ID": correlation_id},
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["totals"] == {
        "rows": 4,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
    }
    assert _statuses(report) == [(2, "created"), (3, "created"), (4, "created"), (5, "rejected")]
    assert report["rows"][0]["email"] == "anna@example.com"
    assert report["rows"][3]["reason"] == "first_name is empty"
    roster = await api_client.get(f"/v1/classes/{school_class['id']}/students", headers=A)
    assert {s["id"] for s in roster.json()["students"]} == {
        r["student_id"] for r in report["rows"][:3]
    }
    events = await outbox_events(session_factory, topics.STUDENT_CREATED)
    assert len(events) == 3
    anna = next(e for e in events if e.envelope["data"]["first_name"] == "Anna")
    assert anna.message_key == report["rows"][0]["student_id"]
    assert anna.headers["correlation_id"] == correlation_id
    data = dict(anna.envelope["data"])
    assert data.pop("timestamp")
    assert data == {
        "event": "student.created",
        "student_id": report["rows"][0]["student_id"],
        "first_name": "Anna",
        "last_name": "Svensson",
        "student_email": "anna@example.com",
        "class_ids": [school_class["id"]],
        "created_by_user_id": "teacher-a",
        "correlation_id": correlation_id,
    }

    again = await api_client.post(_import_path(school_class["id"]), content=ROSTER, headers=CSV)

    assert again.json()["totals"] == {
        "rows": 4,
        "created": 0,
        "updated": 0,
        "unchanged": 3,
        "rejected": 1,
    }
    assert [row["student_id"] for row in again.json()["rows"]] == [
        row["student_id"] for row in report["rows"]
    ]
    # ClassCreated + 3 creations, and one notification each for the class and the first import.
    assert len(await outbox_events(session_factory)) == 1 + 3 + 2
    assert await count_rows(session_factory, Student) == 3


async def test_multipart_import_updates_existing_students_and_joins_them(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    other_class = await create_class(api_client, name="Other")
    school_class = await create_class(api_client, name="Target")
    outsider = await create_student(
        api_client, first="Bo", last="Ek", email="bo@example.com", class_ids=[other_class["id"]]
    )
    renamed = await create_student(api_client, first="Anna", last="Svensson", email="anna@x.se")
    csv_text = "Efternamn;Förnamn;E-post\nEk;Bo;BO@example.com\nBerg;Anna;anna@x.se\n"

    response = await api_client.post(
        _import_path(school_class["id"], "?rows=all"),
        files={"file": ("roster.csv", csv_text.encode(), "text/csv")},
        headers=A,
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert _statuses(report) == [(2, "updated"), (3, "updated")]
    assert [row["student_id"] for row in report["rows"]] == [outsider["id"], renamed["id"]]
    moved = (await api_client.get(f"/v1/classes/students/{outsider['id']}", headers=A)).json()
    assert moved["class_ids"] == sorted([other_class["id"], school_class["id"]])
    berg = (await api_client.get(f"/v1/classes/students/{renamed['id']}", headers=A)).json()
    assert berg["person_name"]["last_name"] == "Berg"
    payloads = {
        e.envelope["data"]["student_id"]: e.envelope["data"]
        for e in await outbox_events(session_factory, topics.STUDENT_UPDATED)
    }
    assert payloads[outsider["id"]]["add_class_ids"] == [school_class["id"]]
    assert payloads[outsider["id"]]["last_name"] is None
    assert payloads[renamed["id"]]["last_name"] == "Berg"
    assert payloads[renamed["id"]]["updated_by_user_id"] == "teacher-a"


async def test_email_less_rows_are_matched_by_name_so_reimports_are_idempotent(
    api_client: httpx.AsyncClient,
) -> None:
    school_class = await create_class(api_client)
    path = _import_path(school_class["id"])
    await api_client.post(path, content="first_name,last_name\nCecilia,Åberg\n", headers=CSV)

    later = await api_client.post(
        path, content="first_name,last_name,email\ncecilia,ÅBERG,cecilia@x.se\n", headers=CSV
    )

    # The same student, who now has an e-mail (and the file's spelling).
    assert _statuses(later.json()) == [(2, "updated")]
    listed = (await api_client.get(f"/v1/classes/{school_class['id']}/students", headers=A)).json()
    assert listed["pagination"]["total"] == 1
    assert listed["students"][0]["email"] == "cecilia@x.se"


async def test_report_can_list_only_rejected_rows(api_client: httpx.AsyncClient) -> None:
    school_class = await create_class(api_client)
    response = await api_client.post(
        _import_path(school_class["id"], "?rows=rejected"), content=ROSTER, headers=CSV
    )
    report = response.json()
    assert _statuses(report) == [(5, "rejected")]
    assert report["totals"]["created"] == 3


async def test_unusable_requests_get_clean_4xx_and_change_nothing(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    school_class = await create_class(api_client)
    foreign_class = await create_class(api_client, "teacher-b")
    path = _import_path(school_class["id"])
    too_many = "first_name,last_name\n" + "Anna,Svensson\n" * (MAX_ROWS + 1)

    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (
            path,
            {"content": ROSTER, "headers": {"X-User-ID": "", "Content-Type": "text/csv"}},
            401,
            "UNAUTHORIZED",
        ),
        (_import_path(foreign_class["id"]), {"content": ROSTER, "headers": CSV}, 404, "NOT_FOUND"),
        (_import_path(str(uuid.uuid4())), {"content": ROSTER, "headers": CSV}, 404, "NOT_FOUND"),
        (path, {"json": {"rows": []}, "headers": A}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            path,
            {"content": b"first_name,last_name\n\xff\xfe,x\n", "headers": CSV},
            400,
            "BAD_REQUEST",
        ),
        (
            path,
            {"content": 'first_name,last_name\n"Anna"x,S\n', "headers": CSV},
            400,
            "BAD_REQUEST",
        ),
        (path, {"content": "name,email\nAnna,a@x.se\n", "headers": CSV}, 422, "VALIDATION_ERROR"),
        (path, {"content": "", "headers": CSV}, 422, "VALIDATION_ERROR"),
        (
            path,
            {"files": {"roster": ("r.csv", ROSTER.encode())}, "headers": A},
            422,
            "VALIDATION_ERROR",
        ),
        (path, {"content": too_many, "headers": CSV}, 413, "PAYLOAD_TOO_LARGE"),
        (_import_path("not-a-uuid"), {"content": ROSTER, "headers": CSV}, 400, "BAD_REQUEST"),
    ]
    for url, request, status, code in cases:
        assert_error(await api_client.post(url, **request), status, code)

    assert await count_rows(session_factory, Student) == 0
    assert len(await outbox_events(session_factory, topics.STUDENT_CREATED)) == 0
