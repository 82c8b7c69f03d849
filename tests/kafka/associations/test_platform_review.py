"""The teacher review as the platform's pipeline harness drives it, end to end over real
PostgreSQL and Kafka: list, "confirm as listed", StudentAssociationsConfirmedV1 on the topic with
the confirm request's correlation id (and trace context); long filenames stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.messaging import topics
from class_management_service.settings import Settings
from tests.factories import associations, essay, event, ingest, seed_roster
from tests.kafka.topics import (
    TRACEPARENT,
    TRACESTATE,
    Published,
    read_topic,
    relay_outbox,
)

SessionFactory = async_sessionmaker[AsyncSession]


@pytest.fixture
def kafka_settings(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> Settings:
    return make_settings(kafka_bootstrap_servers=kafka_bootstrap)


def harness_headers(teacher: str, correlation_id: str) -> dict[str, str]:
    """What the harness's ServiceTestManager.make_request sends (tests/utils in the platform)."""
    return {
        "X-User-ID": teacher,
        "Authorization": "Bearer test-token",
        "X-Test-Auth": "true",
        "Content-Type": "application/json",
        "X-Correlation-ID": correlation_id,
    }


async def confirmations_of(
    session_factory: SessionFactory, settings: Settings, bootstrap: str, batch_id: uuid.UUID
) -> list[Published]:
    """Relay the outbox, then every StudentAssociationsConfirmedV1 keyed by ``batch_id``."""
    await relay_outbox(session_factory, settings)
    return await read_topic(bootstrap, topics.STUDENT_ASSOCIATIONS_CONFIRMED, key=str(batch_id))


async def stored_batch(
    session_factory: SessionFactory, teacher: str, filename: str | None = None
) -> tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID]]:
    """A batch of three essays as the NLP event leaves it: two suggestions, one without."""
    roster = await seed_roster(session_factory, students=2, teacher=teacher)
    batch_id = uuid.uuid4()
    essays = [uuid.uuid4() for _ in range(3)]
    s1, s2 = roster.student_ids
    result = await ingest(
        AuthorMatchIngestion(session_factory),
        [
            event(
                roster.class_id,
                [
                    essay(essays[0], [(s1, 0.95)], filename=filename),
                    essay(essays[1], [(s2, 0.55)]),
                    essay(essays[2]),  # no author name found: no suggestion
                ],
                batch_id=batch_id,
            )
        ],
    )
    assert result.poisoned == {}
    return batch_id, essays, roster.student_ids


