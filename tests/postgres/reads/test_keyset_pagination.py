"""Keyset (cursor) pagination of every list route (``http/pagination.py``, ``http/cursor.py``).

A walk along ``next`` must list exactly what one big offset page lists, in the same order, for
every sort (repeated keys and missing e-mails included); the ``Link`` header names the same
page; a cursor is refused (400, the contract's error body) when it was altered or belongs to
another sort, other filters or another teacher; and a deep cursor page reads no more rows than
the first.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import URL

from class_management_service.classes.schemas import ClassList, ClassSort
from class_management_service.db import asyncpg_dsn
from class_management_service.http import cursor as cursors
from class_management_service.http.pagination import PageRequest
from class_management_service.students import queries as student_queries
from class_management_service.students.schemas import StudentList, StudentSort
from tests.factories import bulk_classes, bulk_students
from tests.http_helpers import assert_error, create_class, teacher

A = teacher("teacher-a")
STUDENTS = "/v1/classes/students"


async def _get(client: httpx.AsyncClient, url: str, headers: dict[str, str] = A) -> httpx.Response:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def _walk(client: httpx.AsyncClient, url: str, items_key: str) -> list[str]:
    """The ids along ``next`` from ``url``; checks each page's envelope and Link header."""
    separator = "&" if "?" in url else "?"
    everything = (await _get(client, f"{url}{separator}limit=200")).json()
    total = everything["pagination"]["total"]
    assert everything["next"] is None
    assert total == len(everything[items_key]) < 200
    ids: list[str] = []
    response = await _get(client, f"{url}{separator}limit=7")
    while True:
        body = response.json()
        (ClassList if items_key == "classes" else StudentList).model_validate(body)
        page = body["pagination"]
        assert page == {
            "limit": 7,
            "offset": len(ids),
            "returned": len(body[items_key]),
            "total": total,
        }
        ids += [item["id"] for item in body[items_key]]
        if body["next"] is None:
            assert "link" not in response.headers
            break
        link = response.headers["link"]
        assert link == f'<{url}{separator}limit=7&cursor={body["next"]}>; rel="next"'
        target = link[1:].removesuffix('>; rel="next"')
        assert target == f"{url}{separator}limit=7&cursor={body['next']}"
        response = await _get(client, target)
    assert ids == [item["id"] for item in everything[items_key]]
    return ids


