"""The auto-confirm policy at ingestion: certain essays stored confirmed by "auto", an
all-certain batch finalized and published (through the outbox) in the ingestion's transaction;
with the policy off (the default) nothing changes."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.auto_confirm import AutoConfirmPolicy
from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.messaging import topics
from tests.factories import associations, essay, event, ingest, seed_roster
from tests.http_helpers import outbox_events
from tests.postgres.associations.conftest import Headers, _item, _outbox, _url

TEACHER = "teacher-a"
POLICY = AutoConfirmPolicy(min_confidence=0.9, min_margin=0.2)
Factory = async_sessionmaker[AsyncSession]


async def test_an_all_certain_batch_is_finalized_and_published_with_no_teacher_action(
    api_client: httpx.AsyncClient, session_factory: Factory, teacher_headers: Headers
) -> None:
    roster = await seed_roster(session_factory, students=2, teacher=TEACHER)
    s0, s1 = roster.student_ids
    batch_id, e0, e1 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    incoming = event(
        roster.class_id,
        # e1 has no second suggestion: its margin is its confidence.
        [essay(e0, [(s0, 0.95), (s1, 0.5)]), essay(e1, [(s1, 0.92)])],
        batch_id=batch_id,
    )

    result = await ingest(AuthorMatchIngestion(session_factory, POLICY), [incoming])

    assert result.auto_confirmed == {batch_id: 2}
    assert result.finalized == [batch_id]
    rows = {row.essay_id: row for row in await associations(session_factory, batch_id=batch_id)}
    for essay_id, student in ((e0, s0), (e1, s1)):
        assert rows[essay_id].status == "confirmed"
        assert rows[essay_id].validation_method == "auto"
        assert rows[essay_id].student_id == student
        assert rows[essay_id].validated_at is not None
    (published,) = await _outbox(session_factory)
    assert published.aggregate_id == str(batch_id)
    assert published.envelope["correlation_id"] == str(incoming.correlation_id)
    data = published.envelope["data"]
    assert data["timeout_triggered"] is False
    assert data["validation_summary"] == {"total_associations": 2, "confirmed": 2, "rejected": 0}
    sent = {a["essay_id"]: a for a in data["associations"]}
    assert (sent[str(e0)]["student_id"], sent[str(e0)]["confidence_score"]) == (str(s0), 0.95)
    assert (sent[str(e1)]["student_id"], sent[str(e1)]["confidence_score"]) == (str(s1), 0.92)
    assert {a["validation_method"] for a in sent.values()} == {"auto"}
    (notification,) = await outbox_events(session_factory, topics.TEACHER_NOTIFICATION_REQUESTED)
    assert notification.envelope["data"]["notification_type"] == "student_associations_confirmed"
    assert notification.envelope["data"]["teacher_id"] == TEACHER

    listed = (await api_client.get(_url(batch_id), headers=teacher_headers(TEACHER))).json()
    assert listed["finalized"] is True
    assert listed["auto_decided"] == 2
    assert listed["status_counts"] == {"confirmed": 2}


async def test_with_the_policy_off_the_same_batch_waits_for_the_teacher(
    api_client: httpx.AsyncClient, session_factory: Factory, teacher_headers: Headers
) -> None:
    roster = await seed_roster(session_factory, students=2, teacher=TEACHER)
    s0, s1 = roster.student_ids
    batch_id = uuid.uuid4()
    incoming = event(
        roster.class_id,
        [essay(uuid.uuid4(), [(s0, 0.95), (s1, 0.5)]), essay(uuid.uuid4(), [(s1, 0.92)])],
        batch_id=batch_id,
    )

    result = await ingest(AuthorMatchIngestion(session_factory), [incoming])

    assert result.auto_confirmed == {}
    assert result.finalized == []
    rows = await associations(session_factory, batch_id=batch_id)
    assert {(row.status, row.validation_method) for row in rows} == {("pending_validation", None)}
    assert await outbox_events(session_factory) == []
    listed = (await api_client.get(_url(batch_id), headers=teacher_headers(TEACHER))).json()
    assert (listed["finalized"], listed["auto_decided"]) == (False, 0)


async def test_an_uncertain_essay_keeps_the_batch_open_and_the_teacher_can_change_auto(
    api_client: httpx.AsyncClient, session_factory: Factory, teacher_headers: Headers
) -> None:
    roster = await seed_roster(session_factory, students=3, teacher=TEACHER)
    s0, s1, s2 = roster.student_ids
    batch_id, certain, close = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    incoming = event(
        roster.class_id,
        # close: confident, but the runner-up is within the margin.
        [essay(certain, [(s0, 0.97)]), essay(close, [(s1, 0.95), (s2, 0.8)])],
        batch_id=batch_id,
    )

    result = await ingest(AuthorMatchIngestion(session_factory, POLICY), [incoming])

    assert result.auto_confirmed == {batch_id: 1}
    assert result.finalized == []
    assert await _outbox(session_factory) == []
    headers = teacher_headers(TEACHER)
    listed = (await api_client.get(_url(batch_id), headers=headers)).json()
    assert (listed["finalized"], listed["auto_decided"]) == (False, 1)
    by_essay = {a["essay_id"]: a for a in listed["associations"]}
    assert by_essay[str(certain)]["validation_method"] == "auto"
    assert by_essay[str(close)]["status"] == "pending_validation"

    # Before finalization the teacher overrides the policy's decision like any other.
    decided = await api_client.post(
        _url(batch_id, confirm=True),
        json={"associations": [_item(certain, s2), _item(close, s2)]},
        headers=headers,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["finalized"] is True
    assert decided.json()["auto_decided"] == 0
    (published,) = await _outbox(session_factory)
    sent = {a["essay_id"]: a for a in published.envelope["data"]["associations"]}
    assert sent[str(certain)]["validation_method"] == "human"
    assert sent[str(certain)]["student_id"] == str(s2)
    assert sent[str(certain)]["confidence_score"] == 0.0  # s2 was never suggested for it
    assert sent[str(close)]["confidence_score"] == 0.8
