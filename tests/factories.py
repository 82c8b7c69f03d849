"""Factories, one per noun the tests need: a class roster, a batch of suggested associations
(committed straight into the database), and platform-shaped author-match events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.events import (
    AuthorMatchEvent,
    decode_author_match_event,
)
from class_management_service.associations.ingestion import AuthorMatchIngestion, IngestionResult
from class_management_service.associations.models import EssayStudentAssociation
from class_management_service.associations.timeout_metrics import TimeoutMetrics
from class_management_service.associations.timeout_monitor import TimeoutMonitor
from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.courses.domain import CourseCode
from class_management_service.courses.reference import course_id
from class_management_service.messaging import topics
from class_management_service.messaging.ledger import ProcessedEvent
from class_management_service.retention.horizon import RedeliveryLookup
from class_management_service.retention.metrics import RetentionMetrics
from class_management_service.retention.worker import RetentionWorker
from class_management_service.settings import Settings
from class_management_service.students.models import Student

TEACHER = "teacher-ingestion"

# (student_id, confidence) pairs, in the order the producer lists them.
Suggestions = Sequence[tuple[uuid.UUID, float]]


@dataclass(frozen=True)
class Roster:
    class_id: uuid.UUID
    student_ids: list[uuid.UUID]


async def seed_roster(
    session_factory: async_sessionmaker[AsyncSession],
    students: int = 3,
    teacher: str = TEACHER,
    course: CourseCode = CourseCode.ENG5,
    class_id: uuid.UUID | None = None,
) -> Roster:
    """A class (``class_id``, else a new id) with ``students`` members, committed."""
    class_id = class_id or uuid.uuid4()
    student_ids = sorted(uuid.uuid4() for _ in range(students))
    async with session_factory() as session:
        session.add(
            SchoolClass(
                id=class_id,
                name=f"Class {class_id.hex[:6]}",
                created_by_user_id=teacher,
                course_id=course_id(course),
            )
        )
        session.add_all(
            Student(
                id=student_id,
                first_name=f"First{index}",
                last_name=f"Last{index}",
                email=f"{student_id.hex[:12]}@example.com",
                created_by_user_id=teacher,
            )
            for index, student_id in enumerate(student_ids)
        )
        await session.flush()
        session.add_all(
            ClassMembership(class_id=class_id, student_id=student_id) for student_id in student_ids
        )
        await session.commit()
    return Roster(class_id, student_ids)


@dataclass
class Batch:
    batch_id: uuid.UUID
    class_id: uuid.UUID
    essays: list[uuid.UUID]
    suggested: list[uuid.UUID | None]
    spare_students: list[uuid.UUID] = field(default_factory=list)


_UNMATCHED = (AssociationStatus.NO_MATCH, AssociationStatus.REJECTED)


async def seed_batch(
    session_factory: async_sessionmaker[AsyncSession],
    statuses: Sequence[AssociationStatus] = (AssociationStatus.PENDING_VALIDATION,) * 3,
    *,
    confidences: Sequence[float | None] | None = None,
    teacher: str = "teacher-a",
    course: CourseCode = CourseCode.ENG5,
    spare_students: int = 0,
) -> Batch:
    """A class with one student per essay (+ spares) and a batch with one essay per status,
    suggesting that student (none for ``no_match``/``rejected``) with its confidence (default
    0.9 where there is a student)."""
    if confidences is None:
        confidences = [None if status in _UNMATCHED else 0.9 for status in statuses]
    async with session_factory() as session:
        school_class = SchoolClass(
            name="9A", created_by_user_id=teacher, course_id=course_id(course)
        )
        session.add(school_class)
        await session.flush()
        students = [
            Student(first_name=f"First{i}", last_name=f"Last{i}", created_by_user_id=teacher)
            for i in range(len(statuses) + spare_students)
        ]
        session.add_all(students)
        await session.flush()
        session.add_all(
            ClassMembership(class_id=school_class.id, student_id=s.id) for s in students
        )
        batch = Batch(uuid.uuid4(), school_class.id, [], [])
        for i, (status, confidence) in enumerate(zip(statuses, confidences, strict=True)):
            essay_id = uuid.uuid4()
            student = None if status in _UNMATCHED else students[i].id
            session.add(
                EssayStudentAssociation(
                    essay_id=essay_id,
                    batch_id=batch.batch_id,
                    class_id=school_class.id,
                    student_id=student,
                    confidence_score=confidence,
                    match_reasons=[] if student is None else ["exact_name"],
                    suggestions=(
                        []
                        if student is None or confidence is None
                        else [
                            {
                                "student_id": str(student),
                                "confidence_score": confidence,
                                "match_reasons": ["exact_name"],
                            }
                        ]
                    ),
                    filename=f"essay{i}.docx",
                    status=status.value,
                )
            )
            batch.essays.append(essay_id)
            batch.suggested.append(student)
        batch.spare_students = [s.id for s in students[len(statuses) :]]
        await session.commit()
    return batch


async def add_student(
    session_factory: async_sessionmaker[AsyncSession], teacher: str = TEACHER
) -> uuid.UUID:
    """A student who belongs to no class."""
    student_id = uuid.uuid4()
    async with session_factory() as session:
        session.add(
            Student(id=student_id, first_name="Out", last_name="Sider", created_by_user_id=teacher)
        )
        await session.commit()
    return student_id


def essay(
    essay_id: uuid.UUID | str, suggestions: Suggestions = (), filename: str | None = None
) -> dict[str, Any]:
    return {
        "essay_id": str(essay_id),
        "text_storage_id": f"storage-{essay_id}",
        "filename": filename if filename is not None else f"{essay_id}.docx",
        "suggestions": [
            {
                "student_id": str(student_id),
                "student_name": "Some Student",
                "student_email": None,
                "confidence_score": confidence,
                "match_reasons": [f"fuzzy:{confidence}"],
                "extraction_metadata": {},
            }
            for student_id, confidence in suggestions
        ],
        "no_match_reason": None if suggestions else "no author name found",
        "extraction_metadata": {},
    }


def envelope(
    class_id: uuid.UUID | str,
    essays: Sequence[dict[str, Any]],
    *,
    batch_id: uuid.UUID | str | None = None,
    event_id: uuid.UUID | None = None,
    event_type: str = topics.BATCH_AUTHOR_MATCHES_SUGGESTED,
) -> dict[str, Any]:
    """A BatchAuthorMatchesSuggestedV1 envelope shaped like the NLP service's."""
    batch = str(batch_id or uuid.uuid4())
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": event_type,
        "event_timestamp": "2025-03-01T12:00:00+00:00",
        "source_service": "nlp_service",
        "schema_version": 1,
        "correlation_id": str(uuid.uuid4()),
        "data_schema_uri": None,
        "data": {
            "event_name": "batch.author.matches.suggested",
            "entity_id": batch,
            "entity_type": "batch",
            "parent_id": None,
            "timestamp": "2025-03-01T12:00:00+00:00",
            "batch_id": batch,
            "class_id": str(class_id),
            "course_code": "ENG5",
            "match_results": list(essays),
            "processing_summary": {
                "total_essays": len(essays),
                "matched": sum(1 for e in essays if e["suggestions"]),
                "no_match": sum(1 for e in essays if not e["suggestions"]),
                "errors": 0,
            },
            "processing_metadata": {},
        },
        "metadata": {"partition_key": batch},
    }


def encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def event(
    class_id: uuid.UUID | str,
    essays: Sequence[dict[str, Any]],
    *,
    batch_id: uuid.UUID | str | None = None,
    event_id: uuid.UUID | None = None,
) -> AuthorMatchEvent:
    """A decoded event, exactly as the consumer hands it to the handler."""
    raw = encode(envelope(class_id, essays, batch_id=batch_id, event_id=event_id))
    return decode_author_match_event(raw)


async def associations(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    batch_id: uuid.UUID | None = None,
    essay_ids: Sequence[uuid.UUID] | None = None,
) -> list[EssayStudentAssociation]:
    """Rows read back in a fresh session (what another process would see)."""
    query = select(EssayStudentAssociation).order_by(EssayStudentAssociation.essay_id)
    if batch_id is not None:
        query = query.where(EssayStudentAssociation.batch_id == batch_id)
    if essay_ids is not None:
        query = query.where(EssayStudentAssociation.essay_id.in_(essay_ids))
    async with session_factory() as session:
        return list((await session.scalars(query)).all())


async def count_associations(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count(EssayStudentAssociation.id))) or 0)


async def processed_event_ids(session_factory: async_sessionmaker[AsyncSession]) -> set[uuid.UUID]:
    async with session_factory() as session:
        return set((await session.scalars(select(ProcessedEvent.event_id))).all())


async def ingest(
    ingestion: AuthorMatchIngestion, events: Sequence[AuthorMatchEvent], *, topic: str = ""
) -> IngestionResult:
    """Both stages, as the consumer runs them for one partition batch."""
    plan = await ingestion.prepare(
        events,
        topics=[topic] * len(events),
        sources=[partial(_same, event) for event in events],
    )
    return await ingestion.apply(plan)


def _same(event: AuthorMatchEvent) -> AuthorMatchEvent:
    return event


def timeout_monitor(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    registry: CollectorRegistry | None = None,
) -> TimeoutMonitor:
    return TimeoutMonitor(
        session_factory=session_factory,
        settings=settings,
        metrics=TimeoutMetrics(registry or CollectorRegistry()),
    )


async def age_rows(session_factory: async_sessionmaker[AsyncSession], age: timedelta) -> None:
    """Every association becomes ``age`` older: time passes, as the database sees it."""
    async with session_factory() as session, session.begin():
        await session.execute(
            text(
                "UPDATE essay_student_associations "
                "SET created_at = created_at - CAST(:age AS interval)"
            ),
            {"age": age},
        )


