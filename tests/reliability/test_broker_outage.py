"""The Kafka broker process stops for ~5 s in the middle of a stream, then starts again.

Same port and data after the restart (``kafka_server.stop()``/``start()``). The service's consumer
and producer must reconnect by themselves; /healthz must show the outage (503) and the recovery
(200); nothing may be lost.
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
    seeded_stream,
    verify,
    wait_committed_to_end,
    wait_for_rows,
    wait_until,
)

OUTAGE_SECONDS = 5.0


async def test_broker_stopped_mid_stream_loses_nothing_and_health_shows_outage_and_recovery(
    fleet: Fleet,
    fault_database: str,
    kafka_server: Any,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    require_local(kafka_server)
    stream = await seeded_stream(fault_database)
    total = len(stream.expected)
    topic, group = fleet.setting("author_matches_topic"), fleet.setting("consumer_group_id")
    await fleet.create_topics(3)
    service = await fleet.start()

    at_fault, resume = asyncio.Event(), asyncio.Event()

    async def hold_back() -> None:
        # Hold the test's own producer back while the broker is away (it is not under test).
        at_fault.set()
        await resume.wait()

    pause_for_outage = FaultMidStream(stream, hold_back)

    try:
        async with HealthWatch(service) as health, StreamProducer(kafka_bootstrap) as producer:
            await wait_until(
                lambda: health.answering(200), within=30, what="/healthz 200", services=fleet.all
            )
            sending = asyncio.create_task(
                producer.stream(topic, stream.messages, pause=0.1, after_chunk=pause_for_outage)
            )
            await asyncio.wait_for(at_fault.wait(), 60)
            stopped_at = time.monotonic()
            await asyncio.to_thread(kafka_server.stop)
            rows_at_stop = await association_count(fault_database)
            assert rows_at_stop is not None
            assert 0 < rows_at_stop < total
            # The outage itself lasts OUTAGE_SECONDS: the scenario, not a synchronisation.
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
            started_at = time.monotonic()  # the broker process is launched again
            await asyncio.to_thread(kafka_server.start)
            ready_at = time.monotonic()
            resume.set()

            await wait_until(
                lambda: health.answered_since(200, started_at),
                within=60,
                what="/healthz 200 after the broker restart",
                services=fleet.all,
            )
            await sending
            drained_at = await wait_for_rows(fault_database, total, within=90, services=fleet.all)
    finally:
        resume.set()
        if not kafka_server.is_running():
            await asyncio.to_thread(kafka_server.start)

    healthy_at = health.showed_outage(stopped_at, started_at)

    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()
    await wait_committed_to_end(kafka_bootstrap, group, topic, services=fleet.all)

    reliability_report.record_fault(
        FaultRow.of_stream(
            "broker stopped 5 s",
            stream,
            verdict,
            recovery=f"{healthy_at - started_at:.1f} s",
            notes=(
                f"broker stopped at {rows_at_stop:,} rows, down {started_at - stopped_at:.1f} s "
                f"(+{ready_at - started_at:.1f} s to start); /healthz {health.summary()}; "
                "recovery = broker launch to /healthz 200; "
                f"drained {drained_at - started_at:.1f} s after the broker start"
            ),
        )
    )
