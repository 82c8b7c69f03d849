"""Batch semantics of ingestion: a finalized batch, an essay in two batches, a batch across two
classes. Each is decided (accepted, or rejected whole with a dead-letter reason), never dropped
silently, and never leaves essays no one can decide."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.ingestion import AuthorMatchIngestion
from class_management_service.associations.models import BatchConfirmation
from tests.factories import (
    TEACHER,
    associations,
    essay,
    event,
    ingest,
    processed_event_ids,
    seed_roster,
)
from tests.waiting import wait_for_backend

Factory = async_sessionmaker[AsyncSession]


async def test_new_essays_for_a_finalized_batch_are_rejected_and_a_redelivery_stays_a_no_op(
    session_factory: Factory,
    api_client: httpx.AsyncClient,
    teacher_headers: Callable[[str], dict[str, str]],
) -> None:
    roster = await seed_roster(session_factory)
    ingestion = AuthorMatchIngestion(session_factory)
    batch, matched, unmatched, late = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    student = roster.student_ids[0]
    first = event(
        roster.class_id, [essay(matched, [(student, 0.9)]), essay(unmatched)], batch_id=batch
    )
    assert (await ingest(ingestion, [first])).applied == [first.event_id]
    confirmed = await api_client.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={
            "associations": [
                {"essay_id": str(matched), "student_id": str(student), "confirmed": True},
                {"essay_id": str(unmatched), "confirmed": False},
            ]
        },
        headers=teacher_headers(TEACHER),
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["finalized"] is True

    redelivered = await ingest(ingestion, [first])
    assert redelivered.duplicates == [first.event_id]
    # NLP re-ran the batch: a new event id, the same essays. Nothing new, nothing to reject.
    re_run = event(roster.class_id, [essay(matched), essay(unmatched)], batch_id=batch)
    re_run_result = await ingest(ingestion, [re_run])
    assert (re_run_result.applied, re_run_result.inserted) == ([re_run.event_id], 0)
    # The batch again, now with an essay it does not hold: rejected whole, with a reason.
    late_event = event(roster.class_id, [essay(matched), essay(late)], batch_id=batch)
    result = await ingest(ingestion, [late_event])

    assert result.applied == []
    assert result.inserted == 0
    rejection = result.poisoned[late_event.event_id]
    assert rejection.reason == "batch_already_finalized"
    assert str(late) in rejection.error
    assert await associations(session_factory, essay_ids=[late]) == []
    assert late_event.event_id not in await processed_event_ids(session_factory)
    listing = await api_client.get(
        f"/v1/batches/{batch}/student-associations", headers=teacher_headers(TEACHER)
    )
    assert listing.json()["finalized"] is True
    assert listing.json()["status_counts"] == {"confirmed": 1, "rejected": 1}


async def test_an_essay_already_in_another_batch_rejects_the_event_naming_both_batches(
    session_factory: Factory,
) -> None:
    roster = await seed_roster(session_factory)
    ingestion = AuthorMatchIngestion(session_factory)
    shared, own = uuid.uuid4(), uuid.uuid4()
    first = event(roster.class_id, [essay(shared, [(roster.student_ids[0], 0.8)])])
    second = event(roster.class_id, [essay(own), essay(shared, [(roster.student_ids[1], 0.9)])])

    result = await ingest(ingestion, [first, second])

    assert result.applied == [first.event_id]
    rejection = result.poisoned[second.event_id]
    assert rejection.reason == "essay_in_other_batch"
    assert str(shared) in rejection.error
    assert str(first.payload.batch_id) in rejection.error
    assert str(second.payload.batch_id) in rejection.error
    # Nothing of the rejected event is stored; the first batch is untouched.
    assert await associations(session_factory, batch_id=second.payload.batch_id) == []
    [row] = await associations(session_factory, essay_ids=[shared])
    assert (row.batch_id, row.student_id) == (first.payload.batch_id, roster.student_ids[0])
    assert await processed_event_ids(session_factory) == {first.event_id}


async def test_a_new_batch_naming_an_essay_stored_earlier_is_rejected_and_leaves_nothing(
    session_factory: Factory,
) -> None:
    """The essays of a batch new to the database are not looked up before the INSERT: the one
    stored earlier is found by it, and the event is judged again with it in view."""
    roster = await seed_roster(session_factory)
    ingestion = AuthorMatchIngestion(session_factory)
    shared, own = uuid.uuid4(), uuid.uuid4()
    first = event(roster.class_id, [essay(shared, [(roster.student_ids[0], 0.8)])])
    assert (await ingest(ingestion, [first])).applied == [first.event_id]
    second = event(roster.class_id, [essay(own), essay(shared, [(roster.student_ids[1], 0.9)])])
    third = event(roster.class_id, [essay(uuid.uuid4())])

    result = await ingest(ingestion, [second, third])

    assert result.applied == [third.event_id]
    assert result.inserted == 1
    rejection = result.poisoned[second.event_id]
    assert rejection.reason == "essay_in_other_batch"
    assert str(first.payload.batch_id) in rejection.error
    assert await associations(session_factory, batch_id=second.payload.batch_id) == []
    [row] = await associations(session_factory, essay_ids=[shared])
    assert (row.batch_id, row.student_id) == (first.payload.batch_id, roster.student_ids[0])
    assert await processed_event_ids(session_factory) == {first.event_id, third.event_id}


async def test_an_event_for_another_class_cannot_join_the_batch(
    session_factory: Factory,
) -> None:
    teacher_a = await seed_roster(session_factory, teacher="teacher-a")
    teacher_b = await seed_roster(session_factory, teacher="teacher-b")
    ingestion = AuthorMatchIngestion(session_factory)
    batch = uuid.uuid4()
    first = event(teacher_a.class_id, [essay(uuid.uuid4())], batch_id=batch)
    other_class = event(teacher_b.class_id, [essay(uuid.uuid4())], batch_id=batch)
    assert (await ingest(ingestion, [first])).applied == [first.event_id]

    result = await ingest(ingestion, [other_class])

    rejection = result.poisoned[other_class.event_id]
    assert rejection.reason == "batch_class_mismatch"
    assert str(teacher_a.class_id) in rejection.error
    assert {row.class_id for row in await associations(session_factory, batch_id=batch)} == {
        teacher_a.class_id
    }


async def test_two_concurrent_new_events_of_one_batch_for_two_classes_never_mix_them(
    session_factory: Factory,
) -> None:
    """Both would see an empty batch if they ran side by side; ingestion of one batch is
    serialized (an advisory lock per batch id), so the second sees the first's class."""
    teacher_a = await seed_roster(session_factory, teacher="teacher-a")
    teacher_b = await seed_roster(session_factory, teacher="teacher-b")
    ingestion = AuthorMatchIngestion(session_factory)

    # The two write transactions overlapped in 28-29 of 30 rounds when timed: 15 rounds race.
    for _ in range(15):
        batch = uuid.uuid4()
        one = event(teacher_a.class_id, [essay(uuid.uuid4())], batch_id=batch)
        two = event(teacher_b.class_id, [essay(uuid.uuid4())], batch_id=batch)

        results = await asyncio.gather(ingest(ingestion, [one]), ingest(ingestion, [two]))

        assert sorted(len(r.applied) for r in results) == [0, 1]
        [rejection] = [p for r in results for p in r.poisoned.values()]
        assert rejection.reason == "batch_class_mismatch"
        rows = await associations(session_factory, batch_id=batch)
        assert len({row.class_id for row in rows}) == 1


