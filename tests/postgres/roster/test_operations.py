"""The roster use cases over the in-process app and a real PostgreSQL: the import
(``POST /v1/classes/{class_id}/students/import``) and who may read a class roster
(``GET /v1/classes/{class_id}/roster``), as the platform calls it.

The platform's NLP client sends only ``X-Correlation-ID`` and ``Accept``; the API gateway
forwards every ``/v1/classes/...`` request (roster included) with the teacher's ``X-User-ID``;
internal services present the shared key and their service id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging import topics
from class_management_service.settings import Settings
from class_management_service.students.models import Student
from tests.http_helpers import (
    app_client,
    assert_error,
    count_rows,
    create_class,
    create_student,
    outbox_events,
)
from tests.postgres.roster.conftest import CSV, ROSTER, A, _import_path


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


SETTING = "CLASS_MANAGEMENT_SERVICE_ROSTER_UNAUTHENTICATED_ACCESS"


def nlp_headers() -> dict[str, str]:
    """Exactly what services/nlp_service/implementations/roster_client_impl.py sends."""
    return {"X-Correlation-ID": str(uuid.uuid4()), "Accept": "application/json"}


def nlp_parse(response: httpx.Response) -> list[dict[str, Any]]:
    """What the NLP client does with the answer: raise_for_status, a dict with a list
    ``students``, entries without one of the required fields skipped."""
    response.raise_for_status()
    data = response.json()
    assert isinstance(data, dict)
    assert isinstance(data["students"], list)
    required = {"student_id", "first_name", "last_name", "full_legal_name"}
    return [student for student in data["students"] if required <= set(student)]


async def _class_with_students(client: httpx.AsyncClient, owner: str) -> str:
    school_class = await create_class(client, owner)
    await create_student(client, owner, first="Anna", last="Ek", class_ids=[school_class["id"]])
    await create_student(
        client, owner, first="Bo", last="Lind", email="bo@x.se", class_ids=[school_class["id"]]
    )
    class_id: str = school_class["id"]
    return class_id


async def test_the_nlp_request_is_401_naming_the_setting_unless_it_is_on(
    api_client: httpx.AsyncClient,
) -> None:
    class_id = await _class_with_students(api_client, "teacher-a")

    response = await api_client.get(f"/v1/classes/{class_id}/roster", headers=nlp_headers())

    error = assert_error(response, 401, "UNAUTHORIZED")
    assert SETTING in error["message"]
    assert error["details"] == {"setting": SETTING}


async def test_with_the_setting_the_nlp_request_gets_the_roster_it_can_parse(
    make_settings: Callable[..., Settings],
) -> None:
    async with app_client(make_settings(roster_unauthenticated_access=True)) as client:
        class_id = await _class_with_students(client, "teacher-a")

        students = nlp_parse(
            await client.get(f"/v1/classes/{class_id}/roster", headers=nlp_headers())
        )
        missing = await client.get(f"/v1/classes/{uuid.uuid4()}/roster", headers=nlp_headers())

    assert [(s["first_name"], s["last_name"], s["full_legal_name"]) for s in students] == [
        ("Anna", "Ek", "Anna Ek"),
        ("Bo", "Lind", "Bo Lind"),
    ]
    assert [s["email"] for s in students] == [None, "bo@x.se"]
    assert all(uuid.UUID(s["student_id"]) for s in students)
    # The NLP client maps 404 to "class not found".
    assert_error(missing, 404, "NOT_FOUND")


@pytest.mark.parametrize("anonymous_allowed", [False, True])
async def test_through_the_gateway_a_teacher_reads_only_own_rosters(
    make_settings: Callable[..., Settings], anonymous_allowed: bool
) -> None:
    settings = make_settings(roster_unauthenticated_access=anonymous_allowed)
    async with app_client(settings) as client:
        class_id = await _class_with_students(client, "teacher-a")
        path = f"/v1/classes/{class_id}/roster"
        gateway = {"X-Correlation-ID": str(uuid.uuid4())}

        owner = await client.get(path, headers={**gateway, "X-User-ID": "teacher-a"})
        other = await client.get(path, headers={**gateway, "X-User-ID": "teacher-b"})
        missing = await client.get(
            f"/v1/classes/{uuid.uuid4()}/roster", headers={**gateway, "X-User-ID": "teacher-b"}
        )

    assert [s["first_name"] for s in nlp_parse(owner)] == ["Anna", "Bo"]
    # Another teacher's class is exactly as unknown as a missing one, whatever the setting.
    foreign_error = assert_error(other, 404, "NOT_FOUND")
    missing_error = assert_error(missing, 404, "NOT_FOUND")
    assert foreign_error["message"] == missing_error["message"]


async def test_an_internal_service_reads_any_class_roster(
    api_client: httpx.AsyncClient, internal_headers: dict[str, str]
) -> None:
    class_id = await _class_with_students(api_client, "teacher-a")

    response = await api_client.get(f"/v1/classes/{class_id}/roster", headers=internal_headers)

    assert [s["first_name"] for s in nlp_parse(response)] == ["Anna", "Bo"]


async def test_presented_but_invalid_credentials_never_grant_more_than_none(
    make_settings: Callable[..., Settings], internal_headers: dict[str, str]
) -> None:
    """With anonymous reads on, a request with no credentials gets the roster; one with a
    wrong key, a key but no service id, or an empty teacher id is refused (401): presenting
    something never does better than presenting nothing, and a misconfigured caller notices."""
    async with app_client(make_settings(roster_unauthenticated_access=True)) as client:
        class_id = await _class_with_students(client, "teacher-a")
        path = f"/v1/classes/{class_id}/roster"
        key = internal_headers["X-Internal-API-Key"]
        refused = [
            {"X-Internal-API-Key": "wrong", "X-Service-ID": "nlp_service"},
            {"X-Internal-API-Key": "", "X-Service-ID": "nlp_service"},
            {"X-Internal-API-Key": key[:-1], "X-Service-ID": "nlp_service"},
            {"X-Internal-API-Key": key},  # no service id
            {"X-Internal-API-Key": "wrong", "X-User-ID": "teacher-a"},
            {"X-User-ID": ""},
            {"X-User-ID": "   "},
        ]
        answers = [await client.get(path, headers={**nlp_headers(), **h}) for h in refused]
        anonymous = await client.get(path, headers=nlp_headers())

    for headers, response in zip(refused, answers, strict=True):
        assert response.status_code == 401, (headers, response.text)
        assert_error(response, 401, "UNAUTHORIZED")
        assert "wrong" not in response.text
    assert len(nlp_parse(anonymous)) == 2
