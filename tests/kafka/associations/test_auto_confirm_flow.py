"""The auto-confirm policy switched on through the service's settings: an all-certain batch in
over Kafka, its StudentAssociationsConfirmedV1 out over Kafka with no teacher action."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging import topics
from class_management_service.settings import Settings
from tests.factories import encode, envelope, essay, seed_roster
from tests.kafka.associations.conftest import StartApp
from tests.kafka.topics import consume

TEACHER = "teacher-auto"


@pytest.fixture
async def running_app(start_app: StartApp) -> AsyncIterator[FastAPI]:
    async with start_app(auto_confirm_min_confidence=0.9, auto_confirm_min_margin=0.2) as app:
        yield app


async def test_an_all_certain_batch_is_published_with_no_teacher_action(
    running_app: FastAPI,
    session_factory: async_sessionmaker[AsyncSession],
    kafka_bootstrap: str,
    teacher_headers: Callable[[str], dict[str, str]],
) -> None:
    settings: Settings = running_app.state.container.settings
    roster = await seed_roster(session_factory, students=2, teacher=TEACHER)
    s0, s1 = roster.student_ids
    batch_id, e0, e1 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    incoming = envelope(
        roster.class_id,
        [essay(e0, [(s0, 0.97), (s1, 0.3)]), essay(e1, [(s1, 0.93)])],
        batch_id=batch_id,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.author_matches_topic, encode(incoming), key=str(batch_id).encode()
        )
    finally:
        await producer.stop()

    (message,) = await consume(
        kafka_bootstrap,
        topics.STUDENT_ASSOCIATIONS_CONFIRMED,
        1,
        keys={str(batch_id)},
        linger=1.0,
    )
    published = json.loads(message.value)
    assert published["correlation_id"] == incoming["correlation_id"]
    data = published["data"]
    assert data["timeout_triggered"] is False
    assert {
        (a["essay_id"], a["student_id"], a["confidence_score"], a["validation_method"])
        for a in data["associations"]
    } == {(str(e0), str(s0), 0.97, "auto"), (str(e1), str(s1), 0.93, "auto")}

    transport = httpx.ASGITransport(app=running_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        listed = await client.get(
            f"/v1/batches/{batch_id}/student-associations", headers=teacher_headers(TEACHER)
        )
    assert (listed.json()["finalized"], listed.json()["auto_decided"]) == (True, 2)
