"""The recipe for a new consumed event type, followed in a test: a second consumer of a made-up
event type runs beside the real author-match consumer in one process, and both store events.

The whole recipe is what this file adds for the new type: a payload model, a decoder, a store
function and one ``consumer_worker`` registration, no consumer plumbing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import BaseModel
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.bootstrap import build_container, build_workers, consumer_worker
from class_management_service.messaging.decoder import DecodedEvent, EventDecoder
from class_management_service.messaging.envelope import new_envelope
from class_management_service.messaging.ledger import ProcessedEvent
from class_management_service.messaging.ledger_handler import LedgerHandler
from class_management_service.settings import Settings
from class_management_service.workers.supervisor import Supervisor
from tests.factories import (
    count_associations,
    encode,
    envelope,
    essay,
    seed_roster,
)
from tests.kafka.topics import consumer_settings

# -- the recipe: payload model, decoder, store --------------------------------------------------


class CourseNoteAddedV1(BaseModel):
    course_code: str
    note: str


decode_course_note = EventDecoder(CourseNoteAddedV1, {"course.note.added.v1"})


async def store_course_notes(
    session: AsyncSession, events: Sequence[DecodedEvent[CourseNoteAddedV1]]
) -> None:
    await session.execute(
        text("INSERT INTO course_notes (event_id, course_code, note) VALUES (:id, :code, :note)"),
        [{"id": e.event_id, "code": e.payload.course_code, "note": e.payload.note} for e in events],
    )


# -----------------------------------------------------------------------------------------------


async def until(check: Callable[[], Any], what: str, polls: int = 400) -> None:
    for _ in range(polls):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def create_topics(bootstrap: str, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        await admin.close()


async def count(session_factory: async_sessionmaker[AsyncSession], query: Any) -> int:
    async with session_factory() as session:
        return int(await session.scalar(query) or 0)


async def test_a_second_consumer_runs_beside_the_author_match_consumer(
    make_settings: Callable[..., Settings],
    session_factory: async_sessionmaker[AsyncSession],
    redis_url: str,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    settings = consumer_settings(
        make_settings,
        unique_name,
        redis_url=redis_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        run_consumer=True,
    )
    notes = settings.consumer(
        "course_note_consumer",
        health_check="course_note_consumer",
        topic=unique_name("course-notes"),
        dead_letter_topic=unique_name("course-notes-dlq"),
    )
    await create_topics(
        kafka_bootstrap,
        [
            settings.author_matches_topic,
            settings.dead_letter_topic,
            notes.topic,
            notes.dead_letter_topic,
        ],
    )
    async with session_factory() as session:
        await session.execute(
            text(
                "CREATE TABLE course_notes (event_id uuid PRIMARY KEY, course_code text, note text)"
            )
        )
        await session.commit()
    roster = await seed_roster(session_factory)

    container = build_container(settings)
    handler = LedgerHandler(decode_course_note, container.session_factory, store_course_notes)
    supervisor = Supervisor([*build_workers(container), consumer_worker(container, notes, handler)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    supervisor.start()
    try:
        author_match = envelope(
            roster.class_id, [essay(uuid.uuid4(), [(roster.student_ids[0], 0.9)])]
        )
        await producer.send_and_wait(settings.author_matches_topic, encode(author_match))
        note = new_envelope(
            event_type="course.note.added.v1",
            data={"course_code": "ENG5", "note": "bring a dictionary"},
            correlation_id=uuid.uuid4(),
            partition_key="ENG5",
        )
        for _ in range(2):  # a redelivered copy is stored once
            await producer.send_and_wait(notes.topic, note.model_dump_json().encode())
        await producer.send_and_wait(notes.topic, b"not json")

        async def both_stored() -> bool:
            return (
                await count_associations(session_factory) == 1
                and await count(session_factory, text("SELECT count(*) FROM course_notes")) == 1
            )

        await until(both_stored, "both consumers stored their event")

        async def all_committed() -> bool:
            committed = [
                (await container.health_checks[name]()).details["committed_offsets"]
                for name in ("kafka_consumer", "course_note_consumer")
            ]
            return committed == [{"0": 1}, {"0": 3}]

        await until(all_committed, "both consumers committed their topics")

        ledger_rows = await count(
            session_factory, select(func.count()).where(ProcessedEvent.topic == notes.topic)
        )
        assert ledger_rows == 1
        registry = container.metrics.registry
        processed = "kafka_consumer_messages_processed_total"
        assert (
            registry.get_sample_value(
                processed, {"topic": settings.author_matches_topic, "outcome": "applied"}
            )
            == 1
        )
        assert (
            registry.get_sample_value(processed, {"topic": notes.topic, "outcome": "applied"}) == 1
        )
        assert (
            registry.get_sample_value(processed, {"topic": notes.topic, "outcome": "duplicate"})
            == 1
        )
        assert (
            registry.get_sample_value(
                "kafka_consumer_messages_dead_lettered_total",
                {"topic": notes.topic, "reason": "invalid_json"},
            )
            == 1
        )
        for name in ("kafka_consumer", "course_note_consumer"):
            assert (await container.health_checks[name]()).ok
    finally:
        await supervisor.stop()
        await producer.stop()
        await container.close()
