"""Concurrency of the teacher review API over a real PostgreSQL: racing finalizing requests
publish the batch once."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.domain import AssociationStatus
from tests.factories import seed_batch
from tests.postgres.associations.conftest import Headers, _item, _outbox, _url


async def test_concurrent_finalizing_requests_publish_once(
    api_client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    teacher_headers: Headers,
) -> None:
    batch = await seed_batch(session_factory, statuses=(AssociationStatus.PENDING_VALIDATION,) * 2)
    items = [_item(e, s) for e, s in zip(batch.essays, batch.suggested, strict=True)]
    responses = await asyncio.gather(
        *(
            api_client.post(
                _url(batch.batch_id, confirm=True),
                json={"associations": items},
                headers=teacher_headers("teacher-a"),
            )
            for _ in range(5)
        )
    )
    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["changed"] for r in responses) == [0, 0, 0, 0, 2]
    assert len(await _outbox(session_factory)) == 1
