"""The topic replayed into a restored database while Redis still holds "completed" marks.

The service stores a stream (Redis marks every event completed), the database is restored to
before the stream (its tables emptied, as a restore of an earlier backup leaves them), the
consumer group is reset to offset 0 and the service restarted with Redis untouched. Redis may
spare work, but only the database can say an event's effects are there: every essay must be
stored again, exactly once.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport
from tests.reliability.harness import (
    StreamProducer,
    connection,
    reset_group_offsets,
    seeded_stream,
    verify,
    wait_committed_to_end,
    wait_for_rows,
)

# What restoring a backup taken before the stream leaves of the stream's effects: nothing.
RESTORE = (
    "TRUNCATE essay_student_associations, association_history, processed_events, "
    "batch_confirmations, outbox_events"
)


async def test_a_topic_replayed_into_a_restored_database_is_stored_again_despite_redis_marks(
    fleet: Fleet,
    fault_database: str,
    redis_url: str,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    stream = await seeded_stream(fault_database, events=120)
    total = len(stream.expected)
    topic, group = fleet.setting("author_matches_topic"), fleet.setting("consumer_group_id")
    await fleet.create_topics(3)
    service = await fleet.start()
    async with StreamProducer(kafka_bootstrap) as producer:
        await producer.stream(topic, stream.messages, chunk=40, pause=0.0)
    await wait_for_rows(fault_database, total, within=90, services=fleet.all)
    await wait_committed_to_end(kafka_bootstrap, group, topic, services=fleet.all)
    assert await service.terminate() == 0, service.log_tail()

    async with connection(fault_database) as conn:
        await conn.execute(RESTORE)
    redis = Redis.from_url(redis_url)
    try:
        marks = [
            await redis.get(f"class_management_service:processed_event:{event_id}")
            for event_id in stream.event_ids
        ]
    finally:
        await redis.aclose()
    assert marks == [b"completed"] * len(stream.event_ids), "Redis must still hold every mark"
    await reset_group_offsets(kafka_bootstrap, group, topic, 0)

    restarted_at = time.monotonic()
    await fleet.restart()
    stored_at = await wait_for_rows(fault_database, total, within=90, services=fleet.all)
    await wait_committed_to_end(
        kafka_bootstrap, group, topic, what="the replay consumed", services=fleet.all
    )

    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()
    reliability_report.record_fault(
        FaultRow.of_stream(
            "replay into a restored database, Redis marks kept",
            stream,
            verdict,
            events_sent=2 * len(stream.messages),
            recovery=f"{stored_at - restarted_at:.1f} s",
            notes=(
                f"all {len(stream.event_ids)} events marked completed in Redis, the database "
                f"restored to before the stream, the group reset to 0: every essay stored again "
                f"(lost {len(verdict.missing)}); recovery = restart to all rows stored"
            ),
        )
    )
