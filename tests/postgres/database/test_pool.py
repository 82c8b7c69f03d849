"""The engine's pool as the hot paths use it: reads on asyncpg, dead connections replaced.

``pool_pre_ping`` (three round trips per checkout) is replaced by a free check of asyncpg's own
``is_closed()``; these tests make sure a connection the server closed is still never handed to a
request, for the session path and for the read path.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import asyncpg
import httpx

from class_management_service.db import asyncpg_dsn
from tests.waiting import wait_for


async def _terminate_other_backends(database_url: str) -> int:
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        pids: list[int] = [
            row["pid"]
            for row in await admin.fetch(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    finally:
        await admin.close()

    def exited() -> bool:
        # A backend's socket is closed when its process is gone (the server is local).
        return not any(_alive(pid) for pid in pids)

    await wait_for(exited, what="the terminated backends to exit")
    return len(pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process by that number
        return True
    return True


async def test_requests_after_the_server_closed_every_pooled_connection_succeed(
    api_client: httpx.AsyncClient,
    database_url: str,
    teacher_headers: Callable[[str], dict[str, str]],
) -> None:
    headers = teacher_headers("teacher-pool")
    created = await api_client.post(
        "/v1/classes/", json={"name": "Pool", "course_codes": ["ENG5"]}, headers=headers
    )
    assert created.status_code == 201, created.text
    class_id = created.json()["id"]
    # Several connections in the pool, all of them idle.
    answers = await asyncio.gather(
        *(api_client.get(f"/v1/classes/{class_id}", headers=headers) for _ in range(5))
    )
    assert {answer.status_code for answer in answers} == {200}

    assert await _terminate_other_backends(database_url) >= 1

    # Read path (asyncpg straight from the pool) and session path (ORM write) both get live
    # connections: no 500 for the first requests after the server dropped the old ones.
    reads = await asyncio.gather(
        *(api_client.get(f"/v1/classes/{class_id}", headers=headers) for _ in range(5))
    )
    assert [read.status_code for read in reads] == [200] * 5
    renamed = await api_client.put(
        f"/v1/classes/{class_id}", json={"name": "Pool 2"}, headers=headers
    )
    assert renamed.status_code == 200, renamed.text
    listed = await api_client.get("/v1/classes/", headers=headers)
    assert listed.status_code == 200
    assert [item["name"] for item in listed.json()["classes"]] == ["Pool 2"]


async def test_more_concurrent_requests_than_pooled_connections_all_succeed(
    api_client: httpx.AsyncClient, teacher_headers: Callable[[str], dict[str, str]]
) -> None:
    headers = teacher_headers("teacher-queue")
    created = await api_client.post(
        "/v1/classes/", json={"name": "Queue", "course_codes": ["ENG6"]}, headers=headers
    )
    class_id = created.json()["id"]
    # 40 at once against a pool of 10 without overflow: the rest wait their turn.
    answers = await asyncio.gather(
        *(api_client.get(f"/v1/classes/{class_id}", headers=headers) for _ in range(40))
    )
    assert {answer.status_code for answer in answers} == {200}
