"""Every event the service publishes, read back from Kafka, is described by the AsyncAPI
document: the flows that publish each event type run (HTTP use cases, the roster import's bulk
path, the consumer with a poison record, the teacher's confirmation, the validation timeout),
and each record read from the topics validates against its channel's message (payload, headers)
— exactly one message per record — and every message of the document is seen."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jsonschema_rs
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.asyncapi.document import build_document
from class_management_service.bootstrap import (
    author_match_handler,
    build_container,
    consumer_worker,
)
from class_management_service.outbox.models import OutboxEvent
from class_management_service.settings import Settings
from tests.factories import (
    age_rows,
    encode,
    envelope,
    essay,
    event,
    ingest,
    seed_roster,
    timeout_monitor,
)
from tests.factories import associations as stored_associations
from tests.kafka.topics import Record, consumer_settings, read_records, relay_outbox
from tests.waiting import cancel_and_wait, wait_for

SessionFactory = async_sessionmaker[AsyncSession]


class Described:
    """The document's messages, each as validators of its payload and headers."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        components = document["components"]
        self.by_address: dict[str, list[str]] = {
            channel["address"]: list(channel["messages"])
            for channel in document["channels"].values()
        }
        messages = components["messages"]
        self._payloads = {
            name: self._validator(message["payload"], components)
            for name, message in messages.items()
        }
        self._headers = {
            name: self._validator(message["headers"], components)
            for name, message in messages.items()
            if "headers" in message
        }

    @staticmethod
    def _validator(schema: dict[str, Any], components: dict[str, Any]) -> Any:
        return jsonschema_rs.validator_for({**schema, "components": components})

    def message_of(self, record: Record) -> str:
        """The one message of the record's channel that its value and headers validate as."""
        value = json.loads(record.value) if record.topic in self._json_topics() else None
        headers = {name: raw.decode() for name, raw in record.headers}
        matching = []
        for name in self.by_address[record.topic]:
            if value is not None and not self.payload_valid(name, value):
                continue
            if name in self._headers and not self._headers[name].is_valid(headers):
                continue
            matching.append(name)
        assert len(matching) == 1, (record.topic, matching, value, headers)
        assert record.key, record  # every message is keyed
        return matching[0]

    def payload_valid(self, message: str, value: Any) -> bool:
        return bool(self._payloads[message].is_valid(value))

    def _json_topics(self) -> set[str]:
        dead = self.document["channels"]["DeadLetter"]["address"]
        return set(self.by_address) - {dead}


async def _http_flows(api_client: httpx.AsyncClient, teacher: str) -> str:
    """Classes and students created and changed, one by one and by a roster import."""
    headers = {"X-User-ID": teacher}
    created = await api_client.post(
        "/v1/classes/", json={"name": "9A", "course_codes": ["ENG5"]}, headers=headers
    )
    assert created.status_code == 201, created.text
    class_id: str = created.json()["id"]
    renamed = await api_client.put(f"/v1/classes/{class_id}", json={"name": "9B"}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    student = await api_client.post(
        "/v1/classes/students",
        json={
            "person_name": {"first_name": "Anna", "last_name": "Ek"},
            "email": "anna@example.com",
            "class_ids": [class_id],
        },
        headers=headers,
    )
    assert student.status_code == 201, student.text
    updated = await api_client.put(
        f"/v1/classes/students/{student.json()['id']}",
        json={"person_name": {"first_name": "Anna", "last_name": "Berg"}},
        headers=headers,
    )
    assert updated.status_code == 200, updated.text
    imported = await api_client.post(
        f"/v1/classes/{class_id}/students/import",
        content=b"first_name,last_name,email\nAnna,Lund,anna@example.com\nBo,Ny,\n",
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    totals = imported.json()["totals"]
    assert (totals["created"], totals["updated"]) == (1, 1), totals
    return class_id


async def test_every_published_event_is_described_by_the_asyncapi_document(
    api_client: httpx.AsyncClient,
    session_factory: SessionFactory,
    make_settings: Callable[..., Settings],
    unique_name: Callable[[str], str],
    kafka_bootstrap: str,
    redis_url: str,
) -> None:
    settings = consumer_settings(
        make_settings, unique_name, kafka_bootstrap_servers=kafka_bootstrap, redis_url=redis_url
    )
    described = Described(build_document(settings, title="t", version="1"))
    teacher = unique_name("teacher")
    await _http_flows(api_client, teacher)

    # The consumer takes one batch of suggestions and sets a poison record aside.
    roster = await seed_roster(session_factory, students=2, teacher=teacher)
    s1, s2 = roster.student_ids
    batch_id, essays = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
    suggested = envelope(
        roster.class_id, [essay(essays[0], [(s1, 0.9)]), essay(essays[1])], batch_id=batch_id
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for value in (encode(suggested), b"not json"):
            await producer.send_and_wait(
                settings.author_matches_topic, value=value, key=str(batch_id).encode()
            )
    finally:
        await producer.stop()
    container = build_container(settings)
    worker = consumer_worker(
        container, settings.author_match_consumer, author_match_handler(container)
    )
    consuming = asyncio.create_task(worker.run())
    try:
        await wait_for(
            lambda: _has_rows(session_factory, batch_id), what="the suggestions to be stored"
        )
        dead = await _wait_for_records(kafka_bootstrap, settings.dead_letter_topic, 1)
    finally:
        await cancel_and_wait([consuming])
        await container.close()

    # The teacher confirms that batch; the validation timeout decides another one.
    confirm = await api_client.post(
        f"/v1/batches/{batch_id}/student-associations/confirm",
        json={
            "associations": [
                {"essay_id": str(essays[0]), "student_id": str(s1), "confirmed": True},
                {"essay_id": str(essays[1]), "student_id": str(s2), "confirmed": True},
            ]
        },
        headers={"X-User-ID": teacher},
    )
    assert confirm.status_code == 200, confirm.text
    assert confirm.json()["finalized"] is True
    await ingest(
        AuthorMatchIngestion(session_factory),
        [event(roster.class_id, [essay(uuid.uuid4(), [(s2, 0.8)])])],
    )
    await age_rows(session_factory, timedelta(hours=25))
    assert len((await timeout_monitor(session_factory, settings).run_once()).finalized) == 1

    await relay_outbox(session_factory, settings)
    async with session_factory() as session:
        outbox = dict((await session.execute(select(OutboxEvent.id, OutboxEvent.topic))).all())
    ours = {str(event_id) for event_id in outbox}
    published: list[Record] = []
    for topic in sorted(set(outbox.values())):
        published.extend(
            await read_records(
                kafka_bootstrap,
                topic,
                lambda record: dict(record.headers).get("event_id", b"").decode() in ours,
            )
        )
    assert len(published) == len(outbox)

    seen = {described.message_of(record) for record in [*published, *dead]}
    consumed = {"BatchAuthorMatchesSuggestedV1"}
    assert seen | consumed == set(described.document["components"]["messages"])
    # What the NLP service sends (as the factories shape it) is what the document describes.
    assert described.payload_valid("BatchAuthorMatchesSuggestedV1", suggested)


async def _has_rows(session_factory: SessionFactory, batch_id: uuid.UUID) -> bool:
    return bool(await stored_associations(session_factory, batch_id=batch_id))


async def _wait_for_records(bootstrap: str, topic: str, expected: int) -> list[Record]:
    found: list[Record] = []

    async def arrived() -> bool:
        nonlocal found
        found = await read_records(bootstrap, topic, lambda _: True)
        return len(found) >= expected

    await wait_for(arrived, every=0.2, what=f"{expected} records on {topic}")
    return found
