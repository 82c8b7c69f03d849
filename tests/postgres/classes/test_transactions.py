"""``classes.student_count`` against real PostgreSQL: kept by the triggers on ``class_students``
(migration 0007) in the transaction that changes the memberships, whoever writes them, and never
drifting from ``count(*)`` of the memberships under concurrent changes of one class.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.db import asyncpg_dsn
from class_management_service.settings import Settings
from tests.factories import bulk_students
from tests.http_helpers import app_client, create_class, teacher

A = teacher("teacher-a")
STUDENTS = "/v1/classes/students"


class _RolledBack(Exception):
    pass


async def _drift(session_factory: async_sessionmaker[AsyncSession]) -> list[tuple[object, ...]]:
    """The classes whose kept count differs from their memberships (none, always)."""
    async with session_factory() as session:
        rows = await session.execute(
            text(
                """
                SELECT c.id, c.student_count, count(m.student_id) AS members
                FROM classes c LEFT JOIN class_students m ON m.class_id = c.id
                GROUP BY c.id HAVING c.student_count <> count(m.student_id)
                """
            )
        )
        return [tuple(row) for row in rows]


async def _members(session_factory: async_sessionmaker[AsyncSession], class_id: str) -> list[str]:
    async with session_factory() as session:
        rows = await session.scalars(
            text("SELECT student_id::text FROM class_students WHERE class_id = :c ORDER BY 1"),
            {"c": class_id},
        )
        return list(rows)


async def test_every_writer_of_memberships_keeps_the_count(
    api_client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    """Plain statements, COPY, a membership moved by UPDATE, a student's deletion (FK cascade),
    a class's deletion and a rollback: the count follows each, as the same transaction sees
    it."""
    first, second = (await create_class(api_client))["id"], (await create_class(api_client))["id"]
    await bulk_students(session_factory, 20, teacher="teacher-a")
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        ids = [r["id"] for r in await connection.fetch("SELECT id FROM students ORDER BY id")]
        count = "SELECT student_count FROM classes WHERE id = $1::uuid"
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO class_students SELECT $1::uuid, unnest($2::uuid[])", first, ids[:8]
            )
            assert await connection.fetchval(count, first) == 8  # seen in the same transaction
        await connection.copy_records_to_table(
            "class_students", records=[(uuid.UUID(second), i) for i in ids[8:]]
        )
        await connection.execute(
            "UPDATE class_students SET class_id = $1::uuid WHERE student_id = ANY($2::uuid[])",
            first,
            ids[8:11],
        )
        await connection.execute("DELETE FROM students WHERE id = ANY($1::uuid[])", ids[:2])
        assert [await connection.fetchval(count, c) for c in (first, second)] == [9, 9]
        await connection.execute("DELETE FROM classes WHERE id = $1::uuid", first)
        with contextlib.suppress(_RolledBack):
            async with connection.transaction():
                await connection.execute(
                    "DELETE FROM class_students WHERE class_id = $1::uuid", second
                )
                assert await connection.fetchval(count, second) == 0
                raise _RolledBack
        assert await connection.fetchval(count, second) == 9
    finally:
        await connection.close()
    assert await _drift(session_factory) == []


async def test_concurrent_membership_changes_never_make_the_count_drift(
    make_settings: Callable[..., Settings], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """About 40 requests at once on one class (and a second one, crossing directions): students
    created into it, added, removed, moved between the two classes both ways, deleted, and
    roster imports into it; afterwards each class's count is its memberships' count, and the
    API says so. Several times the write pool's connections: the requests queue for them and
    the class's row whatever their number, so more of them would only wait longer.

    Membership changes of one class take turns on its row from their membership statement to
    their commit; on this shared machine 40 of them may take longer than the default waits for
    a connection or a lock, so the app here waits longer (the test is about the count, not
    latency)."""
    settings = make_settings(database_pool_timeout_seconds=60, database_lock_timeout_ms=60_000)
    async with app_client(settings) as client:
        await _change_memberships_concurrently(client, session_factory)


async def _change_memberships_concurrently(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    one = (await create_class(api_client, name="One"))["id"]
    other = (await create_class(api_client, name="Other"))["id"]
    await bulk_students(session_factory, 20, teacher="teacher-a", class_id=uuid.UUID(one))
    await bulk_students(session_factory, 10, teacher="teacher-a", class_id=uuid.UUID(other))
    await bulk_students(session_factory, 10, teacher="teacher-a")
    in_one, in_other = await _members(session_factory, one), await _members(session_factory, other)
    async with session_factory() as session:
        outside = list(
            await session.scalars(
                text(
                    "SELECT id::text FROM students s WHERE NOT EXISTS "
                    "(SELECT FROM class_students m WHERE m.student_id = s.id) ORDER BY 1"
                )
            )
        )

    def update(student_id: str, add: list[str], remove: list[str]) -> tuple[str, str, object]:
        body = {"add_class_ids": add, "remove_class_ids": remove}
        return ("PUT", f"{STUDENTS}/{student_id}", body)

    requests: list[tuple[str, str, object]] = []
    for n in range(8):
        person = {"first_name": f"New{n}", "last_name": "Student"}
        classes = [one] if n % 2 else [one, other]
        requests.append(("POST", STUDENTS, {"person_name": person, "class_ids": classes}))
    requests += [update(s, [], [one]) for s in in_one[:5]]
    requests += [update(s, [other], [one]) for s in in_one[5:10]]  # one -> other
    requests += [update(s, [one], [other]) for s in in_other[:5]]  # other -> one, crossing
    requests += [update(s, [one], []) for s in outside[:5]]
    requests += [("DELETE", f"{STUDENTS}/{s}", None) for s in in_one[10:18]]
    requests += [("DELETE", f"{STUDENTS}/{s}", None) for s in in_other[5:8]]
    for n in range(3):
        rows = "".join(f"Imported{n}x{k},Roster,,i{n}x{k}@example.com\n" for k in range(6))
        csv = f"first_name,last_name,legal_full_name,email\n{rows}"
        requests.append(("IMPORT", f"/v1/classes/{one}/students/import", csv))
    random.Random(14).shuffle(requests)

    async def send(method: str, url: str, body: object) -> httpx.Response:
        if method == "IMPORT":
            assert isinstance(body, str)
            headers = {**A, "Content-Type": "text/csv"}
            return await api_client.post(url, content=body.encode(), headers=headers)
        return await api_client.request(method, url, json=body, headers=A)

    responses = await asyncio.gather(*(send(*request) for request in requests))
    assert [r.text for r in responses if not r.is_success] == []

    assert await _drift(session_factory) == []
    for class_id in (one, other):
        shown = (await api_client.get(f"/v1/classes/{class_id}", headers=A)).json()
        assert shown["student_count"] == len(await _members(session_factory, class_id))
    # 20 - 5 removed - 5 moved out - 8 deleted + 8 created + 5 moved in + 5 added + 18 imported
    assert len(await _members(session_factory, one)) == 38