async def test_a_cursor_walk_lists_what_offset_lists_for_every_sort(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await bulk_students(session_factory, 60, teacher="teacher-a")
    await bulk_students(session_factory, 5, teacher="teacher-b")
    await bulk_classes(session_factory, 23, teacher="teacher-a")
    for student_sort in StudentSort:
        ids = await _walk(api_client, f"{STUDENTS}?sort={student_sort.value}", "students")
        assert len(ids) == len(set(ids)) == 60
    searched = await _walk(api_client, f"{STUDENTS}?q=first1&sort=-email", "students")
    assert 0 < len(searched) < 60
    for class_sort in ClassSort:
        assert (
            len(await _walk(api_client, f"/v1/classes/?sort={class_sort.value}", "classes")) == 23
        )


async def test_the_students_of_a_class_page_by_cursor_too(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    class_id = (await create_class(api_client))["id"]
    await bulk_students(session_factory, 30, teacher="teacher-a", class_id=uuid.UUID(class_id))
    await bulk_students(session_factory, 10, teacher="teacher-a")
    assert len(await _walk(api_client, f"/v1/classes/{class_id}/students", "students")) == 30
    assert len(await _walk(api_client, f"{STUDENTS}?class_id={class_id}", "students")) == 30


async def test_an_offset_page_issues_a_cursor_to_the_page_after_it(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await bulk_students(session_factory, 30, teacher="teacher-a")
    everything = (await _get(api_client, f"{STUDENTS}?limit=200")).json()["students"]
    middle = (await _get(api_client, f"{STUDENTS}?limit=10&offset=10")).json()
    after = (await _get(api_client, f"{STUDENTS}?limit=10&cursor={middle['next']}")).json()
    assert [s["id"] for s in after["students"]] == [s["id"] for s in everything[20:30]]
    assert after["pagination"] == {"limit": 10, "offset": 20, "returned": 10, "total": 30}
    assert after["next"] is None


async def test_the_total_of_a_walk_grows_with_what_it_sees(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await bulk_students(session_factory, 10, teacher="teacher-a")
    first = (await _get(api_client, f"{STUDENTS}?limit=5&sort=created_at")).json()
    assert first["pagination"]["total"] == 10
    later = datetime(2027, 1, 1, tzinfo=UTC)  # sorted after the first ten
    await bulk_students(session_factory, 10, teacher="teacher-a", created=later)
    second = (
        await _get(api_client, f"{STUDENTS}?limit=5&sort=created_at&cursor={first['next']}")
    ).json()
    assert second["pagination"] == {"limit": 5, "offset": 5, "returned": 5, "total": 11}
    rest = (
        await _get(api_client, f"{STUDENTS}?limit=50&sort=created_at&cursor={second['next']}")
    ).json()
    assert rest["pagination"] == {"limit": 50, "offset": 10, "returned": 10, "total": 20}


def _tampered(cursor: str) -> list[str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    checksum, payload = raw[:8], raw[8:]
    binding, position, total, key = json.loads(payload)
    forged = json.dumps([binding, position + 100, total, key], separators=(",", ":")).encode()
    flipped = bytes([raw[-3] ^ 1])
    return [
        cursor[:-4],  # truncated
        base64.urlsafe_b64encode(raw[:-3] + flipped + raw[-2:]).decode(),  # one bit changed
        base64.urlsafe_b64encode(checksum + forged).decode(),  # payload changed
        "not a cursor",
        "",
        "%00",
    ]


async def test_a_cursor_of_another_list_or_altered_is_a_400(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await bulk_students(session_factory, 12, teacher="teacher-a")
    await bulk_students(session_factory, 12, teacher="teacher-b")
    await bulk_classes(session_factory, 12, teacher="teacher-a")
    cursor = (await _get(api_client, f"{STUDENTS}?limit=5&sort=email")).json()["next"]
    assert (
        await api_client.get(f"{STUDENTS}?limit=5&sort=email&cursor={cursor}", headers=A)
    ).is_success
    elsewhere = [
        (f"{STUDENTS}?sort=name&cursor={cursor}", A),
        (f"{STUDENTS}?sort=-email&cursor={cursor}", A),
        (f"{STUDENTS}?sort=email&q=first&cursor={cursor}", A),
        (f"{STUDENTS}?sort=email&class_id={uuid.uuid4()}&cursor={cursor}", A),
        (f"{STUDENTS}?sort=email&cursor={cursor}", teacher("teacher-b")),
        (f"/v1/classes/?sort=created_at&cursor={cursor}", A),
    ]
    for url, headers in elsewhere:
        error = assert_error(await api_client.get(url, headers=headers), 400, "BAD_REQUEST")
        assert "another list" in error["message"], url
    for altered in _tampered(cursor):
        url = f"{STUDENTS}?sort=email&cursor={altered}"
        assert_error(await api_client.get(url, headers=A), 400, "BAD_REQUEST")
    both = await api_client.get(f"{STUDENTS}?sort=email&offset=5&cursor={cursor}", headers=A)
    assert_error(both, 400, "BAD_REQUEST")


async def test_a_deep_cursor_page_reads_no_more_rows_than_the_first(
    session_factory: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    """Of 10,000 students, the last page but one by cursor, in every sort: every plan node of its
    statement handles at most a page and one row (an index range scan from the cursor on)."""
    await bulk_students(session_factory, 10_000, teacher="teacher-a")
    values: dict[str, Any] = {"teacher_id": "teacher-a", "class_id": None, "pattern": None}
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute("ANALYZE students")
        for sort in StudentSort:
            query = student_queries._list_queries(sort, False, False)
            deep = await student_queries._list_students(
                connection, "teacher-a", _page(offset=9_960), sort, None, None
            )
            token = json.loads(bytes(deep.body))["next"]
            after = cursors.decode(token, cursors.binding(query.scope, values), query.key_kinds)
            arguments = query.after_cursor.arguments(
                limit=20, offset=0, **values, **after.parameters()
            )
            plan = await connection.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {query.after_cursor.sql}", *arguments
            )
            rows = list(_actual_rows(json.loads(plan)[0]["Plan"]))
            assert max(rows) <= 21, (sort, rows)
    finally:
        await connection.close()


def _page(offset: int) -> PageRequest:
    return PageRequest(limit=20, offset=offset, cursor=None, url=URL("/v1/classes/students"))


def _actual_rows(node: dict[str, Any]) -> Any:
    yield node["Actual Rows"] * node["Actual Loops"]
    for child in node.get("Plans", ()):
        yield from _actual_rows(child)
