"""The author-match consumer end to end: real Kafka, real Redis, real PostgreSQL.

Each test has its own topics and consumer group (``unique_name``), its own database, and a
consumer worker wired as the service wires it (``bootstrap.consumer_worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis
from sqlalchemy import func, select

from class_management_service.associations.author_match_handler import (
    AuthorMatchHandler,
    AuthorMatchPlan,
)
from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.events import AuthorMatchEvent
from class_management_service.bootstrap import (
    author_match_handler,
    build_container,
    consumer_worker,
)
from class_management_service.container import Container
from class_management_service.idempotency import COMPLETED, IN_FLIGHT, IdempotencyCache
from class_management_service.messaging import topics
from class_management_service.messaging.batch import BatchOutcome, Inbound, Record
from class_management_service.messaging.consumer import KafkaBatchConsumer
from class_management_service.messaging.dead_letter import REPLAY_COUNT_HEADER, DeadLetter
from class_management_service.messaging.dead_letter_reader import find_letter, table_letter_id
from class_management_service.messaging.dead_letter_replay import replay_letters
from class_management_service.messaging.dead_letter_store import (
    DeadLetterStore,
    StoredDeadLetter,
    decode_headers,
)
from class_management_service.settings import Settings
from tests.factories import (
    associations,
    count_associations,
    encode,
    envelope,
    essay,
    processed_event_ids,
    seed_roster,
)
from tests.kafka.topics import consumer_settings
from tests.waiting import wait_for


@dataclass
class RunningConsumer:
    container: Container
    worker: KafkaBatchConsumer[AuthorMatchEvent, AuthorMatchPlan]
    task: asyncio.Task[None]


class Crash(BaseException):
    """Stands in for the process dying: nothing in the worker catches it."""


class Harness:
    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        self._running: list[RunningConsumer] = []

    async def create_topics(self, partitions: int = 1, dead_letter: bool = True) -> None:
        topics = [NewTopic(self.settings.author_matches_topic, partitions, 1)]
        if dead_letter:
            topics.append(NewTopic(self.settings.dead_letter_topic, 1, 1))
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(topics)
        finally:
            await admin.close()

    async def send(
        self,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        await self.producer.send_and_wait(
            self.settings.author_matches_topic, value=value, key=key, headers=list(headers)
        )

    async def send_event(self, body: dict[str, Any]) -> None:
        await self.send(
            encode(body),
            key=str(body["data"]["batch_id"]).encode(),
            headers=[("event_id", str(body["event_id"]).encode())],
        )

    def start(
        self,
        settings: Settings | None = None,
        wrap: Callable[[AuthorMatchHandler], Any] | None = None,
    ) -> RunningConsumer:
        container = build_container(settings or self.settings)
        handler = author_match_handler(container)
        worker = consumer_worker(
            container,
            container.settings.author_match_consumer,
            handler if wrap is None else wrap(handler),
        )
        running = RunningConsumer(container, worker, asyncio.create_task(worker.run()))
        self._running.append(running)
        return running

    async def stop(self, running: RunningConsumer) -> BaseException | None:
        running.task.cancel()
        outcome: BaseException | None = None
        try:
            await running.task
        except asyncio.CancelledError:
            pass
        except BaseException as exc:
            outcome = exc
        if running in self._running:
            self._running.remove(running)
            await running.container.close()
        return outcome

    async def close(self) -> None:
        for running in list(self._running):
            await self.stop(running)
        await self.producer.stop()

    async def dead_letters(self, expected: int) -> list[Record]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.dead_letter_topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            found: list[Record] = []
            async with asyncio.timeout(10):
                while len(found) < expected:
                    batch = await consumer.getmany(tp, timeout_ms=200)
                    found.extend(batch.get(tp, []))
            # Nothing more than expected arrives.
            found.extend((await consumer.getmany(tp, timeout_ms=300)).get(tp, []))
            return found
        finally:
            await consumer.stop()


@pytest.fixture
async def harness(
    make_settings: Callable[..., Settings],
    redis_url: str,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> AsyncIterator[Harness]:
    settings = consumer_settings(
        make_settings,
        unique_name,
        redis_url=redis_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_session_timeout_ms=6000,
        consumer_heartbeat_interval_ms=500,
    )
    harness = Harness(settings, kafka_bootstrap)
    await harness.create_topics()
    await harness.producer.start()
    try:
        yield harness
    finally:
        await harness.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    await wait_for(check, within=within)


async def offset_committed(running: RunningConsumer, offset: int) -> None:
    async def check() -> bool:
        return committed(running) == offset

    await eventually(check)


def committed(running: RunningConsumer, partition: int = 0) -> int | None:
    tp = TopicPartition(running.worker.topic, partition)
    return running.worker.progress.committed.get(tp)


async def rows_reach(session_factory: Any, count: int) -> None:
    async def check() -> bool:
        return await count_associations(session_factory) >= count

    await eventually(check)


# ---------------------------------------------------------------------------------------------


async def test_platform_events_are_stored_and_progress_is_visible(
    harness: Harness, session_factory: Any
) -> None:
    roster = await seed_roster(session_factory)
    s0, s1, s2 = roster.student_ids
    long_form = envelope(roster.class_id, [essay(uuid.uuid4(), [(s0, 0.4), (s1, 0.9)])])
    short_form = envelope(
        roster.class_id,
        [essay(uuid.uuid4(), [(s2, 0.7)]), essay(uuid.uuid4())],
        event_type=topics.BATCH_AUTHOR_MATCHES_SUGGESTED_SHORT,
    )
    old_producer = envelope(roster.class_id, [essay(uuid.uuid4(), [(s0, 0.6)])])
    del old_producer["data"]["course_code"]
    old_producer["data"]["some_future_field"] = {"ignored": True}

    running = harness.start()
    for body in (long_form, short_form, old_producer):
        await harness.send_event(body)
    await rows_reach(session_factory, 4)

    rows = {r.batch_id: r for r in await associations(session_factory)}
    assert rows[uuid.UUID(long_form["data"]["batch_id"])].student_id == s1
    assert rows[uuid.UUID(old_producer["data"]["batch_id"])].student_id == s0
    short_rows = await associations(
        session_factory, batch_id=uuid.UUID(short_form["data"]["batch_id"])
    )
    assert sorted(r.status for r in short_rows) == [
        AssociationStatus.NO_MATCH,
        AssociationStatus.PENDING_VALIDATION,
    ]

    # Offsets are committed only after the rows; progress and lag are visible.
    await offset_committed(running, 3)
    health = await running.worker.health_check()()
    assert health.ok, health.details
    assert health.details["assigned_partitions"] == [0]
    assert health.details["committed_offsets"] == {"0": 3}
    assert health.details["total_lag"] == 0
    metrics = running.container.metrics.render().decode()
    topic = harness.settings.author_matches_topic
    assert f'kafka_consumer_messages_processed_total{{outcome="applied",topic="{topic}"}} 3.0' in (
        metrics
    )
    assert f'kafka_consumer_committed_offset{{partition="0",topic="{topic}"}} 3.0' in metrics
    assert f'kafka_consumer_lag{{partition="0",topic="{topic}"}} 0.0' in metrics
    assert "kafka_consumer_batch_duration_seconds_count" in metrics

    # Stopping leaves the group cleanly and says so.
    assert await harness.stop(running) is None
    assert not running.worker.progress.running


async def test_redelivery_is_a_no_op_with_and_without_redis(
    harness: Harness, session_factory: Any, redis_url: str
) -> None:
    roster = await seed_roster(session_factory)
    s0, s1, _ = roster.student_ids
    essay_id = uuid.uuid4()
    original = envelope(roster.class_id, [essay(essay_id, [(s0, 0.8)])])
    # A different event about the same essay (NLP re-ran the batch): the first stored one stays.
    rerun = envelope(
        roster.class_id, [essay(essay_id, [(s1, 0.99)])], batch_id=original["data"]["batch_id"]
    )
    marker = envelope(roster.class_id, [essay(uuid.uuid4(), [(s1, 0.5)])])

    running = harness.start()
    await harness.send_event(original)
    await rows_reach(session_factory, 1)
    for body in (original, original, rerun, marker):
        await harness.send_event(body)
    await rows_reach(session_factory, 2)
    await offset_committed(running, 5)

    [row] = await associations(session_factory, essay_ids=[essay_id])
    assert row.student_id == s0
    assert row.source_event_id == uuid.UUID(original["event_id"])
    assert await count_associations(session_factory) == 2
    metrics = running.container.metrics.render().decode()
    topic = harness.settings.author_matches_topic
    assert (
        f'kafka_consumer_messages_processed_total{{outcome="duplicate",topic="{topic}"}} 2.0'
        in (metrics)
    )
    redis = Redis.from_url(redis_url)
    try:
        key = f"class_management_service:processed_event:{original['event_id']}"
        assert await redis.get(key) == COMPLETED  # the fast path knows it
    finally:
        await redis.aclose()
    await harness.stop(running)

    # Redis down (nothing listens there) and a new group re-reading everything from the start:
    # processing goes on from the database alone, and still nothing is written twice.
    no_redis = harness.settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0", "consumer_group_id": f"{uuid.uuid4()}"}
    )
    replay = harness.start(no_redis)
    await offset_committed(replay, 5)
    assert await count_associations(session_factory) == 2
    assert len(await processed_event_ids(session_factory)) == 3
    [row] = await associations(session_factory, essay_ids=[essay_id])
    assert row.student_id == s0


async def test_poison_goes_to_the_dead_letter_topic_and_good_events_behind_it_are_stored(
    harness: Harness, session_factory: Any
) -> None:
    roster = await seed_roster(session_factory)
    student = roster.student_ids[0]
    good_before = envelope(roster.class_id, [essay(uuid.uuid4(), [(student, 0.8)])])
    single_essay = envelope(
        roster.class_id, [essay(uuid.uuid4(), [(student, 0.8)])], batch_id="single-essay-batch"
    )
    unknown_class = envelope(uuid.uuid4(), [essay(uuid.uuid4(), [(student, 0.8)])])
    good_after = envelope(roster.class_id, [essay(uuid.uuid4(), [(student, 0.8)])])

    running = harness.start()
    await harness.send_event(good_before)
    await harness.send(b"this is not json {", key=b"k-1", headers=[("trace", b"abc")])
    await harness.send_event(single_essay)
    await harness.send_event(unknown_class)
    await harness.send_event(good_after)

    await rows_reach(session_factory, 2)
    await offset_committed(running, 5)
    assert {r.source_event_id for r in await associations(session_factory)} == {
        uuid.UUID(good_before["event_id"]),
        uuid.UUID(good_after["event_id"]),
    }

    letters = await harness.dead_letters(expected=3)
    assert len(letters) == 3
    by_offset = {letter.offset: letter for letter in letters}
    headers = [dict(letter.headers) for letter in letters]
    assert [h["dlq_reason"] for h in headers] == [
        b"invalid_json",
        b"malformed_id",
        b"unknown_class",
    ]
    assert [h["dlq_original_offset"] for h in headers] == [b"1", b"2", b"3"]
    assert {h["dlq_original_topic"] for h in headers} == {
        harness.settings.author_matches_topic.encode()
    }
    assert {h["dlq_original_partition"] for h in headers} == {b"0"}
    assert b"batch_id" in headers[1]["dlq_error"]
    # Unchanged: same key, value and original headers.
    first = by_offset[min(by_offset)]
    assert first.key == b"k-1"
    assert first.value == b"this is not json {"
    assert first.headers[0] == ("trace", b"abc")
    assert letters[1].value == encode(single_essay)
    assert letters[1].key == b"single-essay-batch"
    assert headers[2]["event_id"] == unknown_class["event_id"].encode()

    metrics = running.container.metrics.render().decode()
    assert 'kafka_consumer_messages_dead_lettered_total{reason="invalid_json"' in metrics
    health = await running.worker.health_check()()
    assert health.ok, health.details


async def test_restart_after_a_crash_resumes_from_the_committed_offset(
    harness: Harness, session_factory: Any
) -> None:
    roster = await seed_roster(session_factory)
    bodies = [
        envelope(roster.class_id, [essay(uuid.uuid4(), [(s, 0.7)]) for s in roster.student_ids])
        for _ in range(7)
    ]

    # Phase 1: two events processed and committed normally.
    first = harness.start()
    for body in bodies[:2]:
        await harness.send_event(body)
    await offset_committed(first, 2)
    await harness.stop(first)

    # Phase 2: the next batch reaches the database, then the process dies before committing
    # its offsets.
    class CrashAfterDatabaseCommit:
        def __init__(self, inner: AuthorMatchHandler) -> None:
            self.inner = inner

        def decode(self, record: Record) -> AuthorMatchEvent:
            return self.inner.decode(record)

        async def prepare(self, batch: Sequence[Inbound[AuthorMatchEvent]]) -> AuthorMatchPlan:
            return await self.inner.prepare(batch)

        async def apply(self, plan: AuthorMatchPlan) -> BatchOutcome:
            await self.inner.apply(plan)
            raise Crash

    for body in bodies[2:4]:
        await harness.send_event(body)
    crashing = harness.start(wrap=CrashAfterDatabaseCommit)
    with contextlib.suppress(Crash):
        await asyncio.wait_for(asyncio.shield(crashing.task), 10)
    assert isinstance(await harness.stop(crashing), Crash)
    assert await count_associations(session_factory) == 12  # 4 events x 3 essays are stored

    # Phase 3: more events arrive while the service is down; a new consumer resumes.
    for body in bodies[4:]:
        await harness.send_event(body)
    restarted = harness.start()
    await offset_committed(restarted, 7)

    assert await count_associations(session_factory) == 21  # nothing lost, nothing twice
    assert await processed_event_ids(session_factory) == {uuid.UUID(b["event_id"]) for b in bodies}
    metrics = restarted.container.metrics.render().decode()
    topic = harness.settings.author_matches_topic
    # It re-read exactly the two uncommitted events (not the committed ones) and skipped them.
    assert f'kafka_consumer_messages_consumed_total{{topic="{topic}"}} 5.0' in metrics
    assert (
        f'kafka_consumer_messages_processed_total{{outcome="duplicate",topic="{topic}"}} 2.0'
        in (metrics)
    )


async def test_a_rebalance_loses_and_duplicates_nothing(
    harness: Harness, session_factory: Any
) -> None:
    """A second member joins mid-stream: partitions move, offsets are committed on revoke, and
    every event is stored exactly once."""
    partitions = 2
    settings = harness.settings.model_copy(
        update={"author_matches_topic": f"{harness.settings.author_matches_topic}.rebalance"}
    )
    harness.settings = settings
    await harness.create_topics(partitions=partitions, dead_letter=False)
    roster = await seed_roster(session_factory)
    student = roster.student_ids[0]
    bodies = [envelope(roster.class_id, [essay(uuid.uuid4(), [(student, 0.8)])]) for _ in range(40)]

    async def send(chunk: Sequence[dict[str, Any]]) -> None:
        for index, body in enumerate(chunk):
            await harness.producer.send_and_wait(
                settings.author_matches_topic, encode(body), partition=index % partitions
            )

    first = harness.start()
    await send(bodies[:20])
    await rows_reach(session_factory, 10)
    second = harness.start()  # joins the group: the first gives up one partition

    async def second_has_a_partition() -> bool:
        return bool(second.worker.progress.assigned)

    await send(bodies[20:30])
    await eventually(second_has_a_partition, within=15)
    await send(bodies[30:])
    await rows_reach(session_factory, 40)

    async def all_committed() -> bool:
        offsets: dict[int, int] = {}
        for running in (first, second):
            for tp, offset in running.worker.progress.committed.items():
                offsets[tp.partition] = max(offset, offsets.get(tp.partition, 0))
        return sum(offsets.values()) == 40 and len(offsets) == partitions

    await eventually(all_committed, within=15)
    assert await count_associations(session_factory) == 40
    assert await processed_event_ids(session_factory) == {uuid.UUID(b["event_id"]) for b in bodies}
    assignments = [running.worker.progress.assigned for running in (first, second)]
    assert all(len(assigned) == 1 for assigned in assignments), assignments


async def test_transient_failures_are_retried_without_committing_past_them(
    harness: Harness, session_factory: Any
) -> None:
    """The database fails twice while more events arrive behind the failing one (they are
    fetched and prepared meanwhile): nothing is committed past the failure, nothing is lost,
    nothing is applied twice or out of order."""
    roster = await seed_roster(session_factory)
    student = roster.student_ids[0]
    bodies = [envelope(roster.class_id, [essay(uuid.uuid4(), [(student, 0.8)])]) for _ in range(6)]
    offsets_seen_while_failing: list[int | None] = []
    running: RunningConsumer | None = None
    failing = asyncio.Event()

    class DatabaseDownTwice:
        def __init__(self, inner: AuthorMatchHandler) -> None:
            self.inner = inner
            self.calls = 0

        def decode(self, record: Record) -> AuthorMatchEvent:
            return self.inner.decode(record)

        async def prepare(self, batch: Sequence[Inbound[AuthorMatchEvent]]) -> AuthorMatchPlan:
            return await self.inner.prepare(batch)

        async def apply(self, plan: AuthorMatchPlan) -> BatchOutcome:
            self.calls += 1
            if self.calls <= 2:
                assert running is not None
                offsets_seen_while_failing.append(committed(running))
                failing.set()
                await asyncio.sleep(0.3)  # more events arrive and are prepared meanwhile
                raise ConnectionRefusedError("database is down")
            return await self.inner.apply(plan)

    running = harness.start(wrap=DatabaseDownTwice)
    await harness.send_event(bodies[0])
    await asyncio.wait_for(failing.wait(), 10)
    for body in bodies[1:]:
        await harness.send_event(body)
    await offset_committed(running, 6)

    assert offsets_seen_while_failing == [None, None]
    assert await count_associations(session_factory) == 6
    assert await processed_event_ids(session_factory) == {
        uuid.UUID(body["event_id"]) for body in bodies
    }
    assert running.worker.progress.consecutive_failures == 0
    metrics = running.container.metrics.render().decode()
    topic = harness.settings.author_matches_topic
    assert f'kafka_consumer_batch_failures_total{{topic="{topic}"}} 2.0' in metrics
    assert await harness.dead_letters(expected=0) == []


async def test_redis_fast_path_degrades_quickly_and_logs_once(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused connections and a Redis that never answers both cost at most the short timeout,
    are logged once per outage, and make the cache report "nothing known" (database decides)."""
    done, fresh = uuid.uuid4(), uuid.uuid4()
    healthy_client = Redis.from_url(redis_url)
    healthy = IdempotencyCache(healthy_client, in_flight_ttl_seconds=60, completed_ttl_seconds=600)
    assert await healthy.claim({done, fresh}) == set()
    await healthy.mark_completed({done})
    assert await healthy.claim({done, fresh}) == {done}
    assert await healthy_client.get(healthy.key(fresh)) == IN_FLIGHT
    assert 0 < await healthy_client.ttl(healthy.key(fresh)) <= 60
    assert 60 < await healthy_client.ttl(healthy.key(done)) <= 600

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    class CountingRedis(Redis):
        """Counts the commands (round trips) the cache attempts."""

        attempts = 0

        async def execute_command(self, *args: Any, **options: Any) -> Any:
            self.attempts += 1
            # redis-py leaves execute_command untyped.
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    blackhole = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = blackhole.sockets[0].getsockname()[1]
    clients: list[CountingRedis] = [
        CountingRedis(host="127.0.0.1", port=1),
        CountingRedis(host="127.0.0.1", port=port),
    ]
    try:
        for client in clients:
            caplog.clear()
            cache = IdempotencyCache(
                client,
                in_flight_ttl_seconds=60,
                completed_ttl_seconds=600,
                timeout_seconds=0.2,
                retry_after_seconds=60,
            )

            async def use(cache: IdempotencyCache) -> None:
                for _ in range(5):
                    assert await cache.claim({done}) == set()
                    await cache.mark_completed({done})

            await asyncio.wait_for(use(cache), 30)  # a timeout not honoured would hang here
            assert client.attempts == 1  # one timeout at most, then skipped
            assert not cache.available
            warnings = [r for r in caplog.records if "fast path unavailable" in r.getMessage()]
            assert len(warnings) == 1
    finally:
        blackhole.close()
        for opened in [*clients, healthy_client]:
            await opened.aclose()


