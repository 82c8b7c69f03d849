"""``kill -9`` of the service in the middle of a stream of 10,000 essays, then a restart.

A SIGKILL gives the process no chance to commit offsets or finish a transaction: whatever it had
fetched but not committed is redelivered to the restarted process, which must store what was
lost and skip what was already stored.
"""

from __future__ import annotations

import asyncio
import time

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport
from tests.reliability.harness import (
    FaultMidStream,
    StreamProducer,
    association_count,
    metric,
    metrics_text,
    seeded_stream,
    verify,
    wait_committed_to_end,
    wait_for_rows,
)


async def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
    fleet: Fleet,
    fault_database: str,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    stream = await seeded_stream(fault_database)
    total = len(stream.expected)
    assert total >= 10_000
    topic, group = fleet.setting("author_matches_topic"), fleet.setting("consumer_group_id")
    await fleet.create_topics(3)
    service = await fleet.start()

    # ~20 ms after a chunk is acknowledged the service is fetching/applying it: kill then.
    kill_while_busy = FaultMidStream(stream, service.kill)

    async with StreamProducer(kafka_bootstrap) as producer:
        sending = asyncio.create_task(
            producer.stream(topic, stream.messages, pause=0.1, after_chunk=kill_while_busy)
        )
        await kill_while_busy.wait()
        rows_at_kill = await association_count(fault_database)
        assert rows_at_kill is not None
        assert 0 < rows_at_kill < total, "the kill must hit the middle of the stream"

        restarted_at = time.monotonic()
        service = await fleet.restart()
        resumed_at = await wait_for_rows(
            fault_database, rows_at_kill + 1, within=60, services=fleet.all
        )
        await sending
    drained_at = await wait_for_rows(fault_database, total, within=90, services=fleet.all)

    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()

    # The group caught up: its committed offsets are the end of every partition.
    await wait_committed_to_end(kafka_bootstrap, group, topic, services=fleet.all)
    text = await metrics_text(service)
    redelivered = int(metric(text, "kafka_consumer_messages_processed_total", outcome="duplicate"))
    assert metric(text, "kafka_consumer_messages_dead_lettered_total") == 0

    reliability_report.record_fault(
        FaultRow.of_stream(
            "kill -9 mid-stream",
            stream,
            verdict,
            recovery=f"{resumed_at - restarted_at:.1f} s",
            notes=(
                f"killed at {rows_at_kill:,} rows with {kill_while_busy.sent} of "
                f"{len(stream.messages)} events sent; recovery = restart to first new row "
                f"(process start + group rejoin); redelivered events skipped: {redelivered}; "
                f"drained {drained_at - restarted_at:.1f} s after restart"
            ),
        )
    )
