"""Shared by the teacher review API tests: the teacher-headers fixture's type, the routes, a
decision item, the StudentAssociationsConfirmedV1 events in the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging import topics
from class_management_service.outbox.models import OutboxEvent
from tests.http_helpers import outbox_events

Headers = Callable[[str], dict[str, str]]


def _url(batch_id: uuid.UUID | str, confirm: bool = False) -> str:
    return f"/v1/batches/{batch_id}/student-associations" + ("/confirm" if confirm else "")


def _item(essay: uuid.UUID, student: uuid.UUID | None, confirmed: bool = True) -> dict[str, object]:
    return {
        "essay_id": str(essay),
        "student_id": str(student) if student else None,
        "confirmed": confirmed,
    }


async def _outbox(session_factory: async_sessionmaker[AsyncSession]) -> list[OutboxEvent]:
    """The StudentAssociationsConfirmedV1 events (notifications: test_teacher_notifications)."""
    return await outbox_events(session_factory, topics.STUDENT_ASSOCIATIONS_CONFIRMED)
