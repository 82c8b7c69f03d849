"""The broker is down while teachers confirm batches: the outbox holds the events until it is back.

Confirming is a database transaction (decisions + ``batch_confirmations`` + the outbox row), so
the HTTP API keeps working without Kafka. After the broker returns, every
StudentAssociationsConfirmedV1 must arrive exactly once per event id (read back from the
platform topic, filtered on this test's batch ids: other tests publish there too).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport, require_local
from tests.reliability.harness import (
    CONFIRMED_TOPIC,
    StreamProducer,
    confirm_batch,
    confirmed_messages,
    connection,
    fetchval,
    per_batch,
    seeded_stream,
    verify,
    wait_for_rows,
    wait_until,
)

OUTAGE_SECONDS = 5.0
BEFORE, DURING = 2, 24  # batches confirmed with the broker up, and while it is down


async def test_events_confirmed_while_the_broker_is_down_arrive_once_after_it_returns(
    fleet: Fleet,
    fault_database: str,
    kafka_server: Any,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    require_local(kafka_server)
    stream = await seeded_stream(fault_database)
    total = len(stream.expected)
    topic = fleet.setting("author_matches_topic")
    await fleet.create_topics(3)
    service = await fleet.start()
    async with StreamProducer(kafka_bootstrap) as producer:
        await producer.stream(topic, stream.messages, chunk=50, pause=0.0)
    await wait_for_rows(fault_database, total, within=90, services=fleet.all)

    batches = sorted(stream.batch_ids)[: BEFORE + DURING]
    confirm_seconds: list[float] = []
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10.0) as client:
        for batch_id in batches[:BEFORE]:
            await confirm_batch(client, stream, batch_id)
        try:
            stopped_at = time.monotonic()
            await asyncio.to_thread(kafka_server.stop)
            for batch_id in batches[BEFORE:]:
                started = time.monotonic()
                await confirm_batch(client, stream, batch_id)
                confirm_seconds.append(time.monotonic() - started)
            pending = await fetchval(
                fault_database, "SELECT count(*) FROM outbox_events WHERE status = 'pending'"
            )
            # The outage itself lasts OUTAGE_SECONDS: the scenario, not a synchronisation.
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        finally:
            await asyncio.to_thread(kafka_server.start)
        back_at = time.monotonic()
    assert pending >= DURING, "the events confirmed during the outage waited in the outbox"

    async def all_published() -> bool:
        # Each confirmation wrote its event and the teacher's notification.
        published = await fetchval(
            fault_database,
            "SELECT count(*) FROM outbox_events WHERE status = 'published' AND topic = $1",
            CONFIRMED_TOPIC,
        )
        unpublished = await fetchval(
            fault_database, "SELECT count(*) FROM outbox_events WHERE status <> 'published'"
        )
        return int(published) == len(batches) and unpublished == 0

    published_at = await wait_until(
        all_published, within=90, what="every outbox event published", services=fleet.all
    )

    messages = await confirmed_messages(kafka_bootstrap, set(batches))
    counts = per_batch(messages)
    assert set(counts) == set(batches), f"missing: {set(batches) - set(counts)}"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates == 0, {str(b): n for b, n in counts.items() if n > 1}
    async with connection(fault_database) as conn:
        recorded = {
            r["batch_id"]: r["event_id"]
            for r in await conn.fetch("SELECT batch_id, event_id FROM batch_confirmations")
        }
        attempts = await conn.fetchval("SELECT max(attempts) FROM outbox_events")
        failed = await conn.fetchval("SELECT count(*) FROM outbox_events WHERE status = 'failed'")
    assert {m.batch_id: m.event_id for m in messages} == recorded
    assert not any(m.timeout_triggered for m in messages)
    assert (attempts, failed) == (0, 0), "an outage must not use up delivery attempts"

    verdict = await verify(fault_database, stream)
    assert (verdict.rows_found, verdict.duplicates, len(verdict.missing)) == (total, 0, 0)

    reliability_report.record_fault(
        FaultRow(
            fault="outbox: broker down while confirming",
            events_sent=len(stream.messages),
            rows_expected=total,
            rows_found=verdict.rows_found,
            duplicates=duplicates,
            dead_lettered=0,
            recovery=f"{published_at - back_at:.1f} s",
            notes=(
                f"{DURING} batches confirmed over HTTP with the broker down "
                f"(slowest confirm {max(confirm_seconds) * 1000:.0f} ms), {BEFORE} before; "
                f"{len(messages)} StudentAssociationsConfirmedV1 received, one per event id; "
                "0 attempts used up; recovery = broker start to every outbox row published"
            ),
        )
    )
