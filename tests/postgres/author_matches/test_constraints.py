"""The real constraints of essay_student_associations, and how ingestion behaves around them.

The first half writes rows directly (around the handler) to prove the database itself refuses
bad data; the second half shows the handler never trips over those constraints with valid input
and isolates the event when something unforeseen does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations import ingestion as ingestion_module
from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.associations.models import EssayStudentAssociation
from class_management_service.associations.selection import PlannedAssociation, plan_associations
from class_management_service.classes.models import SchoolClass
from class_management_service.students.models import Student
from tests.factories import (
    Roster,
    add_student,
    associations,
    count_associations,
    essay,
    event,
    ingest,
    processed_event_ids,
    seed_roster,
)

Factory = async_sessionmaker[AsyncSession]


def row(roster: Roster, **overrides: Any) -> EssayStudentAssociation:
    values: dict[str, Any] = {
        "essay_id": uuid.uuid4(),
        "batch_id": uuid.uuid4(),
        "class_id": roster.class_id,
        "student_id": roster.student_ids[0],
        "confidence_score": 0.8,
        "match_reasons": ["x"],
        "filename": "f.docx",
        "status": AssociationStatus.PENDING_VALIDATION.value,
        **overrides,
    }
    return EssayStudentAssociation(**values)


async def insert(session_factory: Factory, *rows: EssayStudentAssociation) -> None:
    async with session_factory() as session:
        session.add_all(rows)
        await session.commit()


async def refused(session_factory: Factory, *rows: EssayStudentAssociation) -> str:
    """Insert rows, expect the database to refuse them; the violated constraint's message."""
    with pytest.raises(IntegrityError) as caught:
        await insert(session_factory, *rows)
    return str(caught.value.orig)


# -- the constraints themselves ---------------------------------------------------------------


