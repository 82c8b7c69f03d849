"""Poison records near and above 1 MB in the middle of a stream, on a one-partition topic.

The broker accepted both; their dead-letter copies (value + original headers + dlq_* headers)
are ~1 MB and just over what the dead-letter topic takes. The first must land in the
dead-letter topic (compressed), the second in the dead_letters table, and neither may block the
partition: every good event behind them is stored.
"""

from __future__ import annotations

import os
import time

from aiokafka import AIOKafkaProducer

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport
from tests.reliability.harness import (
    StreamProducer,
    connection,
    end_offsets,
    header,
    metric,
    metrics_text,
    read_topic,
    seeded_stream,
    verify,
    wait_for_rows,
    wait_until,
)


async def test_poison_near_and_above_1_mb_is_dead_lettered_without_blocking_the_partition(
    fleet: Fleet,
    fault_database: str,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    stream = await seeded_stream(fault_database, events=100)
    total = len(stream.expected)
    topic, dlq = fleet.setting("author_matches_topic"), fleet.setting("dead_letter_topic")
    await fleet.create_topics(1)
    service = await fleet.start()
    near = os.urandom(1_000_000)  # incompressible, not JSON
    over = os.urandom(1_040_480)
    # A batch of 1,048,56x bytes: the broker (1,048,588) takes it; a few more header bytes do not.
    over_headers = [("blob", os.urandom(8_000))]

    started = time.monotonic()
    half = len(stream.messages) // 2
    async with StreamProducer(kafka_bootstrap) as producer:
        await producer.send(topic, stream.messages[:half])
        big = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=2 * 1024**2)
        await big.start()
        try:
            await big.send_and_wait(topic, value=near, key=b"near")
            await big.send_and_wait(topic, value=over, key=b"over", headers=over_headers)
        finally:
            await big.stop()
        await producer.send(topic, stream.messages[half:])
    stored_at = await wait_for_rows(fault_database, total, within=90, services=fleet.all)

    async def dead_lettered() -> bool:
        in_topic = sum((await end_offsets(kafka_bootstrap, dlq)).values())
        async with connection(fault_database) as conn:
            in_table = await conn.fetchval("SELECT count(*) FROM dead_letters")
        return (in_topic, in_table) == (1, 1)

    await wait_until(dead_lettered, within=30, what="1 dead letter each", services=fleet.all)

    [letter] = await read_topic(kafka_bootstrap, dlq)
    assert (letter.key, letter.value) == (b"near", near)
    assert header(letter, "dlq_reason") == "invalid_json"
    async with connection(fault_database) as conn:
        row = await conn.fetchrow("SELECT * FROM dead_letters")
    assert (row["message_key"], row["message_value"]) == (b"over", over)
    assert (row["source_topic"], row["source_offset"]) == (topic, half + 1)
    assert row["reason"] == "invalid_json"
    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()
    text = await metrics_text(service)
    assert metric(text, "kafka_consumer_messages_dead_lettered_total") == 2
    assert metric(text, "kafka_consumer_batch_failures_total") == 0, "poison is not a failure"

    reliability_report.record_fault(
        FaultRow.of_stream(
            "poison of ~1 MB",
            stream,
            verdict,
            events_sent=len(stream.messages) + 2,
            dead_lettered=2,
            recovery="none needed",
            notes=(
                "two incompressible non-JSON records on the one partition: 1,000,000 bytes "
                "(dead-letter topic, gzip) and 1,048,56x bytes with headers (its dead-letter copy "
                "exceeds the topic's max.message.bytes: dead_letters table); 0 batches retried, "
                f"lost {len(verdict.missing)}; stream stored in {stored_at - started:.1f} s"
            ),
        )
    )
