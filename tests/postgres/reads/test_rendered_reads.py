"""The reads path (``reads.py``): JSON rendered by PostgreSQL and the read pool's connections.

Classes and students are rendered by PostgreSQL, not by their pydantic models, so these tests
hold every rendered representation to the documented model: exactly its fields, valid against
it, the same through every route that returns it, timestamps in one fixed form.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import BaseModel

from class_management_service.classes.schemas import ClassList, ClassResponse
from class_management_service.db import asyncpg_dsn
from class_management_service.reads import ReadOnlyDatabase
from class_management_service.settings import Settings
from class_management_service.students.schemas import StudentList, StudentResponse
from tests.http_helpers import create_class, create_student, teacher
from tests.waiting import wait_for

A = teacher("teacher-a")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def assert_renders(model: type[BaseModel], body: dict[str, Any]) -> None:
    """``body`` has exactly ``model``'s fields (nested ones too) and validates against it."""
    assert set(body) == set(model.model_fields), body
    model.model_validate(body)
    for field in ("created_at", "updated_at"):
        assert TIMESTAMP.match(body[field]), body[field]
    if model is StudentResponse:
        assert set(body["person_name"]) == {"first_name", "last_name", "legal_full_name"}
        # The flat names (the platform's clients) are the nested ones.
        assert (body["first_name"], body["last_name"]) == (
            body["person_name"]["first_name"],
            body["person_name"]["last_name"],
        )
        assert body["full_name"] == f"{body['first_name']} {body['last_name']}"


async def test_every_route_renders_a_class_the_same_valid_way(
    api_client: httpx.AsyncClient, database_url: str
) -> None:
    created = await create_class(api_client, name='9A "Söder" \\ 100%')
    assert_renders(ClassResponse, created)
    assert created["student_count"] == 0
    await create_student(api_client, class_ids=[created["id"]])

    got = (await api_client.get(f"/v1/classes/{created['id']}", headers=A)).json()
    assert_renders(ClassResponse, got)
    assert got["name"] == '9A "Söder" \\ 100%'
    assert got["student_count"] == 1
    assert {k: v for k, v in got.items() if k != "student_count"} == {
        k: v for k, v in created.items() if k != "student_count"
    }

    # A timestamp with no fractional second keeps its six digits (pydantic would drop them).
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(
            "UPDATE classes SET created_at = '2026-01-02T03:04:05Z' WHERE id = $1::uuid",
            created["id"],
        )
    finally:
        await connection.close()
    renamed = await api_client.put(f"/v1/classes/{created['id']}", json={"name": "9B"}, headers=A)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["created_at"] == "2026-01-02T03:04:05.000000Z"

    page = await api_client.get("/v1/classes/", headers=A)
    assert page.headers["content-type"] == "application/json"
    ClassList.model_validate_json(page.content)
    assert set(page.json()) == {"classes", "pagination", "next"}
    assert page.json()["classes"] == [renamed.json() | {"student_count": 1}]


async def test_every_route_renders_a_student_the_same_valid_way(
    api_client: httpx.AsyncClient,
) -> None:
    class_ids = sorted([(await create_class(api_client, name=n))["id"] for n in ("9A", "9B")])
    lonely = await create_student(api_client, first="Bo", last="Ek")
    member = await create_student(
        api_client,
        first="Åsa",
        last="Öberg",
        legal="Åsa Maria Öberg",
        email="a@x.se",
        class_ids=class_ids[::-1],
    )
    for created in (lonely, member):
        assert_renders(StudentResponse, created)
        got = await api_client.get(f"/v1/classes/students/{created['id']}", headers=A)
        assert got.json() == created
    assert lonely["class_ids"] == []
    assert lonely["email"] is None
    assert lonely["person_name"]["legal_full_name"] is None
    assert member["class_ids"] == class_ids  # sorted by id, whatever the request's order
    assert member["person_name"] == {
        "first_name": "Åsa",
        "last_name": "Öberg",
        "legal_full_name": "Åsa Maria Öberg",
    }

    everyone = await api_client.get("/v1/classes/students?sort=name", headers=A)
    StudentList.model_validate_json(everyone.content)
    assert set(everyone.json()) == {"students", "pagination", "next"}
    assert everyone.json()["students"] == [lonely, member]
    in_class = await api_client.get(f"/v1/classes/{class_ids[0]}/students", headers=A)
    StudentList.model_validate_json(in_class.content)
    assert in_class.json()["students"] == [member]


async def test_pages_carry_their_items_in_order_and_the_total(
    api_client: httpx.AsyncClient, subtests: pytest.Subtests
) -> None:
    names = [f"Class {n}" for n in range(5)]
    ids = [(await create_class(api_client, name=name))["id"] for name in names]
    # Each page a subtest (reported on its own) of the same five classes: reads change nothing.
    pages: list[tuple[str, dict[str, Any]]] = [
        ("limit=2", {"ids": [0, 1], "total": 5}),  # full first page: counted
        ("limit=10", {"ids": [0, 1, 2, 3, 4], "total": 5}),  # the page proves the total
        ("limit=2&offset=4", {"ids": [4], "total": 5}),
        ("limit=2&offset=9", {"ids": [], "total": 5}),  # past the end: still counted
    ]
    for query, expected in pages:
        with subtests.test(query=query):
            response = await api_client.get(f"/v1/classes/?sort=name&{query}", headers=A)
            body = json.loads(response.content)
            assert [item["id"] for item in body["classes"]] == [ids[n] for n in expected["ids"]]
            assert body["pagination"]["total"] == expected["total"]
            assert body["pagination"]["returned"] == len(expected["ids"])
            empty = await api_client.get(f"/v1/classes/?{query}", headers=teacher("nobody"))
            assert empty.json()["classes"] == []
            pagination = empty.json()["pagination"]
            assert pagination["total"] == pagination["returned"] == 0


async def _backends(admin: asyncpg.Connection, database: str) -> int:
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )
    return count


async def test_read_pool_bounds_replaces_and_closes_its_connections(database_url: str) -> None:
    database = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    reads = ReadOnlyDatabase(Settings(database_url=database_url, database_read_pool_size=3))
    try:
        # Ten readers at once share three connections, opened on demand.
        async def read() -> int:
            async with reads.connection() as connection:
                value: int = await connection.fetchval("SELECT pg_backend_pid()")
                await asyncio.sleep(0.01)  # holds the connection, so the readers overlap
                return value

        pids = set(await asyncio.gather(*(read() for _ in range(10))))
        assert len(pids) == 3
        assert await _backends(admin, database) == 3

        # Cancelled mid-statement: that connection is dropped, the next reader gets a new one.
        async def stuck() -> None:
            async with reads.connection() as connection:
                await connection.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(stuck())

        async def sleeping() -> bool:
            running: int = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                " AND state = 'active' AND query = 'SELECT pg_sleep(30)'",
                database,
            )
            return running == 1

        await wait_for(sleeping, what="the stuck statement to run")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = set(await asyncio.gather(*(read() for _ in range(6))))
        assert len(after) == 3
        assert len(after - pids) == 1

        # Closed by the server: replaced on the next checkout, no error for the reader.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )

        def closed() -> bool:
            # The pool's own view (no public one): each connection saw the server close it.
            return all(
                slot.connection is None or slot.connection.is_closed() for slot in reads._all
            )

        await wait_for(closed, what="the pool's connections to see the server close them")
        assert not (set(await asyncio.gather(*(read() for _ in range(3)))) & after)
    finally:
        await reads.close()
    assert await _backends(admin, database) == 0
    await admin.close()
