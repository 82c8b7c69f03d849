"""PostgreSQL stops for ~5 s in the middle of a stream, then starts again (same port and data).

The consumer must not commit an offset past work that is not in the database: while the database
is down, every offset the group commits must cover only events whose rows were committed before
the outage. Checked against the broker's view of the group (the admin client's committed
offsets, polled throughout the outage) and the database's ``processed_events.processed_at``
compared with the restarted server's ``pg_postmaster_start_time()``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport, require_local
from tests.reliability.harness import (
    FaultMidStream,
    StreamProducer,
    association_count,
    committed_offsets,
    connection,
    seeded_stream,
    verify,
    wait_committed_to_end,
    wait_for_rows,
)

OUTAGE_SECONDS = 5.0


async def test_database_stopped_mid_stream_commits_no_offset_past_uncommitted_work(
    fleet: Fleet,
    fault_database: str,
    postgres_server: Any,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    require_local(postgres_server)
    stream = await seeded_stream(fault_database)
    total = len(stream.expected)
    topic, group = fleet.setting("author_matches_topic"), fleet.setting("consumer_group_id")
    await fleet.create_topics(3)
    await fleet.start()

    # The database is stopped by the test itself once the hook fired.
    fault_while_busy = FaultMidStream(stream, lambda: asyncio.sleep(0))

    # The highest offset per partition the group committed while the database was down.
    during_outage: dict[int, int] = {}
    try:
        async with StreamProducer(kafka_bootstrap) as producer:
            # The stream goes on during the outage: a backlog builds up in Kafka.
            sending = asyncio.create_task(
                producer.stream(topic, stream.messages, pause=0.1, after_chunk=fault_while_busy)
            )
            await fault_while_busy.wait()
            before = await committed_offsets(kafka_bootstrap, group, topic)
            stopped_at = time.monotonic()
            await asyncio.to_thread(postgres_server.stop)
            while time.monotonic() - stopped_at < OUTAGE_SECONDS:
                for partition, offset in (
                    await committed_offsets(kafka_bootstrap, group, topic)
                ).items():
                    during_outage[partition] = max(during_outage.get(partition, -1), offset)
                await asyncio.sleep(0.3)  # sampling the offsets for the outage's duration
            started_at = time.monotonic()  # the server process is launched again
            await asyncio.to_thread(postgres_server.start)
            rows_at_restart = await association_count(fault_database)
            assert rows_at_restart is not None
            assert rows_at_restart < total
            resumed_at = await wait_for_rows(
                fault_database, rows_at_restart + 1, within=60, services=fleet.all
            )
            await sending
    finally:
        if not postgres_server.is_running():
            await asyncio.to_thread(postgres_server.start)
    drained_at = await wait_for_rows(fault_database, total, within=90, services=fleet.all)
    # Once a batch goes through again the backlog drains at full speed (it used to wait out one
    # more stale backoff period: up to 10 s).
    assert drained_at - resumed_at < 5.0, f"drained {drained_at - resumed_at:.1f} s after resuming"

    # Every record below an offset committed during the outage had its effects committed in
    # the database *before* the outage (processed before this server process started).
    async with connection(fault_database) as conn:
        server_started = await conn.fetchval("SELECT pg_postmaster_start_time()")
        processed = {
            r["event_id"]: r["processed_at"]
            for r in await conn.fetch("SELECT event_id, processed_at FROM processed_events")
        }
    covered = [
        m
        for m in stream.good
        if m.partition in during_outage
        and m.offset is not None
        and m.offset < during_outage[m.partition]
    ]
    past_uncommitted: list[uuid.UUID] = [
        m.event_id
        for m in covered
        if m.event_id is not None
        and (m.event_id not in processed or processed[m.event_id] >= server_started)
    ]
    assert not past_uncommitted, (
        f"{len(past_uncommitted)} events below offsets committed during the outage were not "
        f"in the database before it: {past_uncommitted[:5]}"
    )
    advanced = sum(during_outage.get(p, 0) - before.get(p, 0) for p in during_outage)

    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()
    await wait_committed_to_end(kafka_bootstrap, group, topic, services=fleet.all)

    reliability_report.record_fault(
        FaultRow.of_stream(
            "PostgreSQL stopped 5 s",
            stream,
            verdict,
            recovery=f"{resumed_at - started_at:.1f} s",
            notes=(
                f"database down {started_at - stopped_at:.1f} s; {len(covered)} events below "
                f"offsets committed during the outage (+{advanced} after the stop), all stored "
                f"before it; recovery = database launch to first new row (the consumer's retry "
                f"backoff, at most 10 s); "
                f"drained {drained_at - started_at:.1f} s after the start"
            ),
        )
    )
