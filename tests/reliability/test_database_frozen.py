"""PostgreSQL freezes for ~5 s in the middle of a stream (every server process stopped with
SIGSTOP: connections stay open, nothing answers, not even a refusal), then thaws (SIGCONT).

Unlike a stop, a freeze gives the service no error to react to: its statements and its health
probe just get no answer. /healthz must show it (503: the probe's bound) and the recovery (200);
nothing may be lost or stored twice, and the consumer must go on by itself once the server answers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport, require_local
from tests.reliability.harness import (
    FaultMidStream,
    HealthWatch,
    StreamProducer,
    association_count,
    freeze,
    seeded_stream,
    thaw,
    verify,
    wait_committed_to_end,
    wait_for_rows,
    wait_until,
)

FREEZE_SECONDS = 5.0


async def test_database_frozen_mid_stream_loses_nothing_and_health_shows_it(
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
    service = await fleet.start()

    # The freeze starts once the stream is under way; the stream goes on meanwhile.
    fault_while_busy = FaultMidStream(stream, lambda: asyncio.sleep(0))
    try:
        async with HealthWatch(service) as health, StreamProducer(kafka_bootstrap) as producer:
            await wait_until(
                lambda: health.answering(200), within=30, what="/healthz 200", services=fleet.all
            )
            sending = asyncio.create_task(
                producer.stream(topic, stream.messages, pause=0.1, after_chunk=fault_while_busy)
            )
            await fault_while_busy.wait()
            rows_at_freeze = await association_count(fault_database)
            assert rows_at_freeze is not None
            assert rows_at_freeze < total
            frozen_at = time.monotonic()
            freeze(postgres_server)
            # The freeze itself lasts FREEZE_SECONDS: the scenario, not a synchronisation.
            await asyncio.sleep(FREEZE_SECONDS)
            thawed_at = time.monotonic()
            thaw(postgres_server)

            await wait_until(
                lambda: health.answered_since(200, thawed_at),
                within=60,
                what="/healthz 200 after the thaw",
                services=fleet.all,
            )
            await sending
            drained_at = await wait_for_rows(fault_database, total, within=90, services=fleet.all)
    finally:
        thaw(postgres_server)

    healthy_at = health.showed_outage(frozen_at, thawed_at)

    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()
    await wait_committed_to_end(kafka_bootstrap, group, topic, services=fleet.all)

    reliability_report.record_fault(
        FaultRow.of_stream(
            "PostgreSQL frozen 5 s",
            stream,
            verdict,
            recovery=f"{healthy_at - thawed_at:.1f} s",
            notes=(
                f"every server process SIGSTOPped at {rows_at_freeze:,} rows for "
                f"{thawed_at - frozen_at:.1f} s, then SIGCONT; /healthz {health.summary()}; "
                "recovery = thaw to /healthz 200; "
                f"drained {drained_at - thawed_at:.1f} s after the thaw"
            ),
        )
    )
