"""Per aggregate, events reach Kafka in commit order, however many relays run (issue 12 row 8).

Outbox rows used to be published in ``created_at`` order, the *start* of the writing
transaction: a rename that started first but committed last was published first, so Kafka's
last word on a class differed from the database; with several relays an aggregate's v2 could
overtake its v1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.classes import service as classes
from class_management_service.classes.models import SchoolClass
from class_management_service.classes.schemas import ClassUpdate
from class_management_service.messaging import topics
from class_management_service.messaging.producer import SharedProducer
from class_management_service.outbox.models import OutboxEvent, OutboxStatus
from class_management_service.outbox.relay import OutboxRelay
from class_management_service.outbox.writer import (
    PendingEvent,
    add_outbox_event,
    copy_outbox_records,
    outbox_copy_records,
)
from class_management_service.settings import Settings
from class_management_service.unit_of_work import UnitOfWork
from tests.http_helpers import create_class, teacher
from tests.kafka.topics import consume, make_relay
from tests.waiting import cancel_and_wait, wait_for

SessionFactory = async_sessionmaker[AsyncSession]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> Settings:
    return make_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        outbox_poll_interval_seconds=0.05,
        outbox_batch_size=5,
        database_pool_size=12,
    )


@contextlib.asynccontextmanager
async def relays(
    session_factory: SessionFactory, settings: Settings, count: int
) -> AsyncIterator[list[OutboxRelay]]:
    """``count`` relays (each with its own producer, as separate replicas) running meanwhile."""
    producers = [SharedProducer(settings) for _ in range(count)]
    workers = [make_relay(session_factory, producer, settings) for producer in producers]
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield workers
    finally:
        await cancel_and_wait(tasks)
        for producer in producers:
            await producer.stop()


async def _all_published(session_factory: SessionFactory) -> None:
    left: int | None = None

    async def none_left() -> bool:
        nonlocal left
        async with session_factory() as session:
            left = await session.scalar(
                select(func.count()).where(OutboxEvent.status != OutboxStatus.PUBLISHED.value)
            )
        return left == 0

    await wait_for(none_left, what=lambda: f"{left} outbox events to be published")


def _by_key(messages: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Each key's envelopes in the order Kafka holds them (one partition per key)."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        found[message.key.decode()].append(json.loads(message.value))
    return found


async def test_the_rename_that_commits_last_is_the_last_on_kafka(
    api_client: httpx.AsyncClient,
    session_factory: SessionFactory,
    settings: Settings,
    kafka_bootstrap: str,
) -> None:
    """Deterministic interleaving: A starts first, B renames and commits, then A commits."""
    class_id = uuid.UUID((await create_class(api_client))["id"])
    async with UnitOfWork(session_factory) as first:
        # A's transaction starts now (the earliest created_at) ...
        await first.session.execute(select(1))
        async with UnitOfWork(session_factory) as second:
            await classes.update_class(second, "teacher-a", class_id, ClassUpdate(name="B"))
        # ... B has committed; A renames and commits last: the database says "A".
        await classes.update_class(first, "teacher-a", class_id, ClassUpdate(name="A"))

    async with relays(session_factory, settings, 1):
        await _all_published(session_factory)
    (updates,) = _by_key(
        await consume(kafka_bootstrap, topics.CLASS_UPDATED, 2, keys={str(class_id)})
    ).values()
    assert [update["data"]["class_designation"] for update in updates] == ["B", "A"]


async def test_30_concurrent_renames_end_on_kafka_with_the_databases_name(
    api_client: httpx.AsyncClient,
    session_factory: SessionFactory,
    settings: Settings,
    kafka_bootstrap: str,
) -> None:
    class_ids = [(await create_class(api_client, name=f"class {i}"))["id"] for i in range(4)]
    renames = [
        api_client.put(
            f"/v1/classes/{class_id}",
            json={"name": f"{class_id[:8]} v{n}"},
            headers=teacher("teacher-a"),
        )
        for n in range(30)
        for class_id in class_ids
    ]
    answers = await asyncio.gather(*renames)
    assert {answer.status_code for answer in answers} == {200}

    async with relays(session_factory, settings, 3):
        await _all_published(session_factory)
    on_kafka = _by_key(
        await consume(
            kafka_bootstrap, topics.CLASS_UPDATED, 30 * len(class_ids), keys=set(class_ids)
        )
    )
    async with session_factory() as session:
        in_database = {
            str(row.id): row.name
            for row in await session.execute(select(SchoolClass.id, SchoolClass.name))
        }
    assert sorted(on_kafka) == sorted(class_ids)
    for class_id, updates in on_kafka.items():
        assert len(updates) == 30
        assert updates[-1]["data"]["class_designation"] == in_database[class_id]


async def test_three_relays_publish_every_aggregates_updates_in_order(
    session_factory: SessionFactory,
    settings: Settings,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    topic = unique_name("test.order.versions")
    aggregates = [f"student-{i}" for i in range(12)]
    versions = 15
    async with relays(session_factory, settings, 3):
        # Sequential updates per aggregate (each its own transaction) while the relays run.
        for version in range(1, versions + 1):
            for aggregate in aggregates:
                async with session_factory() as session:
                    add_outbox_event(
                        session,
                        topic=topic,
                        aggregate_type="student",
                        aggregate_id=aggregate,
                        data={"version": version},
                        correlation_id=uuid.uuid4(),
                    )
                    await session.commit()
        await _all_published(session_factory)
    on_kafka = _by_key(await consume(kafka_bootstrap, topic, versions * len(aggregates)))
    assert sorted(on_kafka) == sorted(aggregates)
    for aggregate, events in on_kafka.items():
        seen = [event["data"]["version"] for event in events]
        # At least once: a re-send may repeat a version, never reorder one before another.
        assert sorted(set(seen)) == list(range(1, versions + 1)), aggregate
        assert seen == sorted(seen), f"{aggregate} out of order: {seen}"


async def test_sequences_follow_commit_order_for_inserts_and_copy(
    session_factory: SessionFactory,
) -> None:
    """The sequence is the database's (trigger): ORM inserts and the roster import's COPY alike."""
    async with session_factory() as session:
        for _ in range(2):
            add_outbox_event(
                session,
                topic="t",
                aggregate_type="student",
                aggregate_id="s-1",
                data={},
                correlation_id=uuid.uuid4(),
            )
        await session.commit()
    async with session_factory() as session:
        records = outbox_copy_records(
            "student",
            [PendingEvent("t", aggregate, {}, uuid.uuid4()) for aggregate in ("s-1", "s-2", "s-1")],
        )
        await copy_outbox_records(session, records)
        await session.commit()
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(OutboxEvent.aggregate_id, OutboxEvent.aggregate_sequence).order_by(
                    OutboxEvent.aggregate_id, OutboxEvent.aggregate_sequence
                )
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("s-1", 1),
        ("s-1", 2),
        ("s-1", 3),
        ("s-1", 4),
        ("s-2", 1),
    ]


class _GatedProducer:
    """A relay's producer whose sends wait until the test opens the gate (a slow relay)."""

    def __init__(self, inner: SharedProducer, gate: asyncio.Event) -> None:
        self._inner, self._gate = inner, gate

    async def get(self) -> _GatedProducer:
        return self

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        await self._gate.wait()
        return await (await self._inner.get()).send(*args, **kwargs)


