"""Storing BatchAuthorMatchesSuggestedV1 in PostgreSQL (the handler's database part only)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.messaging.ledger import ProcessedEvent
from tests.factories import (
    associations,
    count_associations,
    essay,
    event,
    ingest,
    processed_event_ids,
    seed_roster,
)

Factory = async_sessionmaker[AsyncSession]


async def test_one_essay_creates_a_pending_association(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    essay_id, batch_id = uuid.uuid4(), uuid.uuid4()
    student = roster.student_ids[0]
    incoming = event(
        roster.class_id, [essay(essay_id, [(student, 0.87)], "anna.docx")], batch_id=batch_id
    )

    result = await ingest(AuthorMatchIngestion(session_factory), [incoming], topic="t")

    assert result.applied == [incoming.event_id]
    assert result.inserted == 1
    [row] = await associations(session_factory, batch_id=batch_id)
    assert row.essay_id == essay_id
    assert row.batch_id == batch_id
    assert row.class_id == roster.class_id
    assert row.student_id == student
    assert row.confidence_score == pytest.approx(0.87)
    assert row.match_reasons == ["fuzzy:0.87"]
    assert row.filename == "anna.docx"
    assert row.status == AssociationStatus.PENDING_VALIDATION
    assert row.source_event_id == incoming.event_id
    assert row.validation_method is None
    assert row.validated_by is None
    assert row.validated_at is None
    assert row.created_at is not None
    assert row.updated_at is not None


async def test_several_essays_are_all_stored(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory, students=5)
    essays = {uuid.uuid4(): student for student in roster.student_ids}
    incoming = event(roster.class_id, [essay(e, [(s, 0.9)]) for e, s in essays.items()])

    await ingest(AuthorMatchIngestion(session_factory), [incoming])

    rows = await associations(session_factory, batch_id=incoming.payload.batch_id)
    assert {row.essay_id: row.student_id for row in rows} == essays
    assert {row.status for row in rows} == {AssociationStatus.PENDING_VALIDATION}


async def test_empty_batch_stores_nothing_but_is_recorded_as_processed(
    session_factory: Factory,
) -> None:
    roster = await seed_roster(session_factory)
    incoming = event(roster.class_id, [])

    result = await ingest(AuthorMatchIngestion(session_factory), [incoming])

    assert result.applied == [incoming.event_id]
    assert await count_associations(session_factory) == 0
    assert await processed_event_ids(session_factory) == {incoming.event_id}


async def test_essays_without_valid_suggestions_are_stored_as_no_match(
    session_factory: Factory,
) -> None:
    roster = await seed_roster(session_factory)
    outsider = uuid.uuid4()  # not in the class (not even a student)
    none, foreign, matched = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    incoming = event(
        roster.class_id,
        [
            essay(none, []),
            essay(foreign, [(outsider, 0.99)]),
            essay(matched, [(outsider, 0.99), (roster.student_ids[1], 0.41)]),
        ],
    )

    await ingest(AuthorMatchIngestion(session_factory), [incoming])

    rows = {row.essay_id: row for row in await associations(session_factory)}
    assert set(rows) == {none, foreign, matched}  # every essay of the batch is accounted for
    for essay_id in (none, foreign):
        assert rows[essay_id].status == AssociationStatus.NO_MATCH
        assert rows[essay_id].student_id is None
        assert rows[essay_id].confidence_score is None
        assert rows[essay_id].match_reasons == []
    assert rows[matched].student_id == roster.student_ids[1]
    assert rows[matched].status == AssociationStatus.PENDING_VALIDATION


async def test_highest_confidence_is_stored_regardless_of_list_order(
    session_factory: Factory, subtests: pytest.Subtests
) -> None:
    # Each order a subtest (reported on its own) with a roster and essay of its own: one
    # database serves them all.
    orders = {"ascending": [0, 1, 2], "descending": [2, 1, 0], "shuffled": [1, 2, 0]}
    for name, order in orders.items():
        with subtests.test(order=name):
            roster = await seed_roster(session_factory)
            confidences = [0.31, 0.52, 0.93]
            suggestions = [(roster.student_ids[i], confidences[i]) for i in order]
            essay_id = uuid.uuid4()

            await ingest(
                AuthorMatchIngestion(session_factory),
                [event(roster.class_id, [essay(essay_id, suggestions)])],
            )

            [row] = await associations(session_factory, essay_ids=[essay_id])
            assert row.student_id == roster.student_ids[2]
            assert row.confidence_score == pytest.approx(0.93)
            assert row.match_reasons == ["fuzzy:0.93"]


async def test_ties_are_broken_by_lowest_student_id(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    essay_id = uuid.uuid4()
    suggestions = [(student, 0.75) for student in reversed(roster.student_ids)]

    await ingest(
        AuthorMatchIngestion(session_factory),
        [event(roster.class_id, [essay(essay_id, suggestions)])],
    )

    [row] = await associations(session_factory, essay_ids=[essay_id])
    assert row.student_id == min(roster.student_ids)


async def test_data_is_read_back_identically_in_a_new_session(
    engine: Any, session_factory: Factory
) -> None:
    roster = await seed_roster(session_factory)
    essays = [uuid.uuid4() for _ in range(3)]
    incoming = event(
        roster.class_id,
        [essay(e, [(roster.student_ids[i], 0.5 + i / 10)]) for i, e in enumerate(essays)],
    )
    await ingest(AuthorMatchIngestion(session_factory), [incoming], topic="some.topic")

    # A brand-new connection straight from the engine, independent of the writer's session.
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT essay_id, student_id, confidence_score, status, source_event_id "
                    "FROM essay_student_associations ORDER BY confidence_score"
                )
            )
        ).all()
    assert [(r.essay_id, r.student_id) for r in rows] == list(
        zip(essays, roster.student_ids, strict=True)
    )
    assert [r.confidence_score for r in rows] == pytest.approx([0.5, 0.6, 0.7])
    assert {r.source_event_id for r in rows} == {incoming.event_id}

    async with session_factory() as session:
        processed = await session.scalar(
            select(ProcessedEvent).where(ProcessedEvent.event_id == incoming.event_id)
        )
    assert processed is not None
    assert processed.topic == "some.topic"
    assert processed.summary == {
        "batch_id": str(incoming.payload.batch_id),
        "class_id": str(roster.class_id),
        "essays": 3,
        "matched": 3,
        "no_match": 0,
    }


async def test_several_events_in_one_call_are_stored_together(session_factory: Factory) -> None:
    first, second = await seed_roster(session_factory), await seed_roster(session_factory)
    events = [
        event(roster.class_id, [essay(uuid.uuid4(), [(roster.student_ids[0], 0.8)])])
        for roster in (first, second, first)
    ]

    result = await ingest(AuthorMatchIngestion(session_factory), events)

    assert sorted(result.applied) == sorted(e.event_id for e in events)
    rows = await associations(session_factory)
    assert len(rows) == 3
    assert {row.class_id for row in rows} == {first.class_id, second.class_id}


async def test_redelivered_event_is_a_no_op(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    incoming = event(roster.class_id, [essay(uuid.uuid4(), [(roster.student_ids[0], 0.8)])])
    ingestion = AuthorMatchIngestion(session_factory)

    await ingest(ingestion, [incoming])
    again = await ingest(ingestion, [incoming])

    assert again.applied == []
    assert again.duplicates == [incoming.event_id]
    assert again.inserted == 0
    assert await count_associations(session_factory) == 1


async def test_unknown_class_is_poison_and_writes_nothing(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    good = event(roster.class_id, [essay(uuid.uuid4(), [(roster.student_ids[0], 0.8)])])
    orphan = event(uuid.uuid4(), [essay(uuid.uuid4(), [(roster.student_ids[0], 0.8)])])

    result = await ingest(AuthorMatchIngestion(session_factory), [orphan, good])

    assert result.applied == [good.event_id]
    assert result.poisoned[orphan.event_id].reason == "unknown_class"
    assert await count_associations(session_factory) == 1
    assert await processed_event_ids(session_factory) == {good.event_id}
