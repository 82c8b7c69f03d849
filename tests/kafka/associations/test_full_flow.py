"""End to end in one app with its real workers: BatchAuthorMatchesSuggestedV1 in over Kafka, the
teacher's review over HTTP, exactly one StudentAssociationsConfirmedV1 out over Kafka."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.courses.domain import CourseCode
from class_management_service.messaging import topics
from class_management_service.messaging.envelope import kafka_headers, new_envelope
from class_management_service.settings import Settings
from tests.factories import seed_roster
from tests.kafka.associations.conftest import StartApp
from tests.waiting import wait_for

TEACHER = "teacher-flow"


@pytest.fixture
async def running_app(start_app: StartApp) -> AsyncIterator[FastAPI]:
    """The whole service in-process, the timeout monitor wired in too (idle: nothing here is
    24 h old)."""
    async with start_app(run_timeout_monitor=True) as app:
        yield app


def suggestion(student_id: uuid.UUID, confidence: float) -> dict[str, Any]:
    return {
        "student_id": str(student_id),
        "student_name": "Pupil Flow",
        "student_email": None,
        "confidence_score": confidence,
        "match_reasons": ["name_in_header"],
        "extraction_metadata": {},
    }


async def publish_author_matches(
    bootstrap: str, topic: str, payload: dict[str, Any], batch_id: uuid.UUID
) -> None:
    envelope = new_envelope(
        event_type=topics.BATCH_AUTHOR_MATCHES_SUGGESTED,
        data=payload,
        correlation_id=uuid.uuid4(),
        partition_key=str(batch_id),
    ).model_copy(update={"source_service": "nlp_service"})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            envelope.model_dump_json().encode(),
            key=str(batch_id).encode(),
            headers=[(k, v.encode()) for k, v in kafka_headers(envelope).items()],
        )
    finally:
        await producer.stop()


async def confirmed_events_for(
    bootstrap: str, batch_id: uuid.UUID, *, linger: float, within: float
) -> list[Any]:
    """Messages on the real confirmed topic keyed by this batch (other tests share the topic)."""
    consumer = AIOKafkaConsumer(
        topics.STUDENT_ASSOCIATIONS_CONFIRMED,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found += [r for r in records if r.key == str(batch_id).encode()]
            if found:
                deadline = min(deadline, time.monotonic() + linger)
    finally:
        await consumer.stop()
    return found


async def test_event_in_review_decisions_event_out(
    running_app: FastAPI,
    session_factory: async_sessionmaker[AsyncSession],
    kafka_bootstrap: str,
    teacher_headers: Callable[[str], dict[str, str]],
) -> None:
    settings: Settings = running_app.state.container.settings
    roster = await seed_roster(session_factory, students=6, teacher=TEACHER, course=CourseCode.ENG6)
    class_id, students = roster.class_id, roster.student_ids
    batch_id = uuid.uuid4()
    essays = [uuid.uuid4() for _ in range(5)]
    outsider = uuid.uuid4()  # not in the class: its suggestion is ignored -> no_match
    match_results: list[dict[str, Any]] = [
        {
            "essay_id": str(essay),
            "text_storage_id": f"storage-{i}",
            "filename": f"essay{i}.docx",
            "suggestions": [suggestion(students[i], 0.9 - i * 0.1)] if i < 4 else [],
            "no_match_reason": None if i < 4 else "no name found",
            "extraction_metadata": {},
        }
        for i, essay in enumerate(essays)
    ]
    match_results[4]["suggestions"] = [suggestion(outsider, 0.99)]
    await publish_author_matches(
        kafka_bootstrap,
        settings.author_matches_topic,
        {
            "event_name": "batch.author.matches.suggested",
            "entity_id": str(batch_id),
            "entity_type": "batch",
            "parent_id": None,
            "timestamp": datetime.now(UTC).isoformat(),
            "batch_id": str(batch_id),
            "class_id": str(class_id),
            "course_code": "ENG6",
            "match_results": match_results,
            "processing_summary": {"total_essays": 5, "matched": 4, "no_match": 1, "errors": 0},
            "processing_metadata": {},
        },
        batch_id,
    )

    transport = httpx.ASGITransport(app=running_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        url = f"/v1/batches/{batch_id}/student-associations"
        headers = teacher_headers(TEACHER)
        review: dict[str, Any] = {}

        async def ingested() -> bool:
            nonlocal review
            response = await client.get(url, headers=headers)
            assert response.status_code == 200, response.text
            review = response.json()
            return bool(review["associations"])

        await wait_for(ingested, every=0.2, what="the author-match event to be stored")
        stored = {a["essay_id"]: a for a in review["associations"]}
        assert len(stored) == 5
        assert stored[str(essays[0])]["student_id"] == str(students[0])
        assert stored[str(essays[0])]["status"] == "pending_validation"
        assert stored[str(essays[4])]["status"] == "no_match"

        e0, e1, e2, e3, e4 = essays
        decisions = [
            {"essay_id": str(e0), "student_id": str(students[0]), "confirmed": True},
            {"essay_id": str(e1), "student_id": str(students[1]), "confirmed": True},
            {"essay_id": str(e2), "student_id": str(students[2]), "confirmed": False},
            # Reassign: the suggestion for e3 was wrong, the author is students[5].
            {"essay_id": str(e3), "student_id": str(students[5]), "confirmed": True},
            # The essay NLP could not match: the teacher names its author.
            {"essay_id": str(e4), "student_id": str(students[4]), "confirmed": True},
        ]
        confirm = await client.post(
            f"{url}/confirm", json={"associations": decisions}, headers=headers
        )
        assert confirm.status_code == 200, confirm.text
        assert confirm.json()["finalized"] is True

        metrics = (await client.get("/metrics")).text
        assert "outbox_pending_events" in metrics
        assert "outbox_oldest_pending_age_seconds" in metrics
        assert "association_timeout_confirmed_total" in metrics

    messages = await confirmed_events_for(kafka_bootstrap, batch_id, linger=2.0, within=30)
    assert len(messages) == 1, f"expected exactly one confirmation, got {len(messages)}"
    (message,) = messages
    envelope = json.loads(message.value)
    assert dict(message.headers)["event_id"] == envelope["event_id"].encode()
    assert envelope["event_type"] == topics.STUDENT_ASSOCIATIONS_CONFIRMED
    data = envelope["data"]
    assert data["event_name"] == "student.associations.confirmed"
    assert data["batch_id"] == str(batch_id)
    assert data["class_id"] == str(class_id)
    assert data["course_code"] == "ENG6"
    assert data["timeout_triggered"] is False
    assert data["validation_summary"] == {"total_associations": 5, "confirmed": 4, "rejected": 1}
    sent = {a["essay_id"]: a for a in data["associations"]}
    expected_students = {
        e0: students[0],
        e1: students[1],
        e2: None,
        e3: students[5],
        e4: students[4],
    }
    for essay, student in expected_students.items():
        item = sent[str(essay)]
        assert item["student_id"] == (str(student) if student else None)
        assert item["validation_method"] == "human"
        assert item["validated_by"] == TEACHER
        assert item["validated_at"]
    assert sent[str(e0)]["confidence_score"] == pytest.approx(0.9)
    assert sent[str(e4)]["confidence_score"] == 0.0