async def test_a_redis_mark_the_database_does_not_confirm_is_ignored(
    harness: Harness, session_factory: Any, redis_url: str
) -> None:
    """A "completed" mark for an event the database never stored (set by hand here; in life a
    fresh or restored database within the mark's TTL) must not make the consumer skip it."""
    roster = await seed_roster(session_factory)
    body = envelope(roster.class_id, [essay(uuid.uuid4(), [(roster.student_ids[0], 0.8)])])
    redis = Redis.from_url(redis_url)
    try:
        await redis.set(f"class_management_service:processed_event:{body['event_id']}", COMPLETED)
    finally:
        await redis.aclose()

    running = harness.start()
    await harness.send_event(body)
    await offset_committed(running, 1)

    assert await count_associations(session_factory) == 1
    assert await processed_event_ids(session_factory) == {uuid.UUID(body["event_id"])}


async def test_poison_of_any_size_is_dead_lettered_and_the_partition_moves_on(
    harness: Harness, session_factory: Any
) -> None:
    """A ~1 MB poison record goes to the dead-letter topic (compressed); one whose dead-letter
    copy (value + headers + the dlq_* headers) exceeds what the topic takes goes to the
    dead_letters table. The good event behind them is stored; the table row can be replayed."""
    roster = await seed_roster(session_factory)
    fits = os.urandom(1_000_000)  # incompressible, not JSON
    too_big = os.urandom(1_040_480)
    # A batch of 1,048,56x bytes: the broker (1,048,588) takes it; a few more header bytes do not.
    too_big_headers = [("blob", os.urandom(8_000))]
    good = envelope(roster.class_id, [essay(uuid.uuid4(), [(roster.student_ids[0], 0.8)])])
    big_sender = AIOKafkaProducer(
        bootstrap_servers=harness.bootstrap, max_request_size=2 * 1024 * 1024
    )
    await big_sender.start()
    try:
        topic = harness.settings.author_matches_topic
        await big_sender.send_and_wait(topic, value=fits, key=b"fits")
        await big_sender.send_and_wait(topic, value=too_big, key=b"big", headers=too_big_headers)
    finally:
        await big_sender.stop()
    await harness.send_event(good)

    running = harness.start()
    await offset_committed(running, 3)

    assert await processed_event_ids(session_factory) == {uuid.UUID(good["event_id"])}
    [letter] = await harness.dead_letters(expected=1)
    assert (letter.key, letter.value) == (b"fits", fits)
    assert dict(letter.headers)["dlq_reason"] == b"invalid_json"
    async with session_factory() as session:
        [stored] = (await session.scalars(select(StoredDeadLetter))).all()
    assert (stored.source_topic, stored.source_partition, stored.source_offset) == (topic, 0, 1)
    assert (stored.message_key, stored.message_value) == (b"big", too_big)
    assert decode_headers(stored.headers) == too_big_headers
    assert (stored.reason, stored.consumer_group) == (
        "invalid_json",
        harness.settings.consumer_group_id,
    )
    metrics = running.container.metrics.render().decode()
    assert 'kafka_consumer_messages_dead_lettered_total{reason="invalid_json"' in metrics
    assert f'kafka_consumer_batch_failures_total{{topic="{topic}"}}' not in metrics
    await harness.stop(running)

    # A redelivery of the same record stores it once.
    store = DeadLetterStore(session_factory)
    record = ConsumerRecord(topic, 0, 1, 0, 0, b"big", too_big, None, 3, len(too_big), ())
    await store.add([DeadLetter(record, "invalid_json", "again")], group_id="g")
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(StoredDeadLetter)) == 1

    # Replay: the record goes back to its topic unchanged (the consumer is stopped here).
    # Compressed, this incompressible record would no longer fit its topic: it is replayed by
    # an uncompressed producer sized for it (the shared producer refuses it before sending).
    replayer = AIOKafkaProducer(bootstrap_servers=harness.bootstrap, max_request_size=2 * 1024**2)
    await replayer.start()
    letter_id = table_letter_id(stored.id)
    letter = await find_letter(harness.settings, session_factory, letter_id)
    assert letter is not None
    try:
        first = await replay_letters(session_factory, replayer, [letter], only_open=True)
        again = await replay_letters(session_factory, replayer, [letter], only_open=True)
    finally:
        await replayer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=harness.bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 3)
        replayed = await consumer.getone()
    finally:
        await consumer.stop()
    assert (first.replayed, again.replayed, again.skipped) == ([letter_id], [], [letter_id])
    assert (replayed.key, replayed.value, list(replayed.headers)) == (
        b"big",
        too_big,
        [*too_big_headers, (REPLAY_COUNT_HEADER, b"1")],
    )