async def test_late_essays_racing_a_finalization_wait_for_it_and_are_rejected(
    session_factory: Factory,
) -> None:
    """A finalization holds the batch's rows FOR UPDATE while it writes its confirmation;
    ingestion locks them FOR SHARE, so it waits and then sees the batch finalized, instead of
    adding pending essays to a batch that was just closed (which no one could ever decide)."""
    roster = await seed_roster(session_factory)
    ingestion = AuthorMatchIngestion(session_factory)
    batch, late = uuid.uuid4(), uuid.uuid4()
    first = event(roster.class_id, [essay(uuid.uuid4())], batch_id=batch)
    await ingest(ingestion, [first])
    late_event = event(roster.class_id, [essay(late)], batch_id=batch)

    async with session_factory() as finalizing:
        await finalizing.execute(
            text("SELECT id FROM essay_student_associations WHERE batch_id = :b FOR UPDATE"),
            {"b": batch},
        )
        finalizing.add(
            BatchConfirmation(
                batch_id=batch,
                class_id=roster.class_id,
                timeout_triggered=True,
                event_id=uuid.uuid4(),
            )
        )
        await finalizing.flush()
        ingesting = asyncio.create_task(ingest(ingestion, [late_event]))
        await _until_waiting_for_a_lock(session_factory)
        await finalizing.commit()
    result = await ingesting

    assert result.poisoned[late_event.event_id].reason == "batch_already_finalized"
    assert await associations(session_factory, essay_ids=[late]) == []
    assert [row.status for row in await associations(session_factory, batch_id=batch)] == [
        AssociationStatus.NO_MATCH
    ]


async def _until_waiting_for_a_lock(session_factory: Factory) -> None:
    """Poll (bounded) until another session of this database waits for a row lock."""
    await wait_for_backend(
        session_factory,
        "wait_event_type = 'Lock'",
        within=5,
        every=0.01,
        what="the ingestion to wait for the finalization's locks",
    )
