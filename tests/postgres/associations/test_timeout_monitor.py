"""The validation timeout over a real PostgreSQL, on the database's clock: a test makes a batch
older by moving its rows' ``created_at`` back (no sleeping)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations import service
from class_management_service.associations.decisions import TeacherDecision
from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.models import BatchConfirmation, EssayStudentAssociation
from class_management_service.associations.timeout_monitor import TimeoutMonitor
from class_management_service.bootstrap import build_container
from class_management_service.courses.domain import CourseCode
from class_management_service.messaging import topics
from class_management_service.outbox.models import OutboxEvent
from class_management_service.settings import Settings
from class_management_service.unit_of_work import UnitOfWork
from tests.factories import age_rows, seed_batch, timeout_monitor
from tests.fakes.clock import FixedClock
from tests.http_helpers import outbox_events

S = AssociationStatus
SessionFactory = async_sessionmaker[AsyncSession]


async def _seed(
    session_factory: SessionFactory, statuses: list[S], confidences: list[float | None]
) -> tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID | None]]:
    """A batch in an SV1 class: its id, essays and suggested students."""
    batch = await seed_batch(
        session_factory, statuses, confidences=confidences, course=CourseCode.SV1
    )
    return batch.batch_id, batch.essays, batch.suggested


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(validation_timeout_hours=24, timeout_confidence_threshold=0.7)


async def rows_of(
    session_factory: SessionFactory, batch_id: uuid.UUID
) -> dict[uuid.UUID, EssayStudentAssociation]:
    async with session_factory() as session:
        result = await session.execute(
            select(EssayStudentAssociation).where(EssayStudentAssociation.batch_id == batch_id)
        )
        return {row.essay_id: row for row in result.scalars()}


async def outbox(session_factory: SessionFactory) -> list[OutboxEvent]:
    """The StudentAssociationsConfirmedV1 events (teacher notifications are tested elsewhere)."""
    return await outbox_events(session_factory, topics.STUDENT_ASSOCIATIONS_CONFIRMED)


async def test_overdue_batch_is_auto_confirmed_and_published_once(
    session_factory: SessionFactory, settings: Settings, clock: FixedClock
) -> None:
    batch_id, essays, students = await _seed(
        session_factory,
        [
            S.PENDING_VALIDATION,
            S.PENDING_VALIDATION,
            S.PENDING_VALIDATION,
            S.NO_MATCH,
            S.PENDING_VALIDATION,
        ],
        [0.95, 0.7, 0.4, None, 0.2],
    )
    confident, threshold, weak, unmatched, human = essays
    # The teacher decided one essay before going quiet.
    async with UnitOfWork(session_factory) as uow:
        await service.confirm_associations(
            uow,
            batch_id=batch_id,
            teacher_id="teacher-a",
            decisions=[TeacherDecision(human, students[4], confirmed=True)],
            now=clock.now(),
            correlation_id=uuid.uuid4(),
        )
    registry = CollectorRegistry()
    worker = timeout_monitor(session_factory, settings, registry)

    await age_rows(session_factory, timedelta(hours=23, minutes=59))
    assert (await worker.run_once()).finalized == []
    assert await outbox(session_factory) == []

    await age_rows(session_factory, timedelta(minutes=2))
    assert (await worker.run_once()).finalized == [batch_id]
    rows = await rows_of(session_factory, batch_id)
    assert (rows[confident].status, rows[confident].student_id) == (
        S.TIMEOUT_CONFIRMED,
        students[0],
    )
    assert rows[threshold].status == S.TIMEOUT_CONFIRMED
    for essay in (weak, unmatched):
        assert rows[essay].status == S.REJECTED
        assert rows[essay].student_id is None
    for essay in (confident, threshold, weak, unmatched):
        assert rows[essay].validation_method == "timeout"
        assert rows[essay].validated_by is None
    assert (rows[human].status, rows[human].validation_method) == (S.CONFIRMED, "human")

    (event,) = await outbox(session_factory)
    data = event.envelope["data"]
    assert data["timeout_triggered"] is True
    assert data["course_code"] == "SV1"
    assert data["validation_summary"] == {"total_associations": 5, "confirmed": 3, "rejected": 2}
    sent = {a["essay_id"]: a for a in data["associations"]}
    assert sent[str(weak)]["student_id"] is None
    assert sent[str(weak)]["validation_method"] == "timeout"
    assert sent[str(weak)]["confidence_score"] == 0.4
    assert sent[str(human)]["validated_by"] == "teacher-a"
    async with session_factory() as session:
        confirmation = await session.get(BatchConfirmation, batch_id)
    assert confirmation is not None
    assert confirmation.timeout_triggered is True
    # Stamped by the database's clock, at least a day after the rows were written.
    for essay in (confident, threshold, weak, unmatched):
        assert rows[essay].validated_at == confirmation.confirmed_at
        assert confirmation.confirmed_at - rows[essay].created_at >= timedelta(hours=24)

    assert registry.get_sample_value("association_timeout_confirmed_total") == 2
    assert (
        registry.get_sample_value(
            "association_timeout_unassigned_total", {"reason": "low_confidence"}
        )
        == 1
    )
    assert (
        registry.get_sample_value("association_timeout_unassigned_total", {"reason": "no_match"})
        == 1
    )
    assert registry.get_sample_value("association_timeout_batches_total") == 1

    # Later passes find nothing more to do.
    await age_rows(session_factory, timedelta(days=3))
    assert (await worker.run_once()).finalized == []
    assert len(await outbox(session_factory)) == 1


async def test_teacher_finalized_batch_is_never_re_published(
    session_factory: SessionFactory, settings: Settings, clock: FixedClock
) -> None:
    batch_id, essays, students = await _seed(
        session_factory, [S.PENDING_VALIDATION, S.NO_MATCH], [0.9, None]
    )
    async with UnitOfWork(session_factory) as uow:
        await service.confirm_associations(
            uow,
            batch_id=batch_id,
            teacher_id="teacher-a",
            decisions=[
                TeacherDecision(essays[0], students[0], confirmed=True),
                TeacherDecision(essays[1], None, confirmed=False),
            ],
            now=clock.now(),
            correlation_id=uuid.uuid4(),
        )
    assert len(await outbox(session_factory)) == 1
    # Even a stray undecided row arriving for the finalized batch does not re-open it.
    class_id = (await rows_of(session_factory, batch_id))[essays[0]].class_id
    async with session_factory() as session:
        session.add(
            EssayStudentAssociation(
                essay_id=uuid.uuid4(),
                batch_id=batch_id,
                class_id=class_id,
                student_id=None,
                status=S.NO_MATCH.value,
            )
        )
        await session.commit()

    await age_rows(session_factory, timedelta(days=2))
    assert (await timeout_monitor(session_factory, settings).run_once()).finalized == []
    rows = await rows_of(session_factory, batch_id)
    assert rows[essays[0]].status == S.CONFIRMED
    assert rows[essays[0]].validation_method == "human"
    assert len(await outbox(session_factory)) == 1


async def test_batch_a_teacher_is_deciding_is_left_alone_until_released(
    session_factory: SessionFactory, settings: Settings
) -> None:
    batch_id, essays, _ = await _seed(
        session_factory, [S.PENDING_VALIDATION, S.PENDING_VALIDATION], [0.9, 0.9]
    )
    await age_rows(session_factory, timedelta(hours=25))
    worker = timeout_monitor(session_factory, settings)
    async with session_factory() as teacher_session, teacher_session.begin():
        # A teacher's request holds one row of the batch.
        await teacher_session.execute(
            text("SELECT 1 FROM essay_student_associations WHERE essay_id = :e FOR UPDATE"),
            {"e": essays[0]},
        )
        outcome = await asyncio.wait_for(worker.run_once(), 10)
        assert outcome.finalized == []
        assert outcome.skipped == 1
    assert (await worker.run_once()).finalized == [batch_id]


async def test_two_monitors_never_double_process(
    session_factory: SessionFactory, settings: Settings
) -> None:
    batches = [
        (await _seed(session_factory, [S.PENDING_VALIDATION, S.NO_MATCH], [0.9, None]))[0]
        for _ in range(30)
    ]
    await age_rows(session_factory, timedelta(hours=24, seconds=1))
    first, second = (timeout_monitor(session_factory, settings) for _ in range(2))
    one, two = await asyncio.gather(first.run_once(), second.run_once())
    assert not set(one.finalized) & set(two.finalized)
    assert sorted(one.finalized + two.finalized) == sorted(batches)
    events = await outbox(session_factory)
    assert sorted(uuid.UUID(e.aggregate_id) for e in events) == sorted(batches)


async def test_a_process_clock_a_day_ahead_does_not_time_out_a_fresh_batch(
    session_factory: SessionFactory, make_settings: Callable[..., Settings]
) -> None:
    """Issue 12 row 11: the replica's clock runs 25 h ahead of the database's; an 8-second-old
    batch must stay open (the service's own monitor, built as the service builds it)."""
    batch_id, _, _ = await _seed(session_factory, [S.PENDING_VALIDATION], [0.9])
    await age_rows(session_factory, timedelta(seconds=8))
    container = build_container(
        make_settings(run_timeout_monitor=True, validation_timeout_hours=24)
    )
    container.clock = FixedClock(datetime.now(UTC) + timedelta(hours=25))
    try:
        (worker,) = container.supervisor.workers
        assert isinstance(worker, TimeoutMonitor)
        assert (await worker.run_once()).finalized == []
        assert (await rows_of(session_factory, batch_id)).popitem()[
            1
        ].status == S.PENDING_VALIDATION
        assert await outbox(session_factory) == []
        # A day later on the database's clock, the same monitor does decide it.
        await age_rows(session_factory, timedelta(hours=24))
        assert (await worker.run_once()).finalized == [batch_id]
    finally:
        await container.close()
