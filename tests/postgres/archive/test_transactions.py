"""The read-only guard under concurrency: an archive and a write into the class never
interleave, whichever starts first (the guard holds the class FOR SHARE, the archive updates it).
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.classes.read_only import ensure_writable
from tests.http_helpers import assert_error, create_class, teacher
from tests.waiting import wait_for_backend

A = teacher("teacher-a")
Factory = async_sessionmaker[AsyncSession]


async def _until_waiting_for_a_lock(session_factory: Factory) -> None:
    await wait_for_backend(
        session_factory,
        "wait_event_type = 'Lock'",
        within=5,
        every=0.01,
        what="a request waiting for the class's lock",
    )


async def test_a_write_waiting_behind_an_archive_sees_the_class_archived(
    api_client: httpx.AsyncClient, session_factory: Factory
) -> None:
    created = await create_class(api_client)
    async with session_factory() as archiving:
        await archiving.execute(
            text("UPDATE classes SET archived_at = now() WHERE id = :id"), {"id": created["id"]}
        )
        joining = asyncio.ensure_future(
            api_client.post(
                "/v1/classes/students",
                json={
                    "person_name": {"first_name": "Eva", "last_name": "Ek"},
                    "class_ids": [created["id"]],
                },
                headers=A,
            )
        )
        await _until_waiting_for_a_lock(session_factory)
        await archiving.commit()

    assert_error(await joining, 409, "CONFLICT")


async def test_an_archive_waits_for_a_write_that_passed_the_guard(
    api_client: httpx.AsyncClient, session_factory: Factory
) -> None:
    created = await create_class(api_client)
    async with session_factory() as writing:
        await ensure_writable(writing, "teacher-a", [uuid.UUID(created["id"])])
        archiving = asyncio.ensure_future(
            api_client.post(f"/v1/classes/{created['id']}/archive", headers=A)
        )
        await _until_waiting_for_a_lock(session_factory)
        assert not archiving.done()
        await writing.commit()

    archived = await archiving
    assert archived.status_code == 200, archived.text
    assert archived.json()["archived_at"] is not None