async def test_harness_confirm_as_listed_finalizes_and_publishes_with_its_correlation_id(
    api_client: httpx.AsyncClient,
    session_factory: SessionFactory,
    kafka_settings: Settings,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    teacher = unique_name("teacher")
    correlation_id = str(uuid.uuid4())
    headers = harness_headers(teacher, correlation_id)
    batch_id, (e1, e2, e3), (s1, s2) = await stored_batch(session_factory, teacher)

    # StudentManagementHelper.verify_student_associations, request for request.
    listing = await api_client.get(f"/v1/batches/{batch_id}/student-associations", headers=headers)
    assert listing.status_code == 200, listing.text
    associations_listed = listing.json()["associations"]
    by_essay = {item["essay_id"]: item for item in associations_listed}
    assert set(by_essay) == {str(e1), str(e2), str(e3)}
    for item in associations_listed:
        assert {"essay_id", "suggested_student_id", "confidence_score", "match_reasons"} <= set(
            item
        )
        assert item["created_at"]
    assert by_essay[str(e1)]["suggested_student_id"] == str(s1)
    assert by_essay[str(e1)]["confidence_score"] == 0.95
    assert by_essay[str(e1)]["match_reasons"] == ["fuzzy:0.95"]
    assert by_essay[str(e2)]["suggested_student_id"] == str(s2)
    assert by_essay[str(e3)]["suggested_student_id"] is None
    assert by_essay[str(e3)]["confidence_score"] is None

    confirmation_data = {
        "associations": [
            {
                "essay_id": assoc["essay_id"],
                "student_id": assoc["suggested_student_id"],
                "confirmed": True,
            }
            for assoc in associations_listed
        ],
        "confirmation_method": "manual_teacher_review",
    }
    confirm = await api_client.post(
        f"/v1/batches/{batch_id}/student-associations/confirm",
        json=confirmation_data,
        headers=headers,
    )
    assert confirm.status_code == 200, confirm.text
    body = confirm.json()
    assert (body["status"], body["associations_confirmed"], body["associations_rejected"]) == (
        "confirmed",
        3,
        0,
    )
    assert body["finalized"] is True
    decided = {item["essay_id"]: item for item in body["associations"]}
    assert decided[str(e3)]["status"] == "rejected"  # decided: no student
    assert decided[str(e3)]["student_id"] is None

    (published,) = await confirmations_of(
        session_factory, kafka_settings, kafka_bootstrap, batch_id
    )
    envelope = published.envelope
    assert envelope["correlation_id"] == correlation_id
    assert published.headers["correlation_id"] == correlation_id
    assert envelope["event_type"] == topics.STUDENT_ASSOCIATIONS_CONFIRMED
    data = envelope["data"]
    assert data["batch_id"] == str(batch_id)
    assert data["timeout_triggered"] is False
    assert data["validation_summary"] == {"total_associations": 3, "confirmed": 2, "rejected": 1}
    sent = {item["essay_id"]: item for item in data["associations"]}
    assert sent[str(e1)]["student_id"] == str(s1)
    assert sent[str(e2)]["student_id"] == str(s2)
    assert sent[str(e3)]["student_id"] is None
    assert {item["validation_method"] for item in sent.values()} == {"human"}
    assert {item["validated_by"] for item in sent.values()} == {teacher}

    # The harness's confirm repeated (a retry) changes and publishes nothing more.
    again = await api_client.post(
        f"/v1/batches/{batch_id}/student-associations/confirm",
        json=confirmation_data,
        headers=headers,
    )
    assert again.status_code == 200, again.text
    assert again.json()["changed"] == 0
    assert (
        len(await confirmations_of(session_factory, kafka_settings, kafka_bootstrap, batch_id)) == 1
    )


async def test_the_request_trace_context_continues_on_the_published_event(
    api_client: httpx.AsyncClient,
    session_factory: SessionFactory,
    kafka_settings: Settings,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    teacher = unique_name("teacher")
    batch_id, essays, _ = await stored_batch(session_factory, teacher)
    headers = {
        **harness_headers(teacher, str(uuid.uuid4())),
        "traceparent": TRACEPARENT,
        "tracestate": TRACESTATE,
    }
    confirm = await api_client.post(
        f"/v1/batches/{batch_id}/student-associations/confirm",
        json={
            "associations": [
                {"essay_id": str(essay_id), "student_id": None, "confirmed": False}
                for essay_id in essays
            ]
        },
        headers=headers,
    )
    assert confirm.status_code == 200, confirm.text
    assert confirm.json()["associations_rejected"] == 3

    (published,) = await confirmations_of(
        session_factory, kafka_settings, kafka_bootstrap, batch_id
    )
    # Where the platform's consumers read it back: envelope.metadata (and the Kafka header).
    assert published.envelope["metadata"]["traceparent"] == TRACEPARENT
    assert published.envelope["metadata"]["tracestate"] == TRACESTATE
    assert published.envelope["metadata"]["partition_key"] == str(batch_id)
    assert published.headers["traceparent"] == TRACEPARENT

    # A request without trace context causes events without one.
    plain_batch, plain_essays, _ = await stored_batch(session_factory, teacher)
    plain = await api_client.post(
        f"/v1/batches/{plain_batch}/student-associations/confirm",
        json={
            "associations": [
                {"essay_id": str(essay_id), "student_id": None, "confirmed": False}
                for essay_id in plain_essays
            ]
        },
        headers=harness_headers(teacher, str(uuid.uuid4())),
    )
    assert plain.status_code == 200, plain.text
    (untraced,) = await confirmations_of(
        session_factory, kafka_settings, kafka_bootstrap, plain_batch
    )
    assert "traceparent" not in untraced.envelope["metadata"]
    assert "traceparent" not in untraced.headers


async def test_a_2000_character_filename_is_stored_and_listed(
    api_client: httpx.AsyncClient,
    session_factory: SessionFactory,
    unique_name: Callable[[str], str],
) -> None:
    teacher = unique_name("teacher")
    filename = ("a" * 1995) + ".docx"
    assert len(filename) == 2000
    batch_id, (e1, _, _), _ = await stored_batch(session_factory, teacher, filename=filename)

    (row,) = [r for r in await associations(session_factory, batch_id=batch_id) if r.essay_id == e1]
    assert row.filename == filename
    listing = await api_client.get(
        f"/v1/batches/{batch_id}/student-associations", headers={"X-User-ID": teacher}
    )
    assert listing.status_code == 200, listing.text
    listed = {item["essay_id"]: item for item in listing.json()["associations"]}
    assert listed[str(e1)]["filename"] == filename
