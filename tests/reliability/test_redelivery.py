"""The whole topic delivered again from offset 0 (an operator resets the consumer group).

Stop the service, reset the group's committed offsets to 0 on every partition, start it again:
it re-reads all 10,000 essays and must change nothing at all: no new row, no row rewritten
(teachers' decisions made in between included), no dead letter, no error.
"""

from __future__ import annotations

import random
import time

import httpx
from redis.asyncio import Redis

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport
from tests.reliability.harness import (
    StreamProducer,
    committed_offsets,
    confirm_batch,
    connection,
    end_offsets,
    metric,
    metrics_text,
    reset_group_offsets,
    seeded_stream,
    verify,
    wait_committed_to_end,
    wait_for_rows,
)

# The whole table as one value: any insert, update or delete changes it.
TABLE_DIGEST = """
    SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.essay_id))
    FROM essay_student_associations AS t
"""


async def test_redelivery_of_the_whole_topic_from_offset_0_changes_nothing(
    fleet: Fleet,
    fault_database: str,
    redis_url: str,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    stream = await seeded_stream(fault_database)
    total = len(stream.expected)
    topic, group = fleet.setting("author_matches_topic"), fleet.setting("consumer_group_id")
    dlq = fleet.setting("dead_letter_topic")
    await fleet.create_topics(3)
    service = await fleet.start()

    async with StreamProducer(kafka_bootstrap) as producer:
        await producer.stream(topic, stream.messages, chunk=50, pause=0.0)
    await wait_for_rows(fault_database, total, within=90, services=fleet.all)
    await wait_committed_to_end(kafka_bootstrap, group, topic, services=fleet.all)

    # Teachers decide some batches before the redelivery: their decisions must survive it.
    decided = random.Random(6).sample(sorted(stream.batch_ids), 5)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10.0) as client:
        for batch_id in decided:
            await confirm_batch(client, stream, batch_id)
    async with connection(fault_database) as conn:
        before = tuple(await conn.fetchrow(TABLE_DIGEST))
        confirmations = await conn.fetchval("SELECT count(*) FROM batch_confirmations")

    assert await service.terminate() == 0, service.log_tail()
    await reset_group_offsets(kafka_bootstrap, group, topic, 0)
    ends = await end_offsets(kafka_bootstrap, topic)
    assert await committed_offsets(kafka_bootstrap, group, topic) == dict.fromkeys(ends, 0)
    # Without the Redis fast path's "completed" marks the database alone must recognise them.
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    log_offset = len(service.log_text())

    restarted_at = time.monotonic()
    service = await fleet.restart()
    caught_up_at = await wait_committed_to_end(
        kafka_bootstrap,
        group,
        topic,
        within=60,
        what="the redelivered topic consumed",
        services=fleet.all,
    )

    async with connection(fault_database) as conn:
        after = tuple(await conn.fetchrow(TABLE_DIGEST))
        assert await conn.fetchval("SELECT count(*) FROM batch_confirmations") == confirmations
    assert after == before, "the redelivery changed essay_student_associations"
    text = await metrics_text(service)
    assert metric(text, "kafka_consumer_messages_processed_total", outcome="applied") == 0
    assert metric(text, "kafka_consumer_messages_processed_total", outcome="duplicate") == len(
        stream.messages
    )
    assert metric(text, "kafka_consumer_messages_dead_lettered_total") == 0
    assert metric(text, "kafka_consumer_batch_failures_total") == 0
    assert sum((await end_offsets(kafka_bootstrap, dlq)).values()) == 0
    new_log = service.log_text()[log_offset:]
    errors = [
        line for line in new_log.splitlines() if '"level": "error"' in line or "Traceback" in line
    ]
    assert not errors, "\n".join(errors[:5])

    verdict = await verify(fault_database, stream)
    # The decided batches carry the teacher's decision now; the rest is as first stored.
    assert (verdict.rows_found, len(verdict.missing), len(verdict.extra)) == (total, 0, 0)
    assert (verdict.duplicates, len(verdict.wrong_batch_or_source)) == (0, 0)
    assert verdict.processed_events == len(stream.event_ids)

    reliability_report.record_fault(
        FaultRow.of_stream(
            "redelivery from offset 0",
            stream,
            verdict,
            events_sent=2 * len(stream.messages),
            recovery=f"{caught_up_at - restarted_at:.1f} s",
            notes=(
                f"group reset to 0 after all {len(stream.messages)} events were stored and "
                f"{len(decided)} batches confirmed by the teacher; all {len(stream.messages)} "
                "re-read as duplicates (Redis flushed: the database decided): 0 rows added or "
                "rewritten (table digest unchanged), 0 errors; recovery = restart to offsets "
                "committed to the end"
            ),
        )
    )
