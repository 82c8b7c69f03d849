"""The outbox relay against real PostgreSQL and Kafka: delivery, wake-up, crashes, failures,
and several relays + timeout monitors at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aiokafka.errors import LeaderNotAvailableError
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.models import BatchConfirmation, EssayStudentAssociation
from class_management_service.associations.timeout_monitor import TimeoutMonitor
from class_management_service.classes.models import SchoolClass
from class_management_service.courses.domain import CourseCode
from class_management_service.courses.reference import course_id
from class_management_service.messaging import topics
from class_management_service.messaging.producer import SharedProducer
from class_management_service.outbox import claims
from class_management_service.outbox.models import OutboxEvent, OutboxStatus
from class_management_service.outbox.relay import OutboxRelay
from class_management_service.outbox.writer import add_outbox_event
from class_management_service.settings import Settings
from tests.factories import timeout_monitor
from tests.kafka.topics import consume, make_relay
from tests.waiting import cancel_and_wait, wait_for, wait_for_backend

SessionFactory = async_sessionmaker[AsyncSession]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> Settings:
    return make_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        outbox_poll_interval_seconds=0.2,
        outbox_max_attempts=2,
        producer_request_timeout_ms=5_000,
    )


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[SharedProducer]:
    shared = SharedProducer(settings)
    yield shared
    await shared.stop()


@pytest.fixture
def topic(unique_name: Callable[[str], str]) -> str:
    return unique_name("test.outbox")


async def add_events(
    session_factory: SessionFactory, topic: str, count: int = 1, payload_bytes: int = 10
) -> list[uuid.UUID]:
    async with session_factory() as session:
        ids = [
            add_outbox_event(
                session,
                topic=topic,
                aggregate_type="test",
                # Per topic: rows of one aggregate are published one after the other.
                aggregate_id=f"{topic}-{i}",
                data={"n": i, "blob": "x" * payload_bytes},
                correlation_id=uuid.uuid4(),
            ).event_id
            for i in range(count)
        ]
        await session.commit()
    return ids


async def rows(session_factory: SessionFactory) -> dict[uuid.UUID, OutboxEvent]:
    async with session_factory() as session:
        result = await session.execute(select(OutboxEvent))
        return {row.id: row for row in result.scalars()}


async def wait_until_published(session_factory: SessionFactory) -> None:
    """Until no outbox row is pending (the workers keep running meanwhile)."""

    async def none_pending() -> bool:
        return all(r.status != OutboxStatus.PENDING for r in (await rows(session_factory)).values())

    await wait_for(none_pending, what="no pending outbox rows")


async def expire_leases(session_factory: SessionFactory) -> None:
    """What waiting out the lease (or the backoff) would do."""
    async with session_factory() as session:
        await session.execute(
            text("UPDATE outbox_events SET next_attempt_at = now() WHERE status = 'pending'")
        )
        await session.commit()


async def test_publishes_the_stored_envelope_unchanged(
    session_factory: SessionFactory,
    producer: SharedProducer,
    settings: Settings,
    topic: str,
    kafka_bootstrap: str,
) -> None:
    (event_id,) = await add_events(session_factory, topic)
    stored = (await rows(session_factory))[event_id]
    registry = CollectorRegistry()
    relay = make_relay(session_factory, producer, settings, registry=registry)
    await relay.refresh_gauges()
    assert registry.get_sample_value("outbox_pending_events") == 1

    result = await relay.run_once()
    assert (result.claimed, result.published, result.failed) == (1, 1, 0)

    (message,) = await consume(kafka_bootstrap, topic, 1)
    assert json.loads(message.value) == stored.envelope
    assert message.key == f"{topic}-0".encode()
    headers = {name: value.decode() for name, value in message.headers}
    assert headers == stored.headers
    assert headers["event_id"] == str(event_id)
    assert headers["content_type"] == "application/json"
    row = (await rows(session_factory))[event_id]
    assert row.status == OutboxStatus.PUBLISHED
    assert row.published_at is not None
    assert row.attempts == 0

    await relay.refresh_gauges()
    assert registry.get_sample_value("outbox_pending_events") == 0
    assert registry.get_sample_value("outbox_oldest_pending_age_seconds") == 0
    assert registry.get_sample_value("outbox_published_total", {"topic": topic}) == 1
    assert (await relay.run_once()).claimed == 0


async def test_listen_wakes_the_relay_right_after_a_commit(
    session_factory: SessionFactory,
    producer: SharedProducer,
    make_settings: Callable[..., Settings],
    settings: Settings,
    topic: str,
    kafka_bootstrap: str,
) -> None:
    # Polling alone would take a minute: only the NOTIFY can explain a prompt delivery.
    slow_polling = settings.model_copy(update={"outbox_poll_interval_seconds": 60.0})
    relay = make_relay(session_factory, producer, slow_polling)
    task = asyncio.create_task(relay.run())
    try:
        await wait_for_backend(session_factory, "query LIKE 'LISTEN %'", what="the relay to LISTEN")
        await producer.get()  # broker connection warm: the wake-up is what is waited for
        (event_id,) = await add_events(session_factory, topic)
        # Well within the 60 s poll interval: only the NOTIFY can deliver it in time.
        (message,) = await consume(kafka_bootstrap, topic, 1, within=20)
        assert dict(message.headers)["event_id"] == str(event_id).encode()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_crash_between_publish_and_mark_resends_the_same_event(
    session_factory: SessionFactory,
    producer: SharedProducer,
    settings: Settings,
    topic: str,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (event_id,) = await add_events(session_factory, topic)

    async def crash(*_: object) -> None:
        """Dies after Kafka acknowledged the send, before the row is marked published."""
        raise RuntimeError("simulated crash between publish and mark")

    crashing = make_relay(session_factory, producer, settings)
    with monkeypatch.context() as patched:
        patched.setattr(claims, "mark_published", crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            await crashing.run_once()
    # Still leased to the crashed relay: a healthy relay does not touch it yet.
    healthy = make_relay(session_factory, producer, settings)
    assert (await healthy.run_once()).claimed == 0

    await expire_leases(session_factory)
    assert (await healthy.run_once()).published == 1

    first, second = await consume(kafka_bootstrap, topic, 2)
    assert first.value == second.value  # byte for byte: same event_id and timestamp
    assert json.loads(first.value)["event_id"] == str(event_id)
    assert dict(first.headers) == dict(second.headers)
    assert (await rows(session_factory))[event_id].status == OutboxStatus.PUBLISHED


async def test_failures_back_off_then_become_terminal_without_blocking_others(
    session_factory: SessionFactory,
    producer: SharedProducer,
    settings: Settings,
    topic: str,
    kafka_bootstrap: str,
) -> None:
    # Larger than the producer's max_request_size (uncompressed): refused every time.
    (too_big,) = await add_events(
        session_factory, topic, payload_bytes=settings.producer_max_request_size_bytes
    )
    registry = CollectorRegistry()
    relay = make_relay(session_factory, producer, settings, registry=registry)

    before = datetime.now(UTC)
    first = await relay.run_once()
    assert (first.failed, first.outage) == (1, False)
    row = (await rows(session_factory))[too_big]
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 1)
    assert row.last_error is not None
    assert "MessageSizeTooLarge" in row.last_error
    assert row.next_attempt_at >= before + timedelta(seconds=1.5)  # backoff, not the lease
    assert (await relay.run_once()).claimed == 0  # not due yet

    await expire_leases(session_factory)
    await relay.run_once()
    row = (await rows(session_factory))[too_big]
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, 2)  # outbox_max_attempts=2

    # Terminal: never claimed again, and it does not hold up later events.
    (fine,) = await add_events(session_factory, topic)
    result = await relay.run_once()
    assert (result.claimed, result.published) == (1, 1)
    assert (await rows(session_factory))[fine].status == OutboxStatus.PUBLISHED
    await relay.refresh_gauges()
    assert registry.get_sample_value("outbox_failed_events") == 1
    assert registry.get_sample_value("outbox_pending_events") == 0
    assert registry.get_sample_value("outbox_events_failed_total", {"topic": topic}) == 1
    assert registry.get_sample_value("outbox_publish_failures_total", {"topic": topic}) == 2
    (message,) = await consume(kafka_bootstrap, topic, 1)
    assert dict(message.headers)["event_id"] == str(fine).encode()


async def test_broker_outage_does_not_use_up_attempts(
    session_factory: SessionFactory, settings: Settings, topic: str
) -> None:
    (event_id,) = await add_events(session_factory, topic)
    unreachable = settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    dead_producer = SharedProducer(unreachable)
    relay = make_relay(
        session_factory,
        dead_producer,
        unreachable.model_copy(update={"outbox_lease_seconds": 4.0}),
    )
    result = await relay.run_once()
    assert (result.failed, result.outage) == (1, True)
    row = (await rows(session_factory))[event_id]
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 0)
    assert row.last_error is not None
    await dead_producer.stop()


class _LeaderlessTopicProducer:
    """The real producer, except that sends to one topic fail as during a leader election."""

    def __init__(self, real: SharedProducer, leaderless_topic: str) -> None:
        self._real = real
        self._leaderless_topic = leaderless_topic

    async def get(self) -> Any:
        return self

    async def send(self, topic: str, **kwargs: Any) -> Any:
        if topic == self._leaderless_topic:
            raise LeaderNotAvailableError()
        return await (await self._real.get()).send(topic, **kwargs)


async def test_a_transient_error_uses_up_no_attempt_even_when_other_sends_succeed(
    session_factory: SessionFactory, producer: SharedProducer, settings: Settings, topic: str
) -> None:
    # Found by tests/reliability/test_outbox_outage.py: right after a broker restart some sends
    # of a claim failed with LeaderNotAvailable while others went through, and each such
    # failure used up an attempt (a partition offline for long made its events terminal).
    (fine,) = await add_events(session_factory, topic)
    (stuck,) = await add_events(session_factory, topic + ".leaderless")
    leaderless = _LeaderlessTopicProducer(producer, topic + ".leaderless")
    relay = make_relay(session_factory, cast(SharedProducer, leaderless), settings)
    result = await relay.run_once()
    assert (result.published, result.failed, result.outage) == (1, 1, False)
    found = await rows(session_factory)
    assert found[fine].status == OutboxStatus.PUBLISHED
    assert (found[stuck].status, found[stuck].attempts) == (OutboxStatus.PENDING, 0)
    assert "LeaderNotAvailable" in (found[stuck].last_error or "")


async def test_the_relay_publishes_again_after_the_broker_lost_a_numbered_batch(
    session_factory: SessionFactory,
    producer: SharedProducer,
    settings: Settings,
    topic: str,
    kafka_bootstrap: str,
) -> None:
    # Found by tests/reliability/test_outbox_outage.py with a 5 s outage: right after the broker
    # restart aiokafka failed a batch it had already given a sequence number (the partition's
    # leader still unknown when the batch was older than request_timeout_ms), so the broker
    # never saw that number and answered every later batch of the partition with
    # OutOfOrderSequenceNumber. aiokafka's sender keeps running through that error, so the
    # shared producer was never replaced and the relay retried the "outage" for ever.
    (first,) = await add_events(session_factory, topic)
    relay = make_relay(session_factory, producer, settings)
    assert (await relay.run_once()).published == 1
    broken = await producer.get()
    for partition in await broken.partitions_for(topic):
        # The gap the lost batch leaves: the producer's next number is one past the broker's.
        broken._txn_manager.increment_sequence_number(TopicPartition(topic, partition), 1)
    (second,) = await add_events(session_factory, topic)  # same aggregate and key: same partition

    refused = await relay.run_once()
    assert (refused.failed, refused.outage) == (1, True)  # the producer's fault, not the message's
    assert "OutOfOrderSequenceNumber" in refused.errors[second]
    await expire_leases(session_factory)
    result = await relay.run_once()
    assert (result.published, result.failed) == (1, 0), result.errors
    assert await producer.get() is not broken
    row = (await rows(session_factory))[second]
    assert (row.status, row.attempts) == (OutboxStatus.PUBLISHED, 0)
    messages = await consume(kafka_bootstrap, topic, 2)
    assert [dict(m.headers)["event_id"].decode() for m in messages] == [str(first), str(second)]


async def test_the_relay_publishes_again_after_a_short_broker_restart_lost_a_numbered_batch(
    make_settings: Callable[..., Settings],
    session_factory: SessionFactory,
    kafka_server: Any,
    kafka_bootstrap: str,
    topic: str,
) -> None:
    # The previous test's gap, made by a real stop and start: batches queued while the broker
    # is away outlive request_timeout_ms, and right after the start aiokafka fails those whose
    # partition has no leader yet (LeaderNotAvailable), numbers and all.
    if getattr(kafka_server, "external", False):
        pytest.skip(f"cannot stop the external {kafka_server.name} server at {kafka_server.url}")
    settings = make_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        producer_request_timeout_ms=1_000,  # shorter than the outage, as 5 s was against 5 s
        outbox_lease_seconds=4.0,  # a pass waits at most 2 s for acknowledgements
    )
    producer = SharedProducer(settings)
    relay = make_relay(session_factory, producer, settings)
    (first,) = await add_events(session_factory, topic)
    assert (await relay.run_once()).published == 1
    key = f"{topic}-0".encode()  # the outbox rows' key: the same partition
    outcomes: Counter[str] = Counter()

    def note(future: asyncio.Future[Any]) -> None:
        exc = None if future.cancelled() else future.exception()
        outcomes["acknowledged" if exc is None else type(exc).__name__] += 1

    async def other_sends() -> None:
        # The process's other traffic to the partition (more outbox rows, notifications).
        while True:
            with contextlib.suppress(Exception):
                (await (await producer.get()).send(topic, value=b"{}", key=key)).add_done_callback(
                    note
                )
            await asyncio.sleep(0.01)  # a steady stream, not a synchronisation

    traffic = asyncio.create_task(other_sends())
    try:
        await wait_for(lambda: outcomes["acknowledged"] >= 20, what="the stream under way")
        await asyncio.to_thread(kafka_server.stop)
        try:
            await asyncio.sleep(2.0)  # the outage itself: the scenario, not a synchronisation
        finally:
            await asyncio.to_thread(kafka_server.start)
        (second,) = await add_events(session_factory, topic)

        async def second_published() -> bool:
            await expire_leases(session_factory)  # what waiting out the outage backoff would do
            return (await relay.run_once()).published == 1

        await wait_for(second_published, within=30, what=lambda: f"a publish, {outcomes}")
    finally:
        await cancel_and_wait([traffic])
        await producer.stop()
    assert outcomes["LeaderNotAvailableError"] > 0, f"no numbered batch was lost: {outcomes}"
    row = (await rows(session_factory))[second]
    assert (row.status, row.attempts) == (OutboxStatus.PUBLISHED, 0)
    published = [
        dict(m.headers)["event_id"].decode()
        for m in await consume(kafka_bootstrap, topic, outcomes["acknowledged"] + 2, linger=1.0)
        if dict(m.headers).get("event_id")
    ]
    assert published == [str(first), str(second)]


async def _seed_overdue_batches(session_factory: SessionFactory, count: int) -> list[uuid.UUID]:
    async with session_factory() as session:
        school_class = SchoolClass(
            name="7C", created_by_user_id="teacher-a", course_id=course_id(CourseCode.ENG7)
        )
        session.add(school_class)
        await session.flush()
        batches = [uuid.uuid4() for _ in range(count)]
        session.add_all(
            EssayStudentAssociation(
                essay_id=uuid.uuid4(),
                batch_id=batch_id,
                class_id=school_class.id,
                status=AssociationStatus.NO_MATCH.value,
                # Overdue on the database's clock, which the timeout uses.
                created_at=func.now() - timedelta(hours=25),
            )
            for batch_id in batches
            for _ in range(2)
        )
        await session.commit()
    return batches


async def test_two_relays_and_two_monitors_publish_each_event_exactly_once(
    session_factory: SessionFactory,
    settings: Settings,
    kafka_bootstrap: str,
) -> None:
    batches = await _seed_overdue_batches(session_factory, 40)
    tuned = settings.model_copy(
        update={
            "outbox_batch_size": 5,
            "timeout_monitor_interval_seconds": 0.05,
            "timeout_monitor_batch_size": 3,
        }
    )
    producers = [SharedProducer(tuned) for _ in range(2)]
    workers: list[OutboxRelay | TimeoutMonitor] = [
        *(
            make_relay(
                session_factory,
                producer,
                tuned,
            )
            for producer in producers
        ),
        *(timeout_monitor(session_factory, tuned) for _ in range(2)),
    ]
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        messages = await consume(
            kafka_bootstrap,
            topics.STUDENT_ASSOCIATIONS_CONFIRMED,
            len(batches),
            keys={str(batch_id) for batch_id in batches},
            linger=2.0,
            within=60,
        )
        # The teacher's notifications (one aggregate, so one after the other) follow.
        await wait_until_published(session_factory)
    finally:
        await cancel_and_wait(tasks)
        for producer in producers:
            await producer.stop()

    per_event = Counter(json.loads(m.value)["event_id"] for m in messages)
    assert set(per_event.values()) == {1}, "an event was published twice"
    async with session_factory() as session:
        confirmations = (await session.execute(select(BatchConfirmation))).scalars().all()
    assert sorted(c.batch_id for c in confirmations) == sorted(batches)
    assert set(per_event) == {str(c.event_id) for c in confirmations}, "an event was lost"
    assert {m.key.decode() for m in messages} == {str(b) for b in batches}
    assert all(r.status == OutboxStatus.PUBLISHED for r in (await rows(session_factory)).values())


async def test_one_aggregates_backlog_drains_without_waiting_for_the_poll_interval(
    session_factory: SessionFactory,
    settings: Settings,
    producer: SharedProducer,
    topic: str,
    kafka_bootstrap: str,
) -> None:
    """A pass takes only each aggregate's first pending row; the relay must go on at once with
    the successors, not after a poll interval per event (an hour here, no NOTIFY)."""
    async with session_factory() as session:
        for n in range(20):
            add_outbox_event(
                session,
                topic=topic,
                aggregate_type="test",
                aggregate_id="one-teacher",
                data={"n": n},
                correlation_id=uuid.uuid4(),
            )
        await session.commit()
    relay = make_relay(
        session_factory,
        producer,
        settings.model_copy(update={"outbox_poll_interval_seconds": 3600.0}),
    )
    task = asyncio.create_task(relay.run())
    try:
        await wait_until_published(session_factory)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    messages = await consume(kafka_bootstrap, topic, 20)
    assert [json.loads(m.value)["data"]["n"] for m in messages] == list(range(20))
