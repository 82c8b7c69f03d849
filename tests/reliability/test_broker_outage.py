"""The Kafka broker goes away for ~5 s in the middle of a stream, in two ways:

- stopped, then started again (same port and data: ``kafka_server.stop()``/``start()``): the
  service's consumer and producer get refused connections and must reconnect by themselves;
- frozen (SIGSTOP, then SIGCONT): connections stay open and nothing answers, not even a refusal,
  so the clients only see requests time out (and the consumer's group session may have expired on
  the broker's clock when it thaws: a rebalance).

Either way /healthz must show the outage (503) and the recovery (200), and nothing may be lost or
stored twice.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import pytest

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

OUTAGE_SECONDS = 5.0


@pytest.mark.parametrize("how", ["stopped", "frozen"])
async def test_broker_away_mid_stream_loses_nothing_and_health_shows_outage_and_recovery(
    how: Literal["stopped", "frozen"],
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
            if how == "stopped":
                await asyncio.to_thread(kafka_server.stop)
            else:
                freeze(kafka_server)
            rows_at_stop = await association_count(fault_database)
            assert rows_at_stop is not None
            assert 0 < rows_at_stop < total
            # The outage itself lasts OUTAGE_SECONDS: the scenario, not a synchronisation.
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
            started_at = time.monotonic()  # the broker is launched again, or thawed
            if how == "stopped":
                await asyncio.to_thread(kafka_server.start)
            else:
                thaw(kafka_server)
            ready_at = time.monotonic()
            resume.set()

            await wait_until(
                lambda: health.answered_since(200, started_at),
                within=60,
                what=f"/healthz 200 after the broker was {how}",
                services=fleet.all,
            )
            await sending
            drained_at = await wait_for_rows(fault_database, total, within=90, services=fleet.all)
    finally:
        resume.set()
        if how == "frozen":  # harmless if it was thawed already
            thaw(kafka_server)
        if not kafka_server.is_running():
            await asyncio.to_thread(kafka_server.start)

    healthy_at = health.showed_outage(stopped_at, started_at)

    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()
    await wait_committed_to_end(kafka_bootstrap, group, topic, services=fleet.all)

    came_back = "launch" if how == "stopped" else "thaw (SIGCONT)"
    reliability_report.record_fault(
        FaultRow.of_stream(
            f"broker {how} 5 s",
            stream,
            verdict,
            recovery=f"{healthy_at - started_at:.1f} s",
            notes=(
                f"broker {how} at {rows_at_stop:,} rows, away {started_at - stopped_at:.1f} s "
                f"(+{ready_at - started_at:.1f} s to come back); /healthz {health.summary()}; "
                f"recovery = broker {came_back} to /healthz 200; "
                f"drained {drained_at - started_at:.1f} s after it"
            ),
        )
    )