async def test_no_relay_overtakes_another_that_is_still_sending_the_aggregates_earlier_event(
    session_factory: SessionFactory,
    settings: Settings,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    """Deterministic: relay 1 claimed v1 and is slow to send it; relay 2 must not send v2."""
    topic = unique_name("test.order.slow")
    for version in (1, 2):
        async with session_factory() as session:
            add_outbox_event(
                session,
                topic=topic,
                aggregate_type="student",
                aggregate_id="student-1",
                data={"version": version},
                correlation_id=uuid.uuid4(),
            )
            await session.commit()
    gate = asyncio.Event()
    one_at_a_time = settings.model_copy(update={"outbox_batch_size": 1})
    producers = [SharedProducer(settings) for _ in range(2)]
    slow, fast = (
        make_relay(session_factory, producer, one_at_a_time)
        for producer in (_GatedProducer(producers[0], gate), producers[1])
    )
    try:
        sending_v1 = asyncio.create_task(slow.run_once())

        async def v1_leased() -> bool:
            async with session_factory() as session:
                leased = await session.scalar(
                    select(func.count()).where(
                        OutboxEvent.aggregate_sequence == 1,
                        OutboxEvent.next_attempt_at > func.now(),
                    )
                )
            return leased == 1

        await wait_for(v1_leased, within=10, what="v1's lease")
        assert (await fast.run_once()).claimed == 0  # v2 waits for v1
        gate.set()
        assert (await sending_v1).published == 1
        assert (await fast.run_once()).published == 1
    finally:
        gate.set()
        for producer in producers:
            await producer.stop()
    (events,) = _by_key(await consume(kafka_bootstrap, topic, 2)).values()
    assert [event["data"]["version"] for event in events] == [1, 2]
