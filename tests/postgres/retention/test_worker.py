"""The retention worker over a real PostgreSQL: what it deletes, what it keeps, the windows the
broker's answers allow, metrics and health. Rows are made old on the database's clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service import db
from class_management_service.bootstrap import build_container
from class_management_service.retention.horizon import NOTHING_TO_REDELIVER, Redelivery
from class_management_service.retention.worker import RetentionWorker
from class_management_service.settings import Settings
from class_management_service.workers import supervisor
from tests.factories import fill_ledger, fill_outbox, retention_worker
from tests.fakes.redelivery import FakeRedelivery
from tests.waiting import cancel_and_wait, wait_for

SessionFactory = async_sessionmaker[AsyncSession]
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        retention_outbox_published_days=1,
        retention_processed_events_days=2,
        retention_batch_size=7,
        retention_grace_seconds=3600,
        # The pause leaves the database to ingestion between batches; nothing ingests here.
        retention_batch_pause_seconds=0,
    )


async def counts(session_factory: SessionFactory) -> dict[str, int]:
    """Rows per table and (outbox) status."""
    async with session_factory() as session:
        ledger = (await session.execute(text("SELECT count(*) FROM processed_events"))).scalar()
        outbox = (
            await session.execute(
                text("SELECT status, count(*) FROM outbox_events GROUP BY status")
            )
        ).all()
    return {"processed_events": int(ledger or 0), **{status: n for status, n in outbox}}


async def ledger_counts(session_factory: SessionFactory) -> dict[str, int]:
    async with session_factory() as session:
        rows = await session.execute(
            text("SELECT topic, count(*) FROM processed_events GROUP BY topic")
        )
        return {topic: n for topic, n in rows.all()}


async def test_deletes_rows_past_their_windows_in_batches_and_keeps_the_rest(
    session_factory: SessionFactory, settings: Settings
) -> None:
    await fill_ledger(session_factory, rows=20, age=2 * DAY + HOUR)
    await fill_ledger(session_factory, rows=5, age=DAY)  # within the 2-day window
    await fill_outbox(session_factory, rows=15, age=DAY + HOUR)
    await fill_outbox(session_factory, rows=4, age=HOUR)  # within the 1-day window
    # Unpublished rows are never retention's, however old: the relay or an operator needs them.
    await fill_outbox(session_factory, rows=3, age=30 * DAY, status="pending")
    await fill_outbox(session_factory, rows=2, age=30 * DAY, status="failed")
    registry = CollectorRegistry()
    worker = retention_worker(session_factory, settings, FakeRedelivery(), registry)

    outcome = await worker.run_once()

    # 20 and 15 rows at 7 a batch: several short transactions, until one came back short.
    assert outcome.deleted == {"processed_events": 20, "outbox_events": 15}
    assert await counts(session_factory) == {
        "processed_events": 5,
        "published": 4,
        "pending": 3,
        "failed": 2,
    }
    deleted = "retention_deleted_rows_total"
    assert registry.get_sample_value(deleted, {"table": "processed_events"}) == 20
    assert registry.get_sample_value(deleted, {"table": "outbox_events"}) == 15
    assert (await worker.run_once()).deleted == {"processed_events": 0, "outbox_events": 0}


async def test_gauges_show_table_sizes_and_the_oldest_row(
    session_factory: SessionFactory, settings: Settings
) -> None:
    await fill_ledger(session_factory, rows=50, age=HOUR)
    await fill_outbox(session_factory, rows=30, age=2 * HOUR)
    async with session_factory() as session, session.begin():
        await session.execute(text("ANALYZE processed_events, outbox_events"))
    registry = CollectorRegistry()

    await retention_worker(session_factory, settings, FakeRedelivery(), registry).run_once()

    def sample(name: str, table: str) -> float:
        value = registry.get_sample_value(name, {"table": table})
        assert value is not None, (name, table)
        return value

    assert sample("retention_table_rows", "processed_events") == 50
    assert sample("retention_table_rows", "outbox_events") == 30
    assert sample("retention_table_bytes", "processed_events") > 0
    assert sample("retention_table_bytes", "outbox_events") > 0
    # The oldest of 50 rows an hour old and one more second each: 1 h 49 s and a little.
    assert 3649 <= sample("retention_oldest_row_age_seconds", "processed_events") < 3649 + 600
    assert 7229 <= sample("retention_oldest_row_age_seconds", "outbox_events") < 7229 + 600


async def test_ledger_window_is_raised_to_what_kafka_may_still_redeliver(
    session_factory: SessionFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    long_kept, compacted, gone = "topic.kept-5-days", "topic.compacted", "topic.deleted"
    for topic in (long_kept, compacted, gone):
        await fill_ledger(session_factory, rows=3, age=3 * DAY, topic=topic)  # past 2 days
    await fill_ledger(session_factory, rows=4, age=6 * DAY, topic=long_kept)
    broker = FakeRedelivery(
        {long_kept: Redelivery(5 * DAY), compacted: Redelivery(None), gone: NOTHING_TO_REDELIVER}
    )
    caplog.set_level(logging.ERROR, logger="class_management_service.retention.worker")

    outcome = await retention_worker(session_factory, settings, broker).run_once()

    # Kafka may still hand out long_kept's 3-day-old records: their ledger rows stay (5 days);
    # a compacted topic keeps records for ever, so its rows stay too.
    assert outcome.deleted["processed_events"] == 4 + 3
    assert await ledger_counts(session_factory) == {long_kept: 3, compacted: 3}
    raised = {record.topic for record in caplog.records}  # type: ignore[attr-defined]
    assert raised == {long_kept, compacted}


async def test_ledger_rows_wait_for_the_broker_while_the_outbox_is_cleaned(
    session_factory: SessionFactory, settings: Settings
) -> None:
    await fill_ledger(session_factory, rows=10, age=3 * DAY)
    await fill_outbox(session_factory, rows=10, age=2 * DAY)
    broker = FakeRedelivery()
    broker.unreachable = True
    worker = retention_worker(session_factory, settings, broker)

    outcome = await worker.run_once()

    assert outcome.deleted == {"processed_events": 0, "outbox_events": 10}
    assert outcome.unknown_topics == ["huleedu.batch.author.matches.suggested.v1"]
    health = (await worker.health_check()()).details
    assert health["topics_waiting_for_the_broker"] == outcome.unknown_topics
    broker.unreachable = False
    assert (await worker.run_once()).deleted == {"processed_events": 10, "outbox_events": 0}
    # Answered once, asked again only after the refresh interval.
    await worker.run_once()
    assert len(broker.asked) == 2


async def test_health_shows_the_worker_behind_while_old_rows_remain(
    session_factory: SessionFactory, settings: Settings
) -> None:
    await fill_outbox(session_factory, rows=10, age=DAY + 2 * HOUR)  # past window + grace
    worker = retention_worker(session_factory, settings, FakeRedelivery())
    check = worker.health_check()
    assert (await check()).details == {"status": "starting"}

    # Another replica holds the oldest rows (deleting them, in a transaction not yet
    # committed): this pass skips them without waiting and reports itself behind.
    async with session_factory() as holder, holder.begin():
        await holder.execute(
            text("SELECT id FROM outbox_events ORDER BY published_at LIMIT 4 FOR UPDATE")
        )
        outcome = await worker.run_once()
        assert outcome.deleted["outbox_events"] == 6
        result = await check()
    assert result.ok  # reported, not failed: a restart would delete nothing faster
    assert result.details["status"] == "behind"
    assert result.details["behind"] == ["outbox_events"]

    await worker.run_once()
    result = await check()
    assert result.details["status"] == "ok"
    assert "behind" not in result.details


async def test_health_shows_the_worker_behind_when_no_pass_finished_in_time(
    session_factory: SessionFactory, make_settings: Callable[..., Settings]
) -> None:
    # No time for a pass at all: the first one, over a year's backlog, could take hours.
    settings = make_settings(retention_interval_seconds=0, retention_grace_seconds=0)
    worker = retention_worker(session_factory, settings, FakeRedelivery())

    result = await worker.health_check()()

    assert result.details == {"status": "behind", "behind": ["no pass finished"]}


async def test_bootstrap_runs_the_worker_when_switched_on_and_lists_it_in_health(
    make_settings: Callable[..., Settings],
) -> None:
    off = build_container(make_settings())
    on = build_container(make_settings(run_retention=True))
    try:
        assert "retention" not in off.health_checks
        [worker] = [w for w in on.supervisor.workers if w.name == "retention"]
        assert isinstance(worker, RetentionWorker)
        await worker.run_once()  # no ledger rows: no topic to ask the (absent) broker about
        result = await on.health_checks["retention"]()
        assert result.details["status"] == "ok"
        assert "retention_deleted_rows_total" in on.metrics.render().decode()
    finally:
        await off.close()
        await on.close()


async def test_replicas_delete_each_row_once_side_by_side(
    session_factory: SessionFactory, make_settings: Callable[..., Settings]
) -> None:
    await fill_ledger(session_factory, rows=2000, age=3 * DAY)
    await fill_outbox(session_factory, rows=2000, age=2 * DAY)
    settings = make_settings(
        retention_outbox_published_days=1,
        retention_processed_events_days=2,
        retention_batch_size=50,
        retention_batch_pause_seconds=0,  # the replicas' batches are what runs side by side
    )
    replicas = [retention_worker(session_factory, settings, FakeRedelivery()) for _ in range(3)]

    passes = await asyncio.gather(*(replica.run_once() for replica in replicas))
    # A replica that found the rest locked by the others stopped early; a second pass ends it.
    passes += await asyncio.gather(*(replica.run_once() for replica in replicas))

    for table in ("processed_events", "outbox_events"):
        assert sum(outcome.deleted[table] for outcome in passes) == 2000
    assert await counts(session_factory) == {"processed_events": 0}


async def test_backs_off_while_the_database_is_busy_and_resumes_after(
    session_factory: SessionFactory,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The backoff's delays scaled down 50x (under 10 ms instead of 0.5 s): what is checked is
    # that the worker fails a pass, backs off and resumes, not how long it waits.
    monkeypatch.setattr(supervisor, "_BACKOFF_BASE_SECONDS", 0.01)
    await fill_outbox(session_factory, rows=10, age=2 * DAY)
    settings = make_settings(retention_outbox_published_days=1, database_lock_timeout_ms=100)
    engine = db.create_engine(settings)  # the worker's connections wait 100 ms for a lock
    worker = retention_worker(db.create_session_factory(engine), settings, FakeRedelivery())
    task = asyncio.create_task(worker.run())
    try:
        async with session_factory() as holder, holder.begin():
            await holder.execute(text("LOCK TABLE outbox_events IN ACCESS EXCLUSIVE MODE"))

            def backed_off() -> bool:
                assert not task.done(), task.exception()
                return worker.backoff.failures >= 1

            await wait_for(backed_off, what="a failed pass and a backoff")
            assert "lock timeout" in (worker.backoff.last_error or "")

        async def resumed() -> bool:
            assert not task.done(), task.exception()
            return worker.backoff.failures == 0 and await counts(session_factory) == {
                "processed_events": 0
            }

        await wait_for(resumed, what="a pass deleting the old rows after the lock went")
    finally:
        await cancel_and_wait([task])
        await engine.dispose()
