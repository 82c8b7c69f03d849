"""Acceptance: a year's backlog (1,000,000 old rows: half ledger, half published outbox) is
brought under the windows by the retention worker while ingestion goes on. Asserted on counts,
never on time; the rows are made with generate_series, seconds apart, oldest first."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.messaging import topics
from class_management_service.settings import Settings
from tests.factories import (
    count_associations,
    essay,
    event,
    fill_ledger,
    fill_outbox,
    ingest,
    processed_event_ids,
    retention_worker,
    seed_roster,
)
from tests.fakes.redelivery import FakeRedelivery
from tests.waiting import cancel_and_wait

SessionFactory = async_sessionmaker[AsyncSession]
BACKLOG = 500_000  # per table
ESSAYS = 5
# An event is ingested per this many transactions the worker starts (~2,000 over the backlog):
# ingestion goes on from the first batch to the last, each event while a batch is deleted,
# without taking the CPU the deletes need as a loop ingesting flat out would.
INGEST_EVERY = 50


class PacedSessions(async_sessionmaker[AsyncSession]):
    """The worker's session factory: sets ``due`` on every ``INGEST_EVERY``-th session it opens,
    and on every one once ``finished()`` says the backlog is gone."""

    def __init__(
        self, session_factory: SessionFactory, due: asyncio.Event, finished: Callable[[], bool]
    ) -> None:
        super().__init__(**session_factory.kw)
        self._due = due
        self._finished = finished
        self._opened = 0

    def __call__(self, **local_kw: Any) -> AsyncSession:
        self._opened += 1
        if self._opened % INGEST_EVERY == 0 or self._finished():
            self._due.set()
        return super().__call__(**local_kw)


async def old_rows(session_factory: SessionFactory, *, at_most: int) -> int:
    """Rows past their windows (30 and 7 days), up to ``at_most`` of each table, counted along
    the retention indexes."""
    async with session_factory() as session:
        found = await session.execute(
            text(
                "SELECT (SELECT count(*) FROM (SELECT FROM processed_events "
                "        WHERE topic = :topic AND processed_at < now() - interval '30 days' "
                "        LIMIT :at_most) AS p)"
                "     + (SELECT count(*) FROM (SELECT FROM outbox_events "
                "        WHERE status = 'published' AND published_at < now() - interval '7 days' "
                "        LIMIT :at_most) AS o)"
            ),
            {"topic": topics.BATCH_AUTHOR_MATCHES_SUGGESTED, "at_most": at_most},
        )
        return int(found.scalar_one())


async def test_a_million_old_rows_go_while_ingestion_goes_on(
    session_factory: SessionFactory, make_settings: Callable[..., Settings]
) -> None:
    await asyncio.gather(  # two tables, two connections: the fills run side by side
        fill_ledger(session_factory, rows=BACKLOG, age=timedelta(days=31)),
        fill_outbox(session_factory, rows=BACKLOG, age=timedelta(days=8)),
    )
    assert await old_rows(session_factory, at_most=BACKLOG) == 2 * BACKLOG
    settings = make_settings(
        retention_processed_events_days=30,
        retention_outbox_published_days=7,
        retention_interval_seconds=0.05,
        retention_batch_pause_seconds=0,
    )
    registry = CollectorRegistry()
    roster = await seed_roster(session_factory, students=ESSAYS)
    ingestion = AuthorMatchIngestion(session_factory)
    ingested: list[uuid.UUID] = []
    during_retention = 0

    def deleted() -> float:
        return sum(
            registry.get_sample_value("retention_deleted_rows_total", {"table": table}) or 0
            for table in ("processed_events", "outbox_events")
        )

    due = asyncio.Event()
    paced = PacedSessions(session_factory, due, lambda: deleted() == 2 * BACKLOG)
    worker = retention_worker(paced, settings, FakeRedelivery(), registry)
    retention = asyncio.create_task(worker.run())
    try:
        while True:
            await due.wait()
            due.clear()
            event_id = uuid.uuid4()
            essays = [essay(uuid.uuid4(), [(s, 0.9)]) for s in roster.student_ids]
            incoming = event(roster.class_id, essays, event_id=event_id)
            await ingest(ingestion, [incoming], topic=topics.BATCH_AUTHOR_MATCHES_SUGGESTED)
            ingested.append(event_id)
            if deleted() == 2 * BACKLOG:
                break
            during_retention += 1  # committed while old rows were still being deleted
    finally:
        await cancel_and_wait([retention])

    assert await old_rows(session_factory, at_most=BACKLOG) == 0
    counter = "retention_deleted_rows_total"
    assert registry.get_sample_value(counter, {"table": "processed_events"}) == BACKLOG
    assert registry.get_sample_value(counter, {"table": "outbox_events"}) == BACKLOG
    # Everything ingested meanwhile is stored, its ledger rows (new) untouched by retention.
    assert await processed_event_ids(session_factory) == set(ingested)
    assert await count_associations(session_factory) == len(ingested) * ESSAYS
    assert during_retention >= 3