async def test_essay_id_is_unique(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    essay_id = uuid.uuid4()
    await insert(session_factory, row(roster, essay_id=essay_id))
    message = await refused(session_factory, row(roster, essay_id=essay_id))
    assert "uq_essay_student_associations_essay_id" in message


async def test_student_must_exist(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    message = await refused(session_factory, row(roster, student_id=uuid.uuid4()))
    assert "fk_essay_student_associations_student_id_students" in message


async def test_class_must_exist(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    message = await refused(session_factory, row(roster, class_id=uuid.uuid4()))
    assert "fk_essay_student_associations_class_id_classes" in message


async def test_status_must_be_in_the_vocabulary(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    message = await refused(session_factory, row(roster, status="maybe"))
    assert "ck_essay_student_associations_status" in message


async def test_student_is_null_exactly_for_studentless_statuses(
    session_factory: Factory, subtests: pytest.Subtests
) -> None:
    # Each combination a subtest (reported on its own) with a roster of its own: a refused
    # insert leaves nothing behind, so one database serves them all.
    for status, has_student in [
        (AssociationStatus.PENDING_VALIDATION, False),
        (AssociationStatus.CONFIRMED, False),
        (AssociationStatus.TIMEOUT_CONFIRMED, False),
        (AssociationStatus.NO_MATCH, True),
        (AssociationStatus.REJECTED, True),
    ]:
        with subtests.test(status=status.value, has_student=has_student):
            roster = await seed_roster(session_factory)
            student = roster.student_ids[0] if has_student else None
            message = await refused(
                session_factory, row(roster, status=status.value, student_id=student)
            )
            assert "ck_essay_student_associations_student_matches_status" in message


async def test_consistent_status_and_student_combinations_are_accepted(
    session_factory: Factory,
) -> None:
    roster = await seed_roster(session_factory)
    await insert(
        session_factory,
        row(roster, status=AssociationStatus.PENDING_VALIDATION.value),
        row(roster, status=AssociationStatus.CONFIRMED.value),
        row(roster, status=AssociationStatus.TIMEOUT_CONFIRMED.value),
        row(roster, status=AssociationStatus.NO_MATCH.value, student_id=None),
        row(roster, status=AssociationStatus.REJECTED.value, student_id=None),
    )
    assert await count_associations(session_factory) == 5


async def test_confidence_must_lie_between_zero_and_one(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    message = await refused(session_factory, row(roster, confidence_score=1.01))
    assert "ck_essay_student_associations_confidence_range" in message


async def test_a_student_with_associations_cannot_be_deleted(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    await insert(session_factory, row(roster))

    async def delete_student() -> None:
        async with session_factory() as session:
            await session.execute(delete(Student).where(Student.id == roster.student_ids[0]))
            await session.commit()

    with pytest.raises(IntegrityError) as caught:
        await delete_student()
    assert "fk_essay_student_associations_student_id_students" in str(caught.value.orig)


# -- the handler around those constraints -----------------------------------------------------


async def test_an_essay_with_a_teacher_decision_is_never_overwritten(
    session_factory: Factory,
) -> None:
    roster = await seed_roster(session_factory)
    decided, fresh, batch = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await insert(
        session_factory,
        row(
            roster,
            batch_id=batch,
            essay_id=decided,
            student_id=roster.student_ids[2],
            status=AssociationStatus.CONFIRMED.value,
            validation_method="human",
            validated_by="teacher-1",
            validated_at=datetime.now(UTC),
        ),
    )
    # The same batch again (a re-run of it) with one more essay.
    incoming = event(
        roster.class_id,
        [essay(decided, [(roster.student_ids[0], 0.99)]), essay(fresh, [])],
        batch_id=batch,
    )

    result = await ingest(AuthorMatchIngestion(session_factory), [incoming])

    assert result.applied == [incoming.event_id]  # no exception, the event counts as applied
    assert result.inserted == 1
    rows = {r.essay_id: r for r in await associations(session_factory)}
    assert rows[decided].student_id == roster.student_ids[2]
    assert rows[decided].status == AssociationStatus.CONFIRMED
    assert rows[decided].validated_by == "teacher-1"
    assert rows[fresh].status == AssociationStatus.NO_MATCH


async def test_students_outside_the_class_never_reach_the_foreign_key(
    session_factory: Factory,
) -> None:
    roster = await seed_roster(session_factory)
    other_class_student = (await seed_roster(session_factory)).student_ids[0]
    classless = await add_student(session_factory)
    missing = uuid.uuid4()
    essay_id = uuid.uuid4()

    await ingest(
        AuthorMatchIngestion(session_factory),
        [
            event(
                roster.class_id,
                [essay(essay_id, [(missing, 0.99), (classless, 0.9), (other_class_student, 0.8)])],
            )
        ],
    )

    [stored] = await associations(session_factory, essay_ids=[essay_id])
    assert stored.status == AssociationStatus.NO_MATCH
    assert stored.student_id is None


async def test_unknown_class_is_poison_before_any_write(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    orphan = event(uuid.uuid4(), [essay(uuid.uuid4(), [(roster.student_ids[0], 0.7)])])

    result = await ingest(AuthorMatchIngestion(session_factory), [orphan])

    assert result.poisoned[orphan.event_id].reason == "unknown_class"
    assert await count_associations(session_factory) == 0
    assert await processed_event_ids(session_factory) == set()


async def test_a_value_the_table_refuses_isolates_only_its_event(session_factory: Factory) -> None:
    roster = await seed_roster(session_factory)
    student = roster.student_ids[0]
    good_before = event(roster.class_id, [essay(uuid.uuid4(), [(student, 0.6)])])
    # PostgreSQL cannot store a NUL character in text: it refuses the whole multi-row INSERT.
    refused = event(roster.class_id, [essay(uuid.uuid4(), [(student, 0.6)], "essay\x00.docx")])
    good_after = event(roster.class_id, [essay(uuid.uuid4(), [])])

    result = await ingest(AuthorMatchIngestion(session_factory), [good_before, refused, good_after])

    assert sorted(result.applied) == sorted([good_before.event_id, good_after.event_id])
    assert set(result.poisoned) == {refused.event_id}
    assert result.poisoned[refused.event_id].reason == "data_error"
    assert "SQLSTATE 22021" in result.poisoned[refused.event_id].error
    assert await processed_event_ids(session_factory) == {good_before.event_id, good_after.event_id}
    assert await count_associations(session_factory) == 2


async def test_a_foreign_key_race_in_the_batch_is_retried_event_by_event(
    session_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A student deleted between the roster read and the insert fails the batch's FK check;
    the per-event retry re-reads the roster and stores everything that is still valid."""
    roster = await seed_roster(session_factory)
    events = [
        event(roster.class_id, [essay(uuid.uuid4(), [(roster.student_ids[i], 0.7)])])
        for i in range(3)
    ]
    real_plan = plan_associations
    calls = 0

    def plan_with_vanished_student(*args: Any) -> list[PlannedAssociation]:
        nonlocal calls
        calls += 1
        plans = real_plan(*args)
        if calls == 2:  # the second event of the first (batch) attempt
            return [p._replace(student_id=uuid.uuid4()) for p in plans]
        return plans

    monkeypatch.setattr(ingestion_module, "plan_associations", plan_with_vanished_student)

    result = await ingest(AuthorMatchIngestion(session_factory), events)

    assert sorted(result.applied) == sorted(e.event_id for e in events)
    assert result.poisoned == {}
    rows = await associations(session_factory)
    assert sorted(r.student_id for r in rows if r.student_id) == roster.student_ids


async def test_a_deleted_class_between_events_does_not_block_the_others(
    session_factory: Factory,
) -> None:
    doomed, kept = await seed_roster(session_factory), await seed_roster(session_factory)
    async with session_factory() as session:
        await session.execute(delete(SchoolClass).where(SchoolClass.id == doomed.class_id))
        await session.commit()
    events = [
        event(doomed.class_id, [essay(uuid.uuid4(), [(doomed.student_ids[0], 0.7)])]),
        event(kept.class_id, [essay(uuid.uuid4(), [(kept.student_ids[0], 0.7)])]),
    ]

    result = await ingest(AuthorMatchIngestion(session_factory), events)

    assert result.applied == [events[1].event_id]
    assert result.poisoned[events[0].event_id].reason == "unknown_class"
    assert [r.class_id for r in await associations(session_factory)] == [kept.class_id]
