"""Redis is away for the whole run: the idempotency fast path is gone, the database decides.

Away in two ways: stopped (connections refused) and frozen (SIGSTOP: connections accepted by the
kernel, commands never answered, so only the service's own timeouts end them). The stream
carries re-sent events (same event id, as an at-least-once producer re-sends them); without
Redis every one of them must still be recognised as a duplicate by the database.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import httpx
import pytest

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport, require_local
from tests.reliability.harness import (
    HealthWatch,
    StreamProducer,
    freeze,
    metric,
    metrics_text,
    seeded_stream,
    thaw,
    verify,
    wait_for_rows,
    wait_until,
)


@pytest.mark.parametrize("how", ["stopped", "frozen"])
async def test_redis_away_for_the_whole_run_processing_continues_without_duplicates(
    how: Literal["stopped", "frozen"],
    fleet: Fleet,
    fault_database: str,
    redis_server: Any,
    redis_url: str,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    require_local(redis_server)
    stream = await seeded_stream(fault_database, resend_every=10)
    resent = len(stream.messages) - len(stream.event_ids)
    assert resent >= 40
    total = len(stream.expected)
    topic = fleet.setting("author_matches_topic")
    await fleet.create_topics(3)

    if how == "stopped":
        await asyncio.to_thread(redis_server.stop)
    else:
        freeze(redis_server)
    try:
        service = await fleet.start()
        async with httpx.AsyncClient(base_url=service.base_url, timeout=5.0) as client:
            health = await client.get("/healthz")
        assert health.status_code == 503, health.text
        assert health.json()["dependencies"]["redis"]["status"] == "down"

        started = time.monotonic()
        async with HealthWatch(service) as during, StreamProducer(kafka_bootstrap) as producer:
            await producer.stream(topic, stream.messages, chunk=40, pause=0.05)
            await wait_for_rows(fault_database, total, within=90, services=fleet.all)
        assert {status for _, status in during.samples} == {503}, during.summary()
        text = await metrics_text(service)

        async def all_counted() -> bool:
            nonlocal text
            text = await metrics_text(service)
            done = metric(text, "kafka_consumer_messages_processed_total")
            return done >= len(stream.messages)

        await wait_until(all_counted, within=30, what="every message processed", services=[service])
        elapsed = time.monotonic() - started
        applied = metric(text, "kafka_consumer_messages_processed_total", outcome="applied")
        duplicates = metric(text, "kafka_consumer_messages_processed_total", outcome="duplicate")
        assert (applied, duplicates) == (len(stream.event_ids), resent), text

        # Redis back: the health check sees it again at once.
        async with HealthWatch(service) as watch:
            if how == "stopped":
                await asyncio.to_thread(redis_server.start)
            else:
                thaw(redis_server)
            redis_back = time.monotonic()
            healthy_at = await wait_until(
                lambda: watch.answering(200),
                within=30,
                what="/healthz 200 after Redis is back",
                services=[service],
            )
    finally:
        if how == "frozen":  # harmless if it was thawed already
            thaw(redis_server)
        if not redis_server.is_running():
            await asyncio.to_thread(redis_server.start)

    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()
    reliability_report.record_fault(
        FaultRow.of_stream(
            f"Redis {how} all run",
            stream,
            verdict,
            recovery=f"{healthy_at - redis_back:.1f} s",
            notes=(
                f"{resent} re-sent events all recognised by the database alone "
                f"(duplicate count {int(duplicates)}); stream done in {elapsed:.1f} s with "
                f"/healthz 503 (redis down) throughout; recovery = Redis "
                f"{'start' if how == 'stopped' else 'thaw (SIGCONT)'} to /healthz 200"
            ),
        )
    )
