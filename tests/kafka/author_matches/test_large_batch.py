"""A 5,000-essay batch end to end: stored, confirmed by the teacher, and its
StudentAssociationsConfirmedV1 (over 1 MiB of JSON) published by the outbox relay."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import httpx
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.messaging import topics
from class_management_service.messaging.producer import SharedProducer
from class_management_service.settings import Settings
from tests.factories import TEACHER, essay, event, ingest, seed_roster
from tests.kafka.topics import make_relay

ESSAYS = 5_000


async def test_the_confirmation_of_a_5000_essay_batch_is_published(
    session_factory: async_sessionmaker[AsyncSession],
    api_client: httpx.AsyncClient,
    teacher_headers: Callable[[str], dict[str, str]],
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
) -> None:
    roster = await seed_roster(session_factory, students=30)
    batch = uuid.uuid4()
    essays = [uuid.uuid4() for _ in range(ESSAYS)]
    authors = {e: roster.student_ids[i % 30] for i, e in enumerate(essays)}
    incoming = event(
        roster.class_id, [essay(e, [(authors[e], 0.9)]) for e in essays], batch_id=batch
    )
    result = await ingest(AuthorMatchIngestion(session_factory), [incoming])
    assert result.inserted == ESSAYS

    for start in range(0, ESSAYS, 2_000):  # a confirm request takes at most 2,000 decisions
        confirmed = await api_client.post(
            f"/v1/batches/{batch}/student-associations/confirm",
            json={
                "associations": [
                    {"essay_id": str(e), "student_id": str(authors[e]), "confirmed": True}
                    for e in essays[start : start + 2_000]
                ]
            },
            headers=teacher_headers(TEACHER),
        )
        assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["finalized"] is True

    settings = make_settings(kafka_bootstrap_servers=kafka_bootstrap)
    producer = SharedProducer(settings)
    try:
        relay = make_relay(session_factory, producer, settings)
        outcome = await relay.run_once()
    finally:
        await producer.stop()
    # The confirmation and the teacher's notification (which lists the 5,000 associations too).
    assert (outcome.published, outcome.failed) == (2, 0), outcome.errors

    consumer = AIOKafkaConsumer(
        topics.STUDENT_ASSOCIATIONS_CONFIRMED,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        # Other tests publish confirmations too: this batch's is the one keyed by its id.
        message = await asyncio.wait_for(consumer.getone(), 30)
        while message.key != str(batch).encode():
            message = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert len(message.value) > 1024 * 1024  # over aiokafka's default max_request_size
    assert message.key == str(batch).encode()
    data = json.loads(message.value)["data"]
    assert data["batch_id"] == str(batch)
    assert len(data["associations"]) == ESSAYS
    assert {a["essay_id"]: a["student_id"] for a in data["associations"]} == {
        str(e): str(s) for e, s in authors.items()
    }
