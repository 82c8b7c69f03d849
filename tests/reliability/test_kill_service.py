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
    StreamProducer,
    association_count,
    build_stream,
    committed_offsets,
    end_offsets,
    metric,
    metrics_text,
    seed_rosters,
    verify,
    wait_for_rows,
    wait_until,
)


async def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
    fleet: Fleet,
    fault_database: str,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    rosters = await seed_rosters(fault_database)
    stream = build_stream(rosters)
    total = len(stream.expected)
    assert total >= 10_000
    topic, group = fleet.setting("author_matches_topic"), fleet.setting("consumer_group_id")
    await fleet.create_topics(3)
    service = await fleet.start()

    killed = asyncio.Event()
    sent_at_kill = 0

    async def kill_while_busy(sent: int) -> None:
        # ~20 ms after a chunk is acknowledged the service is fetching/applying it: kill then.
        nonlocal sent_at_kill
        if sent >= len(stream.messages) // 4 and not killed.is_set():
            await asyncio.sleep(0.02)  # the scenario: the fault hits while a chunk is handled
            await service.kill()
            sent_at_kill = sent
            killed.set()

    async with StreamProducer(kafka_bootstrap) as producer:
        sending = asyncio.create_task(
            producer.stream(topic, stream.messages, pause=0.1, after_chunk=kill_while_busy)
        )
        await asyncio.wait_for(killed.wait(), 60)
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
    ends = await end_offsets(kafka_bootstrap, topic)

    committed: dict[int, int] = {}

    async def caught_up() -> bool:
        committed.update(await committed_offsets(kafka_bootstrap, group, topic))
        return committed == ends

    await wait_until(
        caught_up,
        within=30,
        what=lambda: f"offsets committed to the end {ends} (committed: {committed})",
        services=fleet.all,
    )
    text = await metrics_text(service)
    redelivered = int(metric(text, "kafka_consumer_messages_processed_total", outcome="duplicate"))
    assert metric(text, "kafka_consumer_messages_dead_lettered_total") == 0

    reliability_report.record_fault(
        FaultRow(
            fault="kill -9 mid-stream",
            events_sent=len(stream.messages),
            rows_expected=total,
            rows_found=verdict.rows_found,
            duplicates=verdict.duplicates,
            dead_lettered=0,
            recovery=f"{resumed_at - restarted_at:.1f} s",
            notes=(
                f"killed at {rows_at_kill:,} rows with {sent_at_kill} of "
                f"{len(stream.messages)} events sent; recovery = restart to first new row "
                f"(process start + group rejoin); redelivered events skipped: {redelivered}; "
                f"drained {drained_at - restarted_at:.1f} s after restart"
            ),
        )
    )