async def fill_ledger(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    rows: int,
    age: timedelta,
    topic: str = topics.BATCH_AUTHOR_MATCHES_SUGGESTED,
) -> None:
    """``rows`` processed-event records of ``topic`` in one statement (generate_series): the
    newest ``age`` old on the database's clock, each further one a second older. Written oldest
    first, as a service writes them, with ids in insertion order (a random prefix per call):
    each index is appended to at its right edge (B-tree's fast path) rather than written all
    over, which makes a million-row fill several times faster."""
    async with session_factory() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO processed_events (event_id, topic, processed_at) "
                "SELECT CAST(:prefix || lpad(to_hex(g), 16, '0') AS uuid), :topic, "
                "now() - CAST(:age AS interval) - make_interval(secs => :rows - 1 - g) "
                "FROM generate_series(0, :rows - 1) AS g"
            ),
            {"topic": topic, "age": age, "rows": rows, "prefix": uuid.uuid4().hex[:16]},
        )


async def fill_outbox(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    rows: int,
    age: timedelta,
    status: str = "published",
) -> None:
    """``rows`` outbox rows of ``status`` in one statement (generate_series), each its own
    aggregate: written (and, if published, published) ``age`` ago, each further one a second
    earlier. The sequence is given, so the per-row sequence trigger does not run; order and ids
    as in :func:`fill_ledger`."""
    async with session_factory() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO outbox_events (id, aggregate_type, aggregate_id, aggregate_sequence, "
                "topic, event_type, message_key, envelope, headers, status, created_at, "
                "next_attempt_at, published_at) "
                "SELECT CAST(:prefix || lpad(to_hex(g), 16, '0') AS uuid), 'filler', "
                "f.aggregate, 1, 'filler', 'filler', f.aggregate, '{}', '{}', "
                "CAST(:status AS text), f.at, f.at, "
                "CASE WHEN CAST(:status AS text) = 'published' THEN f.at END "
                "FROM generate_series(0, :rows - 1) AS g, LATERAL (SELECT "
                "  'filler-' || :prefix || g AS aggregate, "
                "  now() - CAST(:age AS interval) - make_interval(secs => :rows - 1 - g) AS at"
                ") AS f"
            ),
            {"status": status, "age": age, "rows": rows, "prefix": uuid.uuid4().hex[:16]},
        )


def retention_worker(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    redelivery: RedeliveryLookup,
    registry: CollectorRegistry | None = None,
) -> RetentionWorker:
    return RetentionWorker(
        session_factory=session_factory,
        settings=settings,
        metrics=RetentionMetrics(registry or CollectorRegistry()),
        redelivery=redelivery,
        consumed_topics=(),
    )


async def bulk_students(
    session_factory: async_sessionmaker[AsyncSession],
    count: int,
    teacher: str = TEACHER,
    class_id: uuid.UUID | None = None,
    created: datetime = datetime(2026, 1, 1, tzinfo=UTC),
) -> None:
    """``count`` students by one set-based statement (in ``class_id`` when given), with what
    sorting must cope with: repeated names and creation times (``created`` and the ten seconds
    after it), every seventh e-mail missing."""
    await _execute(
        session_factory,
        """
        WITH made AS (
            INSERT INTO students (id, first_name, last_name, email, created_by_user_id, created_at)
            SELECT gen_random_uuid(), 'First' || (n % 13), 'Last' || (n % 17),
                   CASE WHEN n % 7 = 0 THEN NULL ELSE gen_random_uuid() || '@bulk.example' END,
                   :teacher, CAST(:created AS timestamptz) + (n % 11) * interval '1 second'
            FROM generate_series(1, :count) AS n
            RETURNING id
        )
        INSERT INTO class_students (class_id, student_id)
        SELECT CAST(:class_id AS uuid), id FROM made WHERE CAST(:class_id AS uuid) IS NOT NULL
        """,
        {"teacher": teacher, "count": count, "class_id": class_id, "created": created},
    )


async def bulk_classes(
    session_factory: async_sessionmaker[AsyncSession],
    count: int,
    teacher: str = TEACHER,
    names: Sequence[str] | None = None,
) -> None:
    """``count`` ENG5 classes by one set-based statement, creation times repeating; the n-th
    named ``names[n - 1]`` when there is one, else names repeating."""
    await _execute(
        session_factory,
        """
        INSERT INTO classes (id, name, created_by_user_id, course_id, created_at)
        SELECT gen_random_uuid(), coalesce((CAST(:names AS text[]))[n], 'Class ' || (n % 9)),
               :teacher, CAST(:course_id AS uuid),
               timestamptz '2026-01-01T00:00:00Z' + (n % 5) * interval '1 second'
        FROM generate_series(1, :count) AS n
        """,
        {
            "teacher": teacher,
            "count": count,
            "course_id": course_id(CourseCode.ENG5),
            "names": None if names is None else list(names),
        },
    )


async def _execute(
    session_factory: async_sessionmaker[AsyncSession], sql: str, parameters: dict[str, Any]
) -> None:
    async with session_factory() as session, session.begin():
        await session.execute(text(sql), parameters)
