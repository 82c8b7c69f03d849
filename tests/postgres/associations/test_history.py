"""The decision history: every change appended in its transaction, served per essay to the
batch's teacher only, counted in the review listing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.auto_confirm import AutoConfirmPolicy
from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.associations.models import AssociationHistory
from class_management_service.associations.schemas import EssayHistoryResponse
from class_management_service.settings import Settings
from tests.factories import age_rows, essay, event, ingest, seed_roster, timeout_monitor
from tests.postgres.associations.conftest import Headers, _item, _url

TEACHER = "teacher-a"
Factory = async_sessionmaker[AsyncSession]


def _history_url(batch_id: uuid.UUID | str, essay_id: uuid.UUID | str) -> str:
    return f"/v1/batches/{batch_id}/essays/{essay_id}/history"


def _steps(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            h["method"],
            h["actor"],
            h["from_status"],
            h["to_status"],
            h["from_student_id"],
            h["to_student_id"],
            h["correlation_id"],
        )
        for h in body["history"]
    ]


async def test_an_essay_through_ingest_auto_teacher_reassign_and_finalize(
    api_client: httpx.AsyncClient, session_factory: Factory, teacher_headers: Headers
) -> None:
    roster = await seed_roster(session_factory, students=3, teacher=TEACHER)
    s0, s1, s2 = (str(s) for s in roster.student_ids)
    batch_id, auto, waiting = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    incoming = event(
        roster.class_id,
        [
            essay(auto, [(roster.student_ids[0], 0.95), (roster.student_ids[1], 0.4)]),
            essay(waiting, [(roster.student_ids[2], 0.6)]),
        ],
        batch_id=batch_id,
    )
    policy = AutoConfirmPolicy(min_confidence=0.9, min_margin=0.2)
    await ingest(AuthorMatchIngestion(session_factory, policy), [incoming])
    headers = teacher_headers(TEACHER)
    nlp = str(incoming.correlation_id)

    # The teacher moves the auto decision to the alternative, then confirms the other essay,
    # which finalizes the batch.
    reassign_id, confirm_id = uuid.uuid4(), uuid.uuid4()
    reassigned = await api_client.post(
        _url(batch_id, confirm=True),
        json={"associations": [_item(auto, roster.student_ids[1])]},
        headers={**headers, "X-Correlation-ID": str(reassign_id)},
    )
    assert reassigned.status_code == 200, reassigned.text
    finalized = await api_client.post(
        _url(batch_id, confirm=True),
        json={"associations": [_item(waiting, roster.student_ids[2])]},
        headers={**headers, "X-Correlation-ID": str(confirm_id)},
    )
    assert finalized.json()["finalized"] is True

    response = await api_client.get(_history_url(batch_id, auto), headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    EssayHistoryResponse.model_validate(body)
    assert list(body) == list(EssayHistoryResponse.model_fields)
    assert (body["batch_id"], body["essay_id"]) == (str(batch_id), str(auto))
    assert _steps(body) == [
        ("ingested", "system", None, "pending_validation", None, s0, nlp),
        ("auto", "system", "pending_validation", "confirmed", s0, s0, nlp),
        ("teacher_reassign", TEACHER, "confirmed", "confirmed", s0, s1, str(reassign_id)),
    ]
    ids = [h["id"] for h in body["history"]]
    assert ids == sorted(ids)
    assert body["history"][0]["changed_at"].endswith("Z")
    other = (await api_client.get(_history_url(batch_id, waiting), headers=headers)).json()
    assert _steps(other) == [
        ("ingested", "system", None, "pending_validation", None, s2, nlp),
        ("teacher_confirm", TEACHER, "pending_validation", "confirmed", s2, s2, str(confirm_id)),
    ]

    listed = (await api_client.get(_url(batch_id), headers=headers)).json()
    counts = {a["essay_id"]: a["history_count"] for a in listed["associations"]}
    assert counts == {str(auto): 3, str(waiting): 2}

    # Owner only: another teacher's essay is a 404, like an essay not in this batch.
    for url, who in (
        (_history_url(batch_id, auto), "teacher-b"),
        (_history_url(uuid.uuid4(), auto), TEACHER),
        (_history_url(batch_id, uuid.uuid4()), TEACHER),
    ):
        missing = await api_client.get(url, headers=teacher_headers(who))
        assert missing.status_code == 404, missing.text
        assert missing.json()["error"]["code"] == "NOT_FOUND"
    malformed = await api_client.get(_history_url(batch_id, "not-a-uuid"), headers=headers)
    assert malformed.status_code == 400
    assert (await api_client.get(_history_url(batch_id, auto))).status_code == 401


async def test_the_timeout_and_a_rejection_are_recorded(
    session_factory: Factory,
    api_client: httpx.AsyncClient,
    teacher_headers: Headers,
    make_settings: Callable[..., Settings],
) -> None:
    roster = await seed_roster(session_factory, students=2, teacher=TEACHER)
    s0, s1 = roster.student_ids
    batch_id, rejected, strong, unmatched = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    incoming = event(
        roster.class_id,
        [essay(rejected, [(s0, 0.5)]), essay(strong, [(s1, 0.8)]), essay(unmatched)],
        batch_id=batch_id,
    )
    await ingest(AuthorMatchIngestion(session_factory), [incoming])
    response = await api_client.post(
        _url(batch_id, confirm=True),
        json={"associations": [_item(rejected, None, confirmed=False)]},
        headers=teacher_headers(TEACHER),
    )
    assert response.status_code == 200, response.text
    await age_rows(session_factory, timedelta(hours=25))
    settings = make_settings(validation_timeout_hours=24, timeout_confidence_threshold=0.7)
    assert (await timeout_monitor(session_factory, settings).run_once()).finalized == [batch_id]

    async with session_factory() as session:
        history = (
            await session.scalars(select(AssociationHistory).order_by(AssociationHistory.id))
        ).all()
    steps = {
        (h.essay_id, h.method, h.actor, h.from_status, h.to_status, h.to_student_id)
        for h in history
        if h.method != "ingested"
    }
    assert steps == {
        (rejected, "teacher_reject", TEACHER, "pending_validation", "rejected", None),
        (strong, "timeout", "system", "pending_validation", "timeout_confirmed", s1),
        (unmatched, "timeout", "system", "no_match", "rejected", None),
    }
    # The timeout's entries carry the NLP event's correlation id, as its published event does.
    assert {h.correlation_id for h in history if h.method == "timeout"} == {incoming.correlation_id}
    # Ingestion stores no history row: each essay's "ingested" entry is derived from its row.
    assert sum(h.method == "ingested" for h in history) == 0
    headers = teacher_headers(TEACHER)
    first_steps = {}
    for essay_id in (rejected, strong, unmatched):
        body = (await api_client.get(_history_url(batch_id, essay_id), headers=headers)).json()
        first_steps[essay_id] = _steps(body)[0]
    nlp = str(incoming.correlation_id)
    assert first_steps == {
        rejected: ("ingested", "system", None, "pending_validation", None, str(s0), nlp),
        strong: ("ingested", "system", None, "pending_validation", None, str(s1), nlp),
        unmatched: ("ingested", "system", None, "no_match", None, None, nlp),
    }


async def test_a_student_deleted_since_is_named_by_no_entry(
    api_client: httpx.AsyncClient, session_factory: Factory, teacher_headers: Headers
) -> None:
    # The derived "ingested" entry treats a deleted student as the stored entries'
    # ON DELETE SET NULL does.
    roster = await seed_roster(session_factory, students=2, teacher=TEACHER)
    s0, s1 = roster.student_ids
    batch_id, essay_id, reassign_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    incoming = event(roster.class_id, [essay(essay_id, [(s0, 0.7), (s1, 0.5)])], batch_id=batch_id)
    await ingest(AuthorMatchIngestion(session_factory), [incoming])
    headers = teacher_headers(TEACHER)
    reassigned = await api_client.post(
        _url(batch_id, confirm=True),
        json={"associations": [_item(essay_id, s1)]},
        headers={**headers, "X-Correlation-ID": str(reassign_id)},
    )
    assert reassigned.status_code == 200, reassigned.text
    deleted = await api_client.delete(f"/v1/classes/students/{s0}", headers=headers)
    assert deleted.status_code == 200, deleted.text

    body = (await api_client.get(_history_url(batch_id, essay_id), headers=headers)).json()
    nlp = str(incoming.correlation_id)
    assert _steps(body) == [
        ("ingested", "system", None, "pending_validation", None, None, nlp),
        (
            "teacher_reassign",
            TEACHER,
            "pending_validation",
            "confirmed",
            None,
            str(s1),
            str(reassign_id),
        ),
    ]
    listed = (await api_client.get(_url(batch_id), headers=headers)).json()
    assert [a["history_count"] for a in listed["associations"]] == [2]
