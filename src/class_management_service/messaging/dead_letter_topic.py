"""Reading dead-letter topics: every record from the start (or from ``since``), or one record.

Read without a consumer group, so nothing is committed and no other reader is disturbed;
``since`` starts each partition at that time (``offsets_for_times``). Dead-letter topics are
small: each record is a failure somebody must look at. Records are aiokafka ``ConsumerRecord``s.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from class_management_service.settings import Settings

# One read of a topic ends when it reached the end offsets taken at its start, or after this.
_READ_SECONDS = 30.0


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=settings.producer_request_timeout_ms,
        # A dead letter may be as large as anything the source topic accepted.
        max_partition_fetch_bytes=settings.producer_max_request_size_bytes,
        fetch_max_bytes=settings.producer_max_request_size_bytes,
    )


async def _partitions(settings: Settings, topic: str) -> list[int]:
    """The topic's partitions (none if it does not exist). All topics are described: asking
    for this one by name would create it where the broker auto-creates topics."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=settings.producer_request_timeout_ms,
    )
    try:
        await admin.start()
        described = await admin.describe_topics()
    finally:
        await admin.close()
    return [
        partition["partition"]
        for entry in described
        if entry["topic"] == topic
        for partition in entry["partitions"]
    ]


async def read_dead_letter_topic(
    settings: Settings, topic: str, since: datetime | None
) -> list[Any]:
    """Every record of ``topic`` up to the end offsets taken at the start (from ``since``)."""
    partitions = [TopicPartition(topic, p) for p in await _partitions(settings, topic)]
    if not partitions:
        return []
    consumer = _consumer(settings)
    records: list[Any] = []
    try:
        await consumer.start()
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        if since is not None:
            at = await consumer.offsets_for_times(
                # Negative timestamps mean "latest"/"earliest" to Kafka: clamp to the epoch.
                {tp: max(int(since.timestamp() * 1000), 0) for tp in partitions}
            )
            starts = {tp: ends[tp] if at[tp] is None else at[tp].offset for tp in partitions}
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in partitions if starts[tp] < ends[tp]}
        async with asyncio.timeout(_READ_SECONDS):
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=500)
                for tp, batch in batches.items():
                    records += [r for r in batch if r.offset < ends[tp]]
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return records


async def read_record(settings: Settings, topic: str, partition: int, offset: int) -> Any:
    """The record at ``offset``, or None when the topic holds none there."""
    if partition not in await _partitions(settings, topic):
        return None
    tp = TopicPartition(topic, partition)
    consumer = _consumer(settings)
    try:
        await consumer.start()
        consumer.assign([tp])
        start = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if not start <= offset < end:
            return None
        consumer.seek(tp, offset)
        async with asyncio.timeout(_READ_SECONDS):
            while True:
                batches = await consumer.getmany(tp, timeout_ms=500)
                for record in batches.get(tp, []):
                    if record.offset == offset:
                        return record
                    if record.offset > offset:  # compacted away
                        return None
    finally:
        await consumer.stop()
