"""``outbox status`` and ``outbox requeue`` as subprocesses on a database with failed, pending
and published events."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.service.cli.conftest import CliRunner


async def _outbox_rows(
    session_factory: async_sessionmaker[AsyncSession], status: str, count: int, age: timedelta
) -> list[uuid.UUID]:
    async with session_factory() as session, session.begin():
        rows = await session.execute(
            text(
                "INSERT INTO outbox_events (id, aggregate_type, aggregate_id, topic, event_type, "
                "message_key, envelope, headers, status, attempts, last_error, created_at, "
                "next_attempt_at) "
                "SELECT gen_random_uuid(), 'class', 'agg-' || n, 'huleedu.class.created.v1', "
                "'huleedu.class.created.v1', 'agg-' || n, '{}', '{}', CAST(:status AS varchar), "
                "CASE WHEN CAST(:status AS varchar) = 'failed' THEN 10 ELSE 3 END, 'said no', "
                "now() - CAST(:age AS interval), now() + interval '1 hour' "
                "FROM generate_series(1, :count) AS n RETURNING id"
            ),
            {"status": status, "count": count, "age": age},
        )
        return [row[0] for row in rows]


async def _row(session_factory: async_sessionmaker[AsyncSession], row_id: uuid.UUID) -> Any:
    async with session_factory() as session:
        return (
            await session.execute(
                text(
                    "SELECT status, attempts, next_attempt_at <= now() AS due "
                    "FROM outbox_events WHERE id = :id"
                ),
                {"id": row_id},
            )
        ).one()


async def test_status_counts_pending_and_failed_and_ages_the_oldest_pending(
    cli: CliRunner, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await _outbox_rows(session_factory, "pending", 3, timedelta(hours=2))
    await _outbox_rows(session_factory, "failed", 2, timedelta(days=1))
    await _outbox_rows(session_factory, "published", 4, timedelta(days=3))

    finished = await cli("outbox", "status", "--json")
    assert finished.returncode == 0, finished
    status = finished.json()
    assert (status["pending"], status["failed"]) == (3, 2)
    assert 7200 <= status["oldest_pending_age_seconds"] < 7200 + 600

    readable = await cli("outbox", "status")
    assert readable.returncode == 0, readable
    assert "pending: 3" in readable.stdout
    assert "failed:  2" in readable.stdout


async def test_requeue_makes_failed_or_named_events_pending_and_due_never_published_ones(
    cli: CliRunner, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    failed = await _outbox_rows(session_factory, "failed", 2, timedelta(days=1))
    [waiting, untouched] = await _outbox_rows(session_factory, "pending", 2, timedelta(minutes=1))
    [published] = await _outbox_rows(session_factory, "published", 1, timedelta(days=1))

    nothing_named = await cli("outbox", "requeue")
    assert nothing_named.returncode == 1
    assert "--failed" in nothing_named.stderr

    by_id = await cli("outbox", "requeue", "--id", str(waiting), "--id", str(published))
    assert by_id.returncode == 1, by_id
    assert "requeued 1 event(s)" in by_id.stdout
    assert f"already published): {published}" in by_id.stderr
    assert tuple(await _row(session_factory, waiting)) == ("pending", 0, True)
    assert tuple(await _row(session_factory, untouched)) == ("pending", 3, False)
    assert (await _row(session_factory, published)).status == "published"

    all_failed = await cli("outbox", "requeue", "--failed")
    assert all_failed.returncode == 0, all_failed
    assert "requeued 2 event(s)" in all_failed.stdout
    assert set(all_failed.stdout.split()) >= {str(row_id) for row_id in failed}
    for row_id in failed:
        assert tuple(await _row(session_factory, row_id)) == ("pending", 0, True)
