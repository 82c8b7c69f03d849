"""The processed-event window against what the real broker says it keeps: DescribeConfigs of
the ledger's topics, and the worker keeping a topic's ledger rows while Kafka may still
redeliver its records."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.bootstrap import build_container
from class_management_service.retention.horizon import (
    NOTHING_TO_REDELIVER,
    REDELIVERY_MARGIN,
    BrokerRedelivery,
    Redelivery,
)
from class_management_service.retention.worker import RetentionWorker
from class_management_service.settings import Settings
from tests.factories import fill_ledger

DAY = timedelta(days=1)


@pytest.fixture
async def topics(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> AsyncIterator[dict[str, str]]:
    """A topic kept 3 days in 1-day segments, a compacted one, and one that does not exist."""
    names = {
        "kept": unique_name("retention.kept"),
        "compacted": unique_name("retention.compacted"),
        "missing": unique_name("retention.missing"),
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    names["kept"],
                    1,
                    1,
                    topic_configs={"retention.ms": str(3 * 86_400_000), "segment.ms": "86400000"},
                ),
                NewTopic(names["compacted"], 1, 1, topic_configs={"cleanup.policy": "compact"}),
            ]
        )
        yield names
        await admin.delete_topics([names["kept"], names["compacted"]])
    finally:
        await admin.close()


async def test_broker_says_how_long_it_may_redeliver(
    kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    ask = BrokerRedelivery(kafka_bootstrap, timeout_seconds=10)

    answers = await ask(list(topics.values()))

    assert answers == {
        # retention.ms + segment.ms: a segment goes only when its newest record is past retention.
        topics["kept"]: Redelivery(4 * DAY + REDELIVERY_MARGIN),
        topics["compacted"]: Redelivery(None),
        topics["missing"]: NOTHING_TO_REDELIVER,
    }


async def test_worker_keeps_ledger_rows_kafka_may_still_redeliver(
    kafka_bootstrap: str,
    topics: dict[str, str],
    make_settings: Callable[..., Settings],
    session_factory: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A 2-day window, shorter than the 4 days (and a margin) Kafka keeps "kept"'s records.
    settings = make_settings(
        run_retention=True,
        kafka_bootstrap_servers=kafka_bootstrap,
        author_matches_topic=topics["kept"],
        retention_processed_events_days=2,
    )
    container = build_container(settings)
    try:
        [worker] = [w for w in container.supervisor.workers if isinstance(w, RetentionWorker)]
        caplog.set_level(logging.ERROR, logger="class_management_service.retention.worker")
        # At start-up, before the ledger holds anything: the consumed topic is checked.
        await worker.run_once()
        assert [record.topic for record in caplog.records] == [topics["kept"]]  # type: ignore[attr-defined]
        health = (await container.health_checks["retention"]()).details
        assert health["processed_event_window_days"] == {topics["kept"]: 4 + 1 / 24}

        for topic in topics.values():
            await fill_ledger(session_factory, rows=3, age=3 * DAY, topic=topic)
        await fill_ledger(session_factory, rows=2, age=5 * DAY, topic=topics["kept"])
        outcome = await worker.run_once()
    finally:
        await container.close()

    assert outcome.deleted["processed_events"] == 2 + 3
    async with session_factory() as session:
        left = await session.execute(
            text("SELECT topic, count(*) FROM processed_events GROUP BY topic")
        )
        assert dict(left.all()) == {topics["kept"]: 3, topics["compacted"]: 3}
