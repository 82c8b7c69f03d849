"""The archive's ClassUpdatedV1 and the erasure's StudentUpdatedV1 as a platform consumer reads
them from Kafka (relayed from the outbox): keyed by the aggregate, with the request's correlation
id, in order, and — after an erasure — no personal data in anything the relay sends."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.classes.schemas import ClassArchiveChangedV1
from class_management_service.messaging import topics
from class_management_service.settings import Settings
from class_management_service.students.schemas import StudentErasedV1
from tests.http_helpers import create_class, create_student
from tests.kafka.topics import read_topic, relay_outbox


async def test_archive_and_erasure_events_reach_kafka(
    api_client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
) -> None:
    settings = make_settings(kafka_bootstrap_servers=kafka_bootstrap)
    correlation = str(uuid.uuid4())
    headers = {"X-User-ID": "teacher-a", "X-Correlation-ID": correlation}
    nine_a = await create_class(api_client)
    student = await create_student(
        api_client, first="Yolanda", last="Vexmoor", email="yv@x.se", class_ids=[nine_a["id"]]
    )
    erased = await api_client.post(f"/v1/classes/students/{student['id']}/erase", headers=headers)
    archived = await api_client.post(f"/v1/classes/{nine_a['id']}/archive", headers=headers)
    unarchived = await api_client.post(f"/v1/classes/{nine_a['id']}/unarchive", headers=headers)
    assert erased.status_code == archived.status_code == unarchived.status_code == 200

    await relay_outbox(session_factory, settings)

    class_events = await read_topic(kafka_bootstrap, topics.CLASS_UPDATED, key=nine_a["id"])
    states = [ClassArchiveChangedV1.model_validate(m.envelope["data"]) for m in class_events]
    assert [(s.archived, s.archived_at is not None) for s in states] == [
        (True, True),
        (False, False),
    ]
    assert {m.envelope["correlation_id"] for m in class_events} == {correlation}
    (erasure,) = await read_topic(kafka_bootstrap, topics.STUDENT_UPDATED, key=student["id"])
    event = StudentErasedV1.model_validate(erasure.envelope["data"])
    assert (event.first_name, event.last_name, event.student_email) == ("Erased", "student", None)
    assert event.erased_fields == ["first_name", "last_name", "email"]  # no legal name held
    assert erasure.headers["correlation_id"] == correlation
    # The creation was still pending at the erasure: it goes out pseudonymous.
    (creation,) = await read_topic(kafka_bootstrap, topics.STUDENT_CREATED, key=student["id"])
    assert creation.envelope["data"]["first_name"] == "Erased"
    for message in (*class_events, erasure, creation):
        assert "Vexmoor" not in str(message.envelope)
        assert "yv@x.se" not in str(message.envelope)
