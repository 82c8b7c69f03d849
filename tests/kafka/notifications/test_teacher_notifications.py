"""Teacher notifications as the platform's websocket service consumes them: read from Kafka
(``huleedu.notification.teacher.requested.v1``, key = teacher id) and checked field by field."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.events import decode_author_match_event
from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.messaging import topics
from class_management_service.notifications.schemas import TeacherNotificationRequestedV1
from class_management_service.settings import Settings
from tests.factories import (
    Roster,
    age_rows,
    encode,
    envelope,
    essay,
    event,
    ingest,
    seed_roster,
    timeout_monitor,
)
from tests.kafka.topics import (
    TRACEPARENT,
    TRACESTATE,
    Published,
    read_topic,
    relay_outbox,
)

SessionFactory = async_sessionmaker[AsyncSession]

# The platform's enums (common_core.websocket_enums): what its websocket service accepts.
PLATFORM_CATEGORIES = {
    "batch_progress",
    "processing_results",
    "file_operations",
    "class_management",
    "student_workflow",
    "system_alerts",
}
PLATFORM_PRIORITIES = {"critical", "immediate", "high", "standard", "low"}


@pytest.fixture
def kafka_settings(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> Settings:
    return make_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        validation_timeout_hours=24,
        timeout_confidence_threshold=0.7,
    )


async def notifications_of(
    session_factory: SessionFactory, settings: Settings, bootstrap: str, teacher: str
) -> list[dict[str, Any]]:
    """Relay the outbox, then every notification keyed by ``teacher``: its payload (``data``),
    after checking the envelope and headers the websocket service relies on."""
    await relay_outbox(session_factory, settings)
    published = await read_topic(bootstrap, topics.TEACHER_NOTIFICATION_REQUESTED, key=teacher)
    return [_checked(message, teacher) for message in published]


def _checked(message: Published, teacher: str) -> dict[str, Any]:
    envelope_ = message.envelope
    assert envelope_["event_type"] == topics.TEACHER_NOTIFICATION_REQUESTED
    assert envelope_["source_service"] == "class_management_service"
    assert message.headers["event_type"] == topics.TEACHER_NOTIFICATION_REQUESTED
    data: dict[str, Any] = envelope_["data"]
    # What NotificationEventConsumer does: TeacherNotificationRequestedV1(**envelope["data"]).
    parsed = TeacherNotificationRequestedV1(**data)
    assert parsed.teacher_id == teacher
    assert data["category"] in PLATFORM_CATEGORIES
    assert data["priority"] in PLATFORM_PRIORITIES
    # The notification and its envelope tell the same correlation id.
    assert data["correlation_id"] == envelope_["correlation_id"]
    assert datetime.fromisoformat(data["timestamp"])
    return data


async def _roster_and_batch_ids(
    session_factory: SessionFactory, teacher: str
) -> tuple[Roster, uuid.UUID, list[uuid.UUID]]:
    """The teacher's class of two students, and ids for a new batch and its three essays."""
    roster = await seed_roster(session_factory, students=2, teacher=teacher)
    return roster, uuid.uuid4(), [uuid.uuid4() for _ in range(3)]


def _without_timestamp(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "timestamp"}


