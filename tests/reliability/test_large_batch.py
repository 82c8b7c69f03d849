"""One 5,000-essay batch through the real service: in over Kafka, confirmed by the teacher over
HTTP, and its StudentAssociationsConfirmedV1 (over 1 MiB of JSON) out over Kafka.

The broker keeps its default limit (max.message.bytes 1,048,588): the event must fit because the
producer compresses it, not because a limit was raised.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
from aiokafka import AIOKafkaProducer

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport
from tests.reliability.harness import (
    CONFIRMED_TOPIC,
    TEACHER,
    build_stream,
    confirm_body,
    read_topic,
    seed_rosters,
    verify,
    wait_for_rows,
    wait_until,
)

ESSAYS = 5_000
DECISIONS_PER_REQUEST = 2_000  # the confirm route's limit


async def test_the_confirmation_of_a_5000_essay_batch_reaches_kafka(
    fleet: Fleet,
    fault_database: str,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    rosters = await seed_rosters(fault_database, classes=1, students=30)
    stream = build_stream(rosters, events=1, essays_per_event=ESSAYS)
    [message] = stream.messages
    [batch_id] = stream.batch_ids
    topic = fleet.setting("author_matches_topic")
    await fleet.create_topics(1)
    service = await fleet.start()

    # The NLP service has to compress an event this big too (it is ~2.5 MB of JSON).
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, compression_type="gzip", max_request_size=16 * 1024**2
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=message.value, key=message.key)
    finally:
        await producer.stop()
    await wait_for_rows(fault_database, ESSAYS, within=90, services=fleet.all)

    essays = stream.essays_of(batch_id)
    confirmed_at = time.monotonic()
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30.0) as client:
        for start in range(0, ESSAYS, DECISIONS_PER_REQUEST):
            response = await client.post(
                f"/v1/batches/{batch_id}/student-associations/confirm",
                json=confirm_body(essays[start : start + DECISIONS_PER_REQUEST]),
                headers={"X-User-ID": TEACHER},
            )
            assert response.status_code == 200, response.text
    assert response.json()["finalized"] is True

    found: list[bytes] = []

    async def published() -> bool:
        records = await read_topic(kafka_bootstrap, CONFIRMED_TOPIC)
        found[:] = [r.value for r in records if r.key == str(batch_id).encode()]
        return bool(found)

    published_at = await wait_until(
        published, within=60, what="the batch's confirmation on Kafka", services=fleet.all
    )
    [value] = found
    data = json.loads(value)["data"]
    assert len(value) > 1024 * 1024
    assert uuid.UUID(data["batch_id"]) == batch_id
    assert len(data["associations"]) == ESSAYS
    verdict = await verify(fault_database, stream)
    assert (verdict.rows_found, verdict.duplicates, len(verdict.missing)) == (ESSAYS, 0, 0)

    reliability_report.record_fault(
        FaultRow(
            fault="5,000-essay batch confirmed",
            events_sent=1,
            rows_expected=ESSAYS,
            rows_found=verdict.rows_found,
            duplicates=verdict.duplicates,
            dead_lettered=0,
            recovery="none needed",
            notes=(
                f"StudentAssociationsConfirmedV1 of {len(value):,} bytes JSON published once "
                "(gzip; broker limit left at 1,048,588) and consumed from Kafka "
                f"{published_at - confirmed_at:.1f} s after the first confirm request"
            ),
        )
    )
