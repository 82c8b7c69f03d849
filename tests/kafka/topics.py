"""Helpers for tests that follow an event out to Kafka the way the platform's services see it:
relay this test's outbox, then read a topic (shared by the whole session) by message key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging.producer import SharedProducer
from class_management_service.outbox.metrics import OutboxMetrics
from class_management_service.outbox.relay import OutboxRelay
from class_management_service.outbox.sending import ProducerSource
from class_management_service.settings import Settings
from tests.waiting import wait_for

# A browser-style W3C trace context, as the API gateway or another service would send it.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


@dataclass(frozen=True)
class Published:
    """One Kafka message: its key, headers and the envelope it carries."""

    key: str
    headers: dict[str, str]
    envelope: dict[str, Any]


def consumer_settings(
    make_settings: Callable[..., Settings], unique_name: Callable[[str], str], **overrides: Any
) -> Settings:
    """Settings whose author-match consumer reads this test's own topic, dead-letters to its own
    topic and joins its own group, fetching every 100 ms."""
    return make_settings(
        author_matches_topic=unique_name("author-matches"),
        dead_letter_topic=unique_name("author-matches-dlq"),
        consumer_group_id=unique_name("cms"),
        consumer_fetch_timeout_ms=100,
        **overrides,
    )


def make_relay(
    session_factory: async_sessionmaker[AsyncSession],
    producer: ProducerSource,
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
) -> OutboxRelay:
    """A relay with its own metrics (in ``registry``, else a throwaway one)."""
    return OutboxRelay(
        session_factory=session_factory,
        producer=producer,
        settings=settings,
        metrics=OutboxMetrics(registry or CollectorRegistry()),
    )


async def relay_outbox(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Publish every pending outbox row of this test's database (acknowledged by Kafka)."""
    producer = SharedProducer(settings)
    relay = make_relay(session_factory, producer, settings)
    try:
        for _ in range(100):
            result = await relay.run_once()
            assert result.failed == 0
            if result.claimed == 0:
                return
        raise AssertionError("the outbox did not drain")
    finally:
        await producer.stop()


Record = Any  # aiokafka.ConsumerRecord[bytes, bytes]


async def read_records(
    bootstrap: str, topic: str, keep: Callable[[Record], bool], *, within_seconds: float = 30.0
) -> list[Record]:
    """The records of ``topic`` that ``keep``, reading up to the end offsets taken at the start
    (so after :func:`relay_outbox` nothing this test published can be missing or arrive later)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        # Without a group every partition is assigned, once the client's metadata has the topic
        # (one just created may not be there yet).
        await wait_for(lambda: bool(consumer.assignment()), what=f"the partitions of {topic}")
        assigned = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        await consumer.seek_to_beginning(*assigned)
        end = await consumer.end_offsets(assigned)
        found: list[Record] = []
        deadline = time.monotonic() + within_seconds
        while [tp for tp in assigned if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in (await consumer.getmany(*assigned, timeout_ms=500)).values():
                found.extend(record for record in records if keep(record))
        return found
    finally:
        await consumer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, key: str, within_seconds: float = 30.0
) -> list[Published]:
    """Every message of ``topic`` with ``key`` (as :func:`read_records` reads them)."""
    records = await read_records(
        bootstrap,
        topic,
        lambda record: record.key is not None and record.key.decode() == key,
        within_seconds=within_seconds,
    )
    return [
        Published(
            key=record.key.decode(),
            headers={name: value.decode() for name, value in record.headers},
            envelope=json.loads(record.value),
        )
        for record in records
    ]


async def consume(
    bootstrap: str,
    topic: str,
    expected: int,
    *,
    keys: Collection[str] | None = None,
    linger: float = 0.0,
    within: float = 30.0,
) -> list[Any]:
    """Read the topic from the start until ``expected`` messages (then ``linger`` for extras);
    on a topic other tests publish to as well, only the messages with one of ``keys``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    messages: list[Any] = []
    try:
        deadline = time.monotonic() + within
        extra_until: float | None = None
        while time.monotonic() < deadline:
            if len(messages) >= expected and extra_until is None:
                extra_until = time.monotonic() + linger
            if extra_until is not None and time.monotonic() >= extra_until:
                break
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                messages.extend(
                    record for record in records if keys is None or record.key.decode() in keys
                )
    finally:
        await consumer.stop()
    return messages
