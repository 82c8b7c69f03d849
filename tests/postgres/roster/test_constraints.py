"""Rules the roster import enforces over a real PostgreSQL: unusable requests get clean 4xx
answers and change nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging import topics
from class_management_service.students.importer import MAX_ROWS
from class_management_service.students.models import Student
from tests.http_helpers import assert_error, count_rows, create_class, outbox_events
from tests.postgres.roster.conftest import CSV, ROSTER, A, _import_path


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
