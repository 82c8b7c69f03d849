"""Who may read a class roster (``GET /v1/classes/{class_id}/roster``), as the platform calls it.

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

from class_management_service.settings import Settings
from tests.http_helpers import app_client, assert_error, create_class, create_student

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
