"""The shared producer against a real broker: records over 1 MiB go out compressed, and a record
the topic would refuse is refused before it is sent, so the partition keeps working."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError

from class_management_service.messaging.producer import SharedProducer
from class_management_service.settings import Settings


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[SharedProducer]:
    shared = SharedProducer(
        Settings(kafka_bootstrap_servers=kafka_bootstrap, producer_request_timeout_ms=10_000)
    )
    yield shared
    await shared.stop()


async def create_topic(bootstrap: str, name: str, **configs: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def read_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # A compressed batch is fetched whole; its records are what the consumer returns.
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        for _ in range(100):  # bounded: 100 polls of at most 200 ms
            for records in (await consumer.getmany(timeout_ms=200)).values():
                values += [record.value for record in records]
            if len(values) >= expected:
                break
    finally:
        await consumer.stop()
    return values


async def test_a_json_record_over_one_mib_is_published_compressed(
    producer: SharedProducer, kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("sizes.json")
    await create_topic(kafka_bootstrap, topic)  # the broker's default limit: 1,048,588 bytes
    value = json.dumps(
        [{"essay_id": str(uuid.uuid4()), "status": "confirmed"} for _ in range(20_000)]
    ).encode()
    assert len(value) > 1024 * 1024

    kafka = await producer.get()
    await (await kafka.send(topic, value=value, key=b"batch"))

    assert await read_all(kafka_bootstrap, topic, 1) == [value]


async def test_a_record_the_topic_would_refuse_is_refused_before_sending(
    producer: SharedProducer, kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    """The broker refusing a batch breaks an idempotent producer's sequence for the partition
    (every later send fails with OutOfOrderSequenceNumber): the record must never get there."""
    topic = unique_name("sizes.small-topic")
    await create_topic(kafka_bootstrap, topic, **{"max.message.bytes": "200000"})
    kafka = await producer.get()

    with pytest.raises(MessageSizeTooLargeError, match="200000"):
        await (await kafka.send(topic, value=os.urandom(300_000)))  # incompressible
    # Compressible data of the same size fits once compressed.
    await (await kafka.send(topic, value=b"a" * 300_000))
    await (await kafka.send(topic, value=b"after"))

    assert await read_all(kafka_bootstrap, topic, 2) == [b"a" * 300_000, b"after"]
