"""Teacher review API over a real PostgreSQL: list, confirm/reject/reassign, the outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.models import BatchConfirmation
from class_management_service.messaging import topics
from tests.factories import seed_batch
from tests.fakes.clock import FixedClock
from tests.postgres.associations.conftest import Headers, _item, _outbox, _url


async def test_list_shows_the_whole_batch_to_its_teacher_only(
    api_client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    teacher_headers: Headers,
) -> None:
    batch = await seed_batch(
        session_factory,
        statuses=(AssociationStatus.PENDING_VALIDATION, AssociationStatus.NO_MATCH),
    )
    response = await api_client.get(_url(batch.batch_id), headers=teacher_headers("teacher-a"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["batch_id"] == str(batch.batch_id)
    assert body["class_id"] == str(batch.class_id)
    assert body["course_code"] == "ENG5"
    assert body["finalized"] is False
    assert body["status_counts"] == {"pending_validation": 1, "no_match": 1}
    first, second = body["associations"]
    assert first.pop("created_at")
    assert first == {
        "essay_id": str(batch.essays[0]),
        "filename": "essay0.docx",
        "suggested_student_id": str(batch.suggested[0]),
        "student_id": str(batch.suggested[0]),
        "student_name": "First0 Last0",
        "student_email": None,
        "confidence_score": 0.9,
        "match_reasons": ["exact_name"],
        "status": "pending_validation",
        "validation_method": None,
        "validated_by": None,
        "validated_at": None,
        "alternatives": [],
        "history_count": 0,
    }
    assert body["auto_decided"] == 0
    assert second["status"] == "no_match"
    assert second["student_id"] is None
    assert second["suggested_student_id"] is None
    assert second["student_name"] is None

    # Another teacher's batch and one not stored (yet) look the same: nothing to review.
    other = await api_client.get(_url(batch.batch_id), headers=teacher_headers("teacher-b"))
    missing_id = uuid.uuid4()
    missing = await api_client.get(_url(missing_id), headers=teacher_headers("teacher-a"))
    assert other.status_code == missing.status_code == 200
    assert other.json()["associations"] == missing.json()["associations"] == []
    assert missing.json()["batch_id"] == str(missing_id)
    assert missing.json()["class_id"] is None
    anonymous = await api_client.get(_url(batch.batch_id))
    assert anonymous.status_code == 401
    malformed = await api_client.get(_url("not-a-uuid"), headers=teacher_headers("teacher-a"))
    assert malformed.status_code == 400


async def test_decisions_are_persisted_and_the_batch_is_published_once(
    api_client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    teacher_headers: Headers,
) -> None:
    clock = FixedClock(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    api_client_app_container(api_client).clock = clock
    batch = await seed_batch(
        session_factory,
        statuses=(AssociationStatus.PENDING_VALIDATION,) * 3 + (AssociationStatus.NO_MATCH,),
        spare_students=1,
    )
    headers = teacher_headers("teacher-a")
    e0, e1, e2, e3 = batch.essays
    spare = batch.spare_students[0]

    # Partial review: nothing is published while essays remain undecided.
    partial = await api_client.post(
        _url(batch.batch_id, confirm=True),
        json={"associations": [_item(e0, batch.suggested[0]), _item(e1, None, confirmed=False)]},
        headers=headers,
    )
    assert partial.status_code == 200, partial.text
    assert partial.json()["finalized"] is False
    assert partial.json()["changed"] == 2
    assert await _outbox(session_factory) == []

    # The rest: reassign e2 to the spare student, give the no_match essay a student.
    final = await api_client.post(
        _url(batch.batch_id, confirm=True),
        json={"associations": [_item(e2, spare), _item(e3, batch.suggested[2])]},
        headers=headers,
    )
    assert final.status_code == 200, final.text
    body = final.json()
    assert body["finalized"] is True
    assert body["timeout_triggered"] is False
    by_essay = {a["essay_id"]: a for a in body["associations"]}
    assert by_essay[str(e0)]["status"] == "confirmed"
    assert by_essay[str(e1)]["status"] == "rejected"
    assert by_essay[str(e1)]["student_id"] is None
    assert by_essay[str(e2)]["student_id"] == str(spare)
    assert by_essay[str(e3)]["student_id"] == str(batch.suggested[2])
    for item in body["associations"]:
        assert item["validation_method"] == "human"
        assert item["validated_by"] == "teacher-a"
        assert item["validated_at"] == "2030-01-02T03:04:05Z"

    (event,) = await _outbox(session_factory)
    assert event.topic == topics.STUDENT_ASSOCIATIONS_CONFIRMED
    assert event.message_key == str(batch.batch_id)
    assert event.aggregate_id == str(batch.batch_id)
    envelope = event.envelope
    assert envelope["event_id"] == str(event.id)
    assert envelope["event_type"] == topics.STUDENT_ASSOCIATIONS_CONFIRMED
    assert envelope["source_service"] == "class_management_service"
    data = envelope["data"]
    assert data["event_name"] == "student.associations.confirmed"
    assert data["entity_id"] == data["batch_id"] == str(batch.batch_id)
    assert data["class_id"] == str(batch.class_id)
    assert data["course_code"] == "ENG5"
    assert data["timeout_triggered"] is False
    assert data["validation_summary"] == {"total_associations": 4, "confirmed": 3, "rejected": 1}
    sent = {a["essay_id"]: a for a in data["associations"]}
    assert sent[str(e1)] == {
        "essay_id": str(e1),
        "student_id": None,
        "confidence_score": 0.9,
        "validation_method": "human",
        "validated_by": "teacher-a",
        "validated_at": "2030-01-02T03:04:05Z",
    }
    assert sent[str(e2)]["student_id"] == str(spare)
    assert sent[str(e3)]["confidence_score"] == 0.0  # no suggestion: the contract needs a float
    async with session_factory() as session:
        confirmation = await session.get(BatchConfirmation, batch.batch_id)
    assert confirmation is not None
    assert confirmation.event_id == event.id
    assert confirmation.timeout_triggered is False

    # Repeating the decisions after finalization changes nothing and publishes nothing.
    again = await api_client.post(
        _url(batch.batch_id, confirm=True),
        json={"associations": [_item(e2, spare), _item(e1, None, confirmed=False)]},
        headers=headers,
    )
    assert again.status_code == 200, again.text
    assert again.json()["changed"] == 0
    assert again.json()["unchanged"] == 2
    # A different decision now is a conflict.
    conflict = await api_client.post(
        _url(batch.batch_id, confirm=True),
        json={"associations": [_item(e0, None, confirmed=False)]},
        headers=headers,
    )
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"]["code"] == "CONFLICT"
    assert len(await _outbox(session_factory)) == 1


def api_client_app_container(client: httpx.AsyncClient) -> Any:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app.state.container  # type: ignore[attr-defined]
