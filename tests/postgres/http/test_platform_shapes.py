"""The teacher routes' responses as the platform's clients read them (contract Part 2, "HTTP
responses"), field by field: a superset of the platform's shapes, list envelopes, JSON bodies on
deletes, and 400 for a path id that is not a UUID on every route."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import bulk_classes
from tests.http_helpers import assert_error, create_class, create_student, teacher

A = teacher("teacher-a")
STUDENTS = "/v1/classes/students"


def _is_uuid(value: Any) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value


def _is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None


def assert_platform_class(body: dict[str, Any], name: str, course_code: str) -> None:
    assert _is_uuid(body["id"])
    assert body["name"] == name
    assert body["course_code"] == course_code
    assert isinstance(body["student_count"], int)
    assert _is_timestamp(body["created_at"])


def assert_platform_student(body: dict[str, Any], first: str, last: str, email: str | None) -> None:
    assert _is_uuid(body["id"])
    assert body["full_name"] == f"{first} {last}"
    assert (body["first_name"], body["last_name"], body["email"]) == (first, last, email)
    assert isinstance(body["class_ids"], list)
    assert all(_is_uuid(class_id) for class_id in body["class_ids"])
    # Our richer nested form stays.
    assert (body["person_name"]["first_name"], body["person_name"]["last_name"]) == (first, last)


async def test_class_create_get_put_carry_the_platforms_fields(
    api_client: httpx.AsyncClient,
) -> None:
    created = await api_client.post(
        "/v1/classes/", json={"name": "9A", "course_codes": ["SV1"]}, headers=A
    )
    assert created.status_code == 201
    assert_platform_class(created.json(), "9A", "SV1")
    path = f"/v1/classes/{created.json()['id']}"

    got = await api_client.get(path, headers=A)
    put = await api_client.put(path, json={"name": "9B"}, headers=A)

    assert got.status_code == put.status_code == 200
    assert_platform_class(got.json(), "9A", "SV1")
    assert_platform_class(put.json(), "9B", "SV1")
    assert got.json()["id"] == put.json()["id"] == created.json()["id"]


async def test_class_list_is_the_platforms_envelope_with_20_by_default(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    names = [f"Class {number:02}" for number in range(22)]
    await bulk_classes(session_factory, len(names), teacher="teacher-a", names=names)

    first = await api_client.get("/v1/classes/?sort=name", headers=A)
    second = await api_client.get("/v1/classes/?sort=name&limit=20&offset=20", headers=A)

    body = first.json()
    assert set(body) == {"classes", "pagination", "next"}
    assert body["pagination"] == {"limit": 20, "offset": 0, "returned": 20, "total": 22}
    assert [item["name"] for item in body["classes"]] == [f"Class {n:02}" for n in range(20)]
    for item in body["classes"]:
        assert_platform_class(item, item["name"], "ENG5")
    assert second.json()["pagination"] == {"limit": 20, "offset": 20, "returned": 2, "total": 22}
    assert [item["name"] for item in second.json()["classes"]] == ["Class 20", "Class 21"]


async def test_student_create_get_put_list_carry_flat_names_full_name_and_class_ids(
    api_client: httpx.AsyncClient,
) -> None:
    school_class = await create_class(api_client)
    created = await api_client.post(
        STUDENTS,
        json={
            "person_name": {"first_name": "Anna", "last_name": "Ek"},
            "email": "anna@x.se",
            "class_ids": [school_class["id"]],
        },
        headers=A,
    )
    assert created.status_code == 201
    assert_platform_student(created.json(), "Anna", "Ek", "anna@x.se")
    assert created.json()["class_ids"] == [school_class["id"]]
    path = f"{STUDENTS}/{created.json()['id']}"

    got = await api_client.get(path, headers=A)
    put = await api_client.put(path, json={"person_name": {"last_name": "Berg"}}, headers=A)
    listed = await api_client.get(STUDENTS, headers=A)
    in_class = await api_client.get(f"/v1/classes/{school_class['id']}/students", headers=A)

    assert got.status_code == put.status_code == 200
    assert_platform_student(got.json(), "Anna", "Ek", "anna@x.se")
    assert_platform_student(put.json(), "Anna", "Berg", "anna@x.se")
    for page in (listed.json(), in_class.json()):
        assert set(page) == {"students", "pagination", "next"}
        assert page["pagination"] == {"limit": 20, "offset": 0, "returned": 1, "total": 1}
        (item,) = page["students"]
        assert_platform_student(item, "Anna", "Berg", "anna@x.se")


async def test_deletes_answer_200_with_the_platforms_message(
    api_client: httpx.AsyncClient,
) -> None:
    school_class = await create_class(api_client)
    student = await create_student(api_client)

    class_deleted = await api_client.delete(f"/v1/classes/{school_class['id']}", headers=A)
    student_deleted = await api_client.delete(f"{STUDENTS}/{student['id']}", headers=A)

    assert (class_deleted.status_code, class_deleted.json()) == (
        200,
        {"message": "Class deleted successfully"},
    )
    assert (student_deleted.status_code, student_deleted.json()) == (
        200,
        {"message": "Student deleted successfully"},
    )
    assert class_deleted.headers["content-type"] == "application/json"
    # And they are really gone.
    gone_class = await api_client.get(f"/v1/classes/{school_class['id']}", headers=A)
    assert_error(gone_class, 404, "NOT_FOUND")
    assert_error(await api_client.get(f"{STUDENTS}/{student['id']}", headers=A), 404, "NOT_FOUND")


_ROUTES_WITH_IDS = [
    ("GET", "/v1/classes/{bad}", "teacher"),
    ("PUT", "/v1/classes/{bad}", "teacher"),
    ("DELETE", "/v1/classes/{bad}", "teacher"),
    ("GET", "/v1/classes/{bad}/students", "teacher"),
    ("POST", "/v1/classes/{bad}/students/import", "teacher"),
    ("GET", STUDENTS + "/{bad}", "teacher"),
    ("PUT", STUDENTS + "/{bad}", "teacher"),
    ("DELETE", STUDENTS + "/{bad}", "teacher"),
    ("GET", "/v1/batches/{bad}/student-associations", "teacher"),
    ("POST", "/v1/batches/{bad}/student-associations/confirm", "teacher"),
    ("GET", "/v1/classes/{bad}/roster", "teacher"),
    ("GET", "/v1/classes/{bad}/roster", "internal"),
    ("GET", "/internal/v1/batches/{bad}/student-names", "internal"),
    ("GET", "/internal/v1/associations/essay/{bad}", "internal"),
]


async def test_a_path_id_that_is_not_a_uuid_is_400_on_every_route(
    api_client: httpx.AsyncClient, internal_headers: dict[str, str], subtests: pytest.Subtests
) -> None:
    # Each case a subtest (reported on its own) on one app and database: every one is refused
    # before any use case runs, and a new app per case cost more than the request itself.
    for bad in ["not-a-uuid", "12345", "single-essay-batch"]:
        for method, path, caller in _ROUTES_WITH_IDS:
            with subtests.test(method=method, path=path, caller=caller, bad=bad):
                headers = A if caller == "teacher" else internal_headers
                # A valid body where the route takes one: only the path is wrong.
                body: dict[str, Any] | None = None
                if method == "PUT":
                    body = {}
                elif path.endswith("/confirm"):
                    body = {"associations": [{"essay_id": str(uuid.uuid4()), "confirmed": False}]}

                response = await api_client.request(
                    method, path.format(bad=bad), headers=headers, json=body
                )

                assert_error(response, 400, "BAD_REQUEST")
