"""Small helpers shared by the class/student/internal API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.bootstrap import build_app
from class_management_service.outbox.models import OutboxEvent
from class_management_service.settings import Settings


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API built from ``settings``, in-process; its container closed afterwards."""
    app = build_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        yield client
    await app.state.container.close()


def teacher(name: str) -> dict[str, str]:
    return {"X-User-ID": name}


async def create_class(
    client: httpx.AsyncClient, owner: str = "teacher-a", name: str = "9A", course: str = "ENG5"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/classes/", json={"name": name, "course_codes": [course]}, headers=teacher(owner)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_student(
    client: httpx.AsyncClient,
    owner: str = "teacher-a",
    first: str = "Anna",
    last: str = "Svensson",
    *,
    email: str | None = None,
    class_ids: Sequence[str] = (),
    legal: str | None = None,
) -> dict[str, Any]:
    person: dict[str, Any] = {"first_name": first, "last_name": last}
    if legal is not None:
        person["legal_full_name"] = legal
    response = await client.post(
        "/v1/classes/students",
        json={"person_name": person, "email": email, "class_ids": list(class_ids)},
        headers=teacher(owner),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's error body, never a stack trace."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "correlation_id", "service", "timestamp", "details"}
    assert "Traceback" not in response.text
    return error


async def outbox_events(
    session_factory: async_sessionmaker[AsyncSession], topic: str | None = None
) -> list[OutboxEvent]:
    async with session_factory() as session:
        statement = select(OutboxEvent).order_by(OutboxEvent.created_at, OutboxEvent.id)
        if topic is not None:
            statement = statement.where(OutboxEvent.topic == topic)
        return list((await session.scalars(statement)).all())


async def count_rows(session_factory: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)