async def test_class_and_student_notifications(
    api_client: httpx.AsyncClient,
    session_factory: SessionFactory,
    kafka_settings: Settings,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    teacher = unique_name("teacher")

    def headers(correlation_id: str) -> dict[str, str]:
        return {"X-User-ID": teacher, "X-Correlation-ID": correlation_id}

    class_correlation = str(uuid.uuid4())
    created = await api_client.post(
        "/v1/classes/",
        json={"name": "9A English", "course_codes": ["ENG5"]},
        headers=headers(class_correlation),
    )
    assert created.status_code == 201, created.text
    class_id = created.json()["id"]
    second = await api_client.post(
        "/v1/classes/",
        json={"name": "9B", "course_codes": ["SV1"]},
        headers=headers(class_correlation),
    )
    second_id = second.json()["id"]

    student_correlation = str(uuid.uuid4())
    student = await api_client.post(
        "/v1/classes/students",
        json={
            "person_name": {"first_name": "Anna", "last_name": "Svensson"},
            "email": "anna@example.com",
            "class_ids": [class_id],
        },
        headers=headers(student_correlation),
    )
    assert student.status_code == 201, student.text
    student_id = student.json()["id"]
    update_correlation = str(uuid.uuid4())
    moved = await api_client.put(
        f"/v1/classes/students/{student_id}",
        json={"add_class_ids": [second_id]},
        headers=headers(update_correlation),
    )
    assert moved.status_code == 200, moved.text
    # A student created without a class is added to none: no notification.
    lone = await api_client.post(
        "/v1/classes/students",
        json={"person_name": {"first_name": "Lone", "last_name": "Wolf"}},
        headers=headers(str(uuid.uuid4())),
    )
    assert lone.status_code == 201, lone.text

    import_correlation = str(uuid.uuid4())
    imported = await api_client.post(
        f"/v1/classes/{class_id}/students/import",
        content=b"first_name,last_name,email\nBo,Ek,bo@example.com\nCilla,Ro,\nDan,Ny,\n",
        headers={**headers(import_correlation), "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["totals"]["created"] == 3
    # Importing the same roster again adds nobody: no notification.
    again = await api_client.post(
        f"/v1/classes/{class_id}/students/import",
        content=b"first_name,last_name,email\nBo,Ek,bo@example.com\nCilla,Ro,\nDan,Ny,\n",
        headers={**headers(str(uuid.uuid4())), "Content-Type": "text/csv"},
    )
    assert again.json()["totals"]["unchanged"] == 3

    notes = await notifications_of(session_factory, kafka_settings, kafka_bootstrap, teacher)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for note in notes:
        by_type.setdefault(note["notification_type"], []).append(note)
    assert sorted((kind, len(items)) for kind, items in by_type.items()) == [
        ("class_created", 2),
        ("student_added_to_class", 3),  # create (class A), update (class B), one per import
    ]

    class_note = next(n for n in by_type["class_created"] if n["class_id"] == class_id)
    assert _without_timestamp(class_note) == {
        "teacher_id": teacher,
        "notification_type": "class_created",
        "category": "class_management",
        "priority": "standard",
        "payload": {
            "class_id": class_id,
            "class_designation": "9A English",
            "class_name": "9A English",
            "course_codes": ["ENG5"],
            "teacher_id": teacher,
            "message": "Class '9A English' created successfully",
        },
        "action_required": False,
        "deadline_timestamp": None,
        "correlation_id": class_correlation,
        "batch_id": None,
        "class_id": class_id,
    }

    added = {n["correlation_id"]: n for n in by_type["student_added_to_class"]}
    assert _without_timestamp(added[student_correlation]) == {
        "teacher_id": teacher,
        "notification_type": "student_added_to_class",
        "category": "class_management",
        "priority": "low",
        "payload": {
            "student_id": student_id,
            "student_name": "Anna Svensson",
            "class_id": class_id,
            "class_designation": "9A English",
            "message": "Student 'Anna Svensson' added to class '9A English'",
        },
        "action_required": False,
        "deadline_timestamp": None,
        "correlation_id": student_correlation,
        "batch_id": None,
        "class_id": class_id,
    }
    assert added[update_correlation]["class_id"] == second_id
    assert added[update_correlation]["payload"]["class_designation"] == "9B"
    assert added[update_correlation]["payload"]["student_id"] == student_id
    assert _without_timestamp(added[import_correlation]) == {
        "teacher_id": teacher,
        "notification_type": "student_added_to_class",
        "category": "class_management",
        "priority": "low",
        "payload": {
            "student_id": None,
            "student_name": None,
            "students_added": 3,
            "class_id": class_id,
            "class_designation": "9A English",
            "message": "3 students added to class '9A English' by roster import",
        },
        "action_required": False,
        "deadline_timestamp": None,
        "correlation_id": import_correlation,
        "batch_id": None,
        "class_id": class_id,
    }


async def test_teacher_confirmation_notifies_the_class_owner(
    api_client: httpx.AsyncClient,
    session_factory: SessionFactory,
    kafka_settings: Settings,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    teacher = unique_name("teacher")
    roster, batch_id, (e1, e2, e3) = await _roster_and_batch_ids(session_factory, teacher)
    s1, s2 = roster.student_ids
    await ingest(
        AuthorMatchIngestion(session_factory),
        [
            event(
                roster.class_id,
                [essay(e1, [(s1, 0.9)]), essay(e2, [(s2, 0.6)]), essay(e3)],
                batch_id=batch_id,
            )
        ],
    )
    correlation_id = str(uuid.uuid4())
    confirm = await api_client.post(
        f"/v1/batches/{batch_id}/student-associations/confirm",
        json={
            "associations": [
                {"essay_id": str(e1), "student_id": str(s1), "confirmed": True},
                {"essay_id": str(e2), "student_id": None, "confirmed": False},
                {"essay_id": str(e3), "student_id": None, "confirmed": True},
            ]
        },
        headers={"X-User-ID": teacher, "X-Correlation-ID": correlation_id},
    )
    assert confirm.status_code == 200, confirm.text
    assert confirm.json()["finalized"] is True

    (note,) = await notifications_of(session_factory, kafka_settings, kafka_bootstrap, teacher)
    assert _without_timestamp(note) == {
        "teacher_id": teacher,
        "notification_type": "student_associations_confirmed",
        "category": "student_workflow",
        "priority": "high",
        "payload": {
            "batch_id": str(batch_id),
            "confirmed_count": 1,
            "confirmed_associations": 1,
            "pending_associations": 0,
            "associations": [
                {
                    "essay_id": str(essay_id),
                    "student_id": student_id,
                    "validation_method": "human",
                    "confidence_score": confidence,
                }
                for essay_id, student_id, confidence in sorted(
                    [(e1, str(s1), 0.9), (e2, None, 0.6), (e3, None, 0.0)]
                )
            ],
            "validation_summary": {"total_associations": 3, "confirmed": 1, "rejected": 2},
            "timeout_triggered": False,
            "message": "Successfully confirmed 1 student associations",
        },
        "action_required": False,
        "deadline_timestamp": None,
        "correlation_id": correlation_id,
        "batch_id": str(batch_id),
        "class_id": str(roster.class_id),
    }


async def test_timeout_notifies_and_continues_the_nlp_events_correlation_and_trace(
    session_factory: SessionFactory,
    kafka_settings: Settings,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    teacher = unique_name("teacher")
    roster, batch_id, (e1, e2, e3) = await _roster_and_batch_ids(session_factory, teacher)
    s1, s2 = roster.student_ids
    incoming = envelope(
        roster.class_id,
        [essay(e1, [(s1, 0.9)]), essay(e2, [(s2, 0.4)]), essay(e3)],
        batch_id=batch_id,
    )
    nlp_correlation = incoming["correlation_id"]
    # The NLP service's propagator wrote its trace context into the envelope's metadata.
    incoming["metadata"] = {
        "partition_key": str(batch_id),
        "traceparent": TRACEPARENT,
        "tracestate": TRACESTATE,
    }
    await ingest(
        AuthorMatchIngestion(session_factory), [decode_author_match_event(encode(incoming))]
    )

    # A day passes on the database's clock, the one the timeout decides by.
    await age_rows(session_factory, timedelta(hours=25))
    monitor = timeout_monitor(session_factory, kafka_settings)
    assert (await monitor.run_once()).finalized == [batch_id]

    notes = {
        note["notification_type"]: note
        for note in await notifications_of(
            session_factory, kafka_settings, kafka_bootstrap, teacher
        )
    }
    assert set(notes) == {"student_associations_confirmed", "validation_timeout_processed"}
    assert _without_timestamp(notes["validation_timeout_processed"]) == {
        "teacher_id": teacher,
        "notification_type": "validation_timeout_processed",
        "category": "student_workflow",
        "priority": "immediate",
        "payload": {
            "batch_id": str(batch_id),
            "auto_confirmed_count": 1,
            "processed_students": 1,
            "timeout_hours": 24.0,
            "timeout_duration_seconds": 86400,
            "message": "Validation timeout: 1 student matches auto-confirmed after 24 hours",
        },
        "action_required": False,
        "deadline_timestamp": None,
        "correlation_id": nlp_correlation,
        "batch_id": str(batch_id),
        "class_id": str(roster.class_id),
    }
    confirmed = notes["student_associations_confirmed"]
    assert confirmed["correlation_id"] == nlp_correlation
    assert confirmed["payload"]["timeout_triggered"] is True
    assert confirmed["payload"]["confirmed_count"] == 1
    assert {a["validation_method"] for a in confirmed["payload"]["associations"]} == {"timeout"}

    (published,) = await read_topic(
        kafka_bootstrap, topics.STUDENT_ASSOCIATIONS_CONFIRMED, key=str(batch_id)
    )
    assert published.envelope["correlation_id"] == nlp_correlation
    assert published.envelope["data"]["timeout_triggered"] is True
    assert published.envelope["metadata"]["traceparent"] == TRACEPARENT
    assert published.envelope["metadata"]["tracestate"] == TRACESTATE
    assert published.headers["traceparent"] == TRACEPARENT
    notification_messages = await read_topic(
        kafka_bootstrap, topics.TEACHER_NOTIFICATION_REQUESTED, key=teacher
    )
    for message in notification_messages:
        assert message.envelope["metadata"]["traceparent"] == TRACEPARENT
