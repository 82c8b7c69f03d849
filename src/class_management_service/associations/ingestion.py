"""Storing suggested authors from ``BatchAuthorMatchesSuggestedV1``: set-based and idempotent.

A batch of events costs six statements (plus BEGIN/COMMIT), whatever its size:

* prepare (read-only, may run while the previous batch is being written):
  1. the roster: one query for all classes of the batch (which exist, who belongs to them),
     then the pure selection (:mod:`.selection`) of one row per essay;
* apply (one transaction):
  2. a transaction-scoped advisory lock per batch id (in key order): two transactions adding
     to one batch run one after the other, so the second sees what the first wrote (two new
     events of one batch naming two classes cannot both see an empty batch);
  3. ``INSERT INTO processed_events ... ON CONFLICT DO NOTHING RETURNING event_id``: which events
     are new (an event already there had its effects committed earlier, or by a concurrent
     consumer that held the row lock until it committed);
  4. the rows of the events' batches, locked ``FOR SHARE`` in id order: a teacher's or the
     timeout's finalization of one of these batches (``FOR UPDATE`` on the same rows) either
     committed before, and is seen by the next statement, or waits until this one commits;
  5. the batches' state: finalized or not, and which batch each essay of the events is in; the
     pure admission rules (:mod:`.admission`) then accept or reject each new event whole
     (another class, an essay in another batch, new essays for a finalized batch: rejected
     events are poison with that reason and leave no trace, not even in ``processed_events``);
  6. one multi-row ``INSERT INTO essay_student_associations ... ON CONFLICT (essay_id) DO
     NOTHING`` for the essays new to their batch. An essay it did not insert
     was added to another batch by a concurrent transaction after statement 5: the batch is
     rolled back and retried (transient), and the retry judges it with that essay in view.

Rows are inserted and locked in key order, so concurrent batches take their row locks in the
same order and cannot deadlock on each other. Events naming an unknown class are poison. If the
batch fails with a data error (a constraint or value the checks above could not foresee), it is
rolled back and the events are re-planned and applied one by one, so only the offending event is
poison. Any other failure is transient and propagates: nothing of the batch is committed and the
consumer retries it.

The Redis fast path (:class:`IdempotencyCache`) spares the planning of events it marks
completed, but such an event is skipped only if ``processed_events`` confirms it (one indexed
read); a mark the database does not confirm (a fresh or restored database, a hand-set key) is
ignored and the event processed. Redis is optional and never decides anything on its own.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.admission import BatchState, Candidate, admit
from class_management_service.associations.events import (
    AuthorMatchEvent,
    decode_author_match_event,
)
from class_management_service.associations.models import AssociationStatus
from class_management_service.associations.selection import (
    PlannedAssociation,
    plan_associations,
)
from class_management_service.idempotency import IdempotencyCache
from class_management_service.messaging.consumer import (
    BatchOutcome,
    ConsumerMetrics,
    Inbound,
    KafkaBatchConsumer,
    PoisonMessage,
    Record,
)
from class_management_service.messaging.dead_letter import DeadLetterPublisher
from class_management_service.messaging.dead_letter_store import DeadLetterStore

if TYPE_CHECKING:
    from class_management_service.container import Container

logger = logging.getLogger(__name__)

CONSUMER_WORKER_NAME = "author_match_consumer"

# One row per existing class of the batch with its members (an empty array when it has none);
# a class missing from the result does not exist. Classes are small, so the whole roster is
# cheaper than sending every suggested student id to filter on.
_ROSTER = text(
    """
    SELECT c.id AS class_id,
           COALESCE(
               array_agg(cs.student_id) FILTER (WHERE cs.student_id IS NOT NULL),
               CAST('{}' AS uuid[])
           ) AS student_ids
    FROM classes AS c
    LEFT JOIN class_students AS cs ON cs.class_id = c.id
    WHERE c.id = ANY(CAST(:class_ids AS uuid[]))
    GROUP BY c.id
    """
)

_INSERT_PROCESSED = text(
    """
    INSERT INTO processed_events (event_id, topic, summary)
    SELECT e.event_id, e.topic, CAST(e.summary AS jsonb)
    FROM unnest(
        CAST(:event_ids AS uuid[]), CAST(:topics AS text[]), CAST(:summaries AS text[])
    ) AS e(event_id, topic, summary)
    ORDER BY e.event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
)

_PROCESSED = text(
    "SELECT event_id FROM processed_events WHERE event_id = ANY(CAST(:ids AS uuid[]))"
)

_FORGET_PROCESSED = text(
    "DELETE FROM processed_events WHERE event_id = ANY(CAST(:event_ids AS uuid[]))"
)

# Serializes ingestion per batch (module docstring, statement 2). Taken first, before any row
# lock, in key order: no deadlock between ingestion transactions.
_LOCK_BATCH_IDS = text(
    """
    SELECT count(pg_advisory_xact_lock(keys.key))
    FROM (
        SELECT DISTINCT hashtextextended(CAST(b AS text), 0) AS key
        FROM unnest(CAST(:batch_ids AS uuid[])) AS b
        ORDER BY key
    ) AS keys
    """
)

# The batches' classes, after locking their rows (module docstring, statement 4).
_LOCK_BATCHES = text(
    """
    SELECT DISTINCT locked.batch_id, locked.class_id
    FROM (
        SELECT batch_id, class_id
        FROM essay_student_associations
        WHERE batch_id = ANY(CAST(:batch_ids AS uuid[]))
        ORDER BY id
        FOR SHARE
    ) AS locked
    """
)

# A new statement, so a new snapshot: it sees a finalization the lock above waited for.
_BATCH_STATE = text(
    """
    SELECT NULL AS essay_id, batch_id
    FROM batch_confirmations
    WHERE batch_id = ANY(CAST(:batch_ids AS uuid[]))
    UNION ALL
    SELECT essay_id, batch_id
    FROM essay_student_associations
    WHERE essay_id = ANY(CAST(:essay_ids AS uuid[]))
    """
)

_INSERT_ASSOCIATIONS = text(
    """
    INSERT INTO essay_student_associations (
        id, essay_id, batch_id, class_id, student_id, confidence_score, match_reasons,
        filename, status, source_event_id, correlation_id, trace_context
    )
    SELECT gen_random_uuid(), r.essay_id, r.batch_id, r.class_id, r.student_id,
           r.confidence_score, CAST(r.match_reasons AS jsonb), r.filename, r.status,
           r.source_event_id, r.correlation_id, CAST(r.trace_context AS jsonb)
    FROM unnest(
        CAST(:essay_ids AS uuid[]), CAST(:batch_ids AS uuid[]), CAST(:class_ids AS uuid[]),
        CAST(:student_ids AS uuid[]), CAST(:confidence_scores AS double precision[]),
        CAST(:match_reasons AS text[]), CAST(:filenames AS text[]), CAST(:statuses AS text[]),
        CAST(:source_event_ids AS uuid[]), CAST(:correlation_ids AS uuid[]),
        CAST(:trace_contexts AS text[])
    ) AS r(essay_id, batch_id, class_id, student_id, confidence_score, match_reasons,
           filename, status, source_event_id, correlation_id, trace_context)
    ORDER BY r.essay_id
    ON CONFLICT (essay_id) DO NOTHING
    """
)

# SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation): the data, not
# the system, is at fault; retrying the same statement would fail the same way.
_DATA_ERROR_CLASSES = ("22", "23")


def _sqlstate(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str):
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def is_data_error(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    code = _sqlstate(exc)
    return code is not None and code[:2] in _DATA_ERROR_CLASSES


def describe_db_error(exc: DBAPIError) -> str:
    """``UniqueViolationError (SQLSTATE 23505): ...`` from the driver's own exception."""
    cause = exc.orig.__cause__ or exc.orig if exc.orig is not None else exc
    return f"{type(cause).__name__} (SQLSTATE {_sqlstate(exc)}): {cause}"


class ConcurrentBatchChange(Exception):
    """Another transaction put an essay of this event into another batch meanwhile: retry (a
    transient error; the retry sees that essay and rejects the event)."""


@dataclass
class IngestionResult:
    applied: list[uuid.UUID] = field(default_factory=list)
    duplicates: list[uuid.UUID] = field(default_factory=list)
    poisoned: dict[uuid.UUID, PoisonMessage] = field(default_factory=dict)
    #: Association rows inserted (essays that already had one are not counted).
    inserted: int = 0


EventSource = Callable[[], AuthorMatchEvent]


@dataclass(frozen=True)
class _Input:
    event: AuthorMatchEvent
    topic: str
    #: How to get the event again if the batch must be re-planned event by event.
    source: EventSource


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """One event's share of a batch: its processed_events record and its rows."""

    event_id: uuid.UUID
    topic: str
    batch_id: uuid.UUID
    class_id: uuid.UUID
    summary: str  # JSON for processed_events.summary
    rows: list[PlannedAssociation]
    source: EventSource
    #: Stored with the rows: what the timeout's event carries on (the trace context as JSON).
    correlation_id: uuid.UUID
    trace_context: str | None


@dataclass
class IngestionPlan:
    """What applying a batch will write, worked out from a read-only look at the roster.

    It holds only the planned rows, not the decoded events (a consumer keeps a batch or two in
    flight; the compact plan keeps the garbage collector's work small).
    """

    #: Events whose class exists, one per event id (first occurrence), in arrival order.
    items: list[PlannedEvent] = field(default_factory=list)
    #: Events that can never be applied (unknown class).
    poisoned: dict[uuid.UUID, PoisonMessage] = field(default_factory=dict)


class AuthorMatchIngestion:
    """Applies decoded events to the database: one transaction per batch, idempotent.

    :meth:`ingest` = :meth:`prepare` (read the roster, choose the rows; no effects) then
    :meth:`apply` (one write transaction). The consumer calls them separately so it can prepare
    the next batch while the database writes the current one.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def ingest(
        self, events: Sequence[AuthorMatchEvent], *, topic: str = "", topics: Sequence[str] = ()
    ) -> IngestionResult:
        """Apply events (distinct event ids, first occurrence wins); raise on transient errors."""
        return await self.apply(await self.prepare(events, topic=topic, topics=topics))

    async def prepare(
        self,
        events: Sequence[AuthorMatchEvent],
        *,
        topic: str = "",
        topics: Sequence[str] = (),
        sources: Sequence[EventSource] = (),
    ) -> IngestionPlan:
        """One roster query for all classes of the batch, then the pure selection per event.

        Reading the roster before (rather than inside) the write transaction gives the same
        guarantees under READ COMMITTED, where every statement sees its own snapshot anyway:
        the foreign keys still refuse a class or student deleted in between (a data error,
        which :meth:`apply` isolates by re-planning event by event with a fresh roster).
        ``sources`` re-create the events for that (default: keep them).
        """
        inputs: dict[uuid.UUID, _Input] = {}
        for index, event in enumerate(events):
            if event.event_id not in inputs:
                inputs[event.event_id] = _Input(
                    event,
                    topics[index] if topics else topic,
                    sources[index] if sources else _keep(event),
                )
        return await self._prepare(list(inputs.values()))

    async def _prepare(self, inputs: Sequence[_Input]) -> IngestionPlan:
        plan = IngestionPlan()
        if not inputs:
            return plan
        class_ids = list({item.event.payload.class_id for item in inputs})
        async with self._session_factory() as session:
            roster = (await session.execute(_ROSTER, {"class_ids": class_ids})).all()
        members = {class_id: frozenset(students) for class_id, students in roster}
        for item in inputs:
            event = item.event
            class_members = members.get(event.payload.class_id)
            if class_members is None:
                plan.poisoned[event.event_id] = PoisonMessage(
                    "unknown_class", f"class {event.payload.class_id} does not exist"
                )
                continue
            rows = plan_associations(event.event_id, event.payload, class_members)
            plan.items.append(
                PlannedEvent(
                    event.event_id,
                    item.topic,
                    event.payload.batch_id,
                    event.payload.class_id,
                    _summary(event, rows),
                    rows,
                    item.source,
                    event.correlation_id,
                    json.dumps(event.trace_context) if event.trace_context else None,
                )
            )
        return plan

    async def apply(self, plan: IngestionPlan) -> IngestionResult:
        """Write a prepared batch in one transaction; a data error isolates the bad event."""
        result = IngestionResult(poisoned=dict(plan.poisoned))
        if not plan.items:
            return result
        try:
            await self._write(plan.items, result)
        except DBAPIError as exc:
            if not is_data_error(exc):
                raise
            if len(plan.items) == 1:
                self._poison(plan.items[0], exc, result)
                return result
            logger.warning(
                "batch failed with a data error; applying its events one by one",
                extra={"events": len(plan.items), "error": describe_db_error(exc)[:500]},
            )
            result = IngestionResult(poisoned=dict(plan.poisoned))
            for item in plan.items:
                # A fresh roster: the error may come from a class or student deleted meanwhile.
                single = await self._prepare([_Input(item.source(), item.topic, item.source)])
                result.poisoned.update(single.poisoned)
                if not single.items:
                    continue
                try:
                    await self._write(single.items, result)
                except DBAPIError as item_exc:
                    if not is_data_error(item_exc):
                        raise
                    self._poison(item, item_exc, result)
        return result

    @staticmethod
    def _poison(item: PlannedEvent, exc: DBAPIError, result: IngestionResult) -> None:
        result.poisoned[item.event_id] = PoisonMessage("data_error", describe_db_error(exc))

    async def processed(self, event_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """The events whose effects the database holds (``processed_events``)."""
        if not event_ids:
            return set()
        async with self._session_factory() as session:
            found = await session.execute(_PROCESSED, {"ids": list(event_ids)})
            return set(found.scalars())

    async def _write(self, items: Sequence[PlannedEvent], result: IngestionResult) -> None:
        async with self._session_factory() as session:
            batch_ids = sorted({item.batch_id for item in items})
            await session.execute(_LOCK_BATCH_IDS, {"batch_ids": batch_ids})
            inserted = await session.execute(
                _INSERT_PROCESSED,
                {
                    "event_ids": [item.event_id for item in items],
                    "topics": [item.topic for item in items],
                    "summaries": [item.summary for item in items],
                },
            )
            new_ids = set(inserted.scalars())
            # Among events of this batch the earliest (offset order) wins, exactly as if they
            # had been applied one after the other.
            candidates = [
                Candidate(item.event_id, item.batch_id, item.class_id, item.rows)
                for item in items
                if item.event_id in new_ids
            ]
            rows, rejected = admit(candidates, await _batch_state(session, candidates))
            if rejected:
                await session.execute(_FORGET_PROCESSED, {"event_ids": sorted(rejected)})
            inserted_rows = 0
            if rows:
                events = {item.event_id: item for item in items}
                written = await session.execute(_INSERT_ASSOCIATIONS, _columns(rows, events))
                inserted_rows = _rowcount(written)
                if inserted_rows < len(rows):
                    # Ingestion of one batch is serialized: only another batch's transaction
                    # can have added one of these essays since statement 5.
                    raise ConcurrentBatchChange(
                        f"{len(rows) - inserted_rows} of {len(rows)} essays were added to "
                        "another batch meanwhile"
                    )
            await session.commit()

        result.inserted += inserted_rows
        for event_id, rejection in rejected.items():
            result.poisoned[event_id] = PoisonMessage(rejection.reason, rejection.error)
        for item in items:
            if item.event_id in rejected:
                continue
            target = result.applied if item.event_id in new_ids else result.duplicates
            target.append(item.event_id)


async def _batch_state(session: AsyncSession, candidates: Sequence[Candidate]) -> BatchState:
    """Statements 4 and 5 of the module docstring: what the events' batches hold now."""
    state = BatchState()
    if not candidates:
        return state
    batch_ids = sorted({candidate.batch_id for candidate in candidates})
    for batch_id, class_id in await session.execute(_LOCK_BATCHES, {"batch_ids": batch_ids}):
        state.batch_classes.setdefault(batch_id, set()).add(class_id)
    essay_ids = sorted({row.essay_id for candidate in candidates for row in candidate.rows})
    found = await session.execute(_BATCH_STATE, {"batch_ids": batch_ids, "essay_ids": essay_ids})
    for essay_id, batch_id in found:
        if essay_id is None:
            state.finalized.add(batch_id)
        else:
            state.essay_batches[essay_id] = batch_id
    return state


def _keep(event: AuthorMatchEvent) -> EventSource:
    return lambda: event


def _rowcount(result: Any) -> int:
    count = getattr(result, "rowcount", -1)
    return count if isinstance(count, int) and count >= 0 else 0


def _summary(event: AuthorMatchEvent, plans: Sequence[PlannedAssociation]) -> str:
    matched = sum(1 for plan in plans if plan.status == AssociationStatus.PENDING_VALIDATION)
    return json.dumps(
        {
            "batch_id": str(event.payload.batch_id),
            "class_id": str(event.payload.class_id),
            "essays": len(plans),
            "matched": matched,
            "no_match": len(plans) - matched,
        }
    )


def _columns(
    rows: Iterable[PlannedAssociation], events: Mapping[uuid.UUID, PlannedEvent]
) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {
        "essay_ids": [],
        "batch_ids": [],
        "class_ids": [],
        "student_ids": [],
        "confidence_scores": [],
        "match_reasons": [],
        "filenames": [],
        "statuses": [],
        "source_event_ids": [],
        "correlation_ids": [],
        "trace_contexts": [],
    }
    reasons_json: dict[tuple[str, ...], str] = {}  # few distinct reason lists: encode each once
    for row in rows:
        event = events[row.source_event_id]
        reasons = reasons_json.get(row.match_reasons)
        if reasons is None:
            reasons = reasons_json[row.match_reasons] = json.dumps(list(row.match_reasons))
        columns["essay_ids"].append(row.essay_id)
        columns["batch_ids"].append(row.batch_id)
        columns["class_ids"].append(row.class_id)
        columns["student_ids"].append(row.student_id)
        columns["confidence_scores"].append(row.confidence_score)
        columns["match_reasons"].append(reasons)
        columns["filenames"].append(row.filename)
        columns["statuses"].append(row.status.value)
        columns["source_event_ids"].append(row.source_event_id)
        columns["correlation_ids"].append(event.correlation_id)
        columns["trace_contexts"].append(event.trace_context)
    return columns


@dataclass
class AuthorMatchPlan:
    """A partition batch between the handler's two stages."""

    #: The event id at each position of the batch (for the outcome).
    event_ids: list[uuid.UUID]
    ingestion: IngestionPlan


class AuthorMatchHandler:
    """The :class:`BatchHandler` of the author-match consumer: Redis fast path, then database."""

    def __init__(
        self, ingestion: AuthorMatchIngestion, cache: IdempotencyCache | None = None
    ) -> None:
        self._ingestion = ingestion
        self._cache = cache

    def decode(self, record: Record) -> AuthorMatchEvent:
        return decode_author_match_event(record.value)

    async def prepare(self, batch: Sequence[Inbound[AuthorMatchEvent]]) -> AuthorMatchPlan:
        event_ids = [item.message.event_id for item in batch]
        marked_done = await self._cache.claim(set(event_ids)) if self._cache else set()
        # Only the database can say an event's effects are there (see the module docstring).
        known_done = await self._ingestion.processed(marked_done)
        if len(known_done) < len(marked_done):
            logger.warning(
                "Redis marks events completed that the database does not hold; processing them",
                extra={"events": len(marked_done) - len(known_done)},
            )
        todo = [item for item in batch if item.message.event_id not in known_done]
        plan = await self._ingestion.prepare(
            [item.message for item in todo],
            topics=[item.record.topic for item in todo],
            # Re-decoding the record's bytes if ever needed beats keeping the payload alive.
            sources=[partial(decode_author_match_event, item.record.value) for item in todo],
        )
        return AuthorMatchPlan(event_ids, plan)

    async def apply(self, plan: AuthorMatchPlan) -> BatchOutcome:
        result = await self._ingestion.apply(plan.ingestion)
        done = set(result.applied) | set(result.duplicates)
        if self._cache and done:
            await self._cache.mark_completed(done)

        outcome = BatchOutcome(applied=len(result.applied))
        applied = set(result.applied)
        first_seen: set[uuid.UUID] = set()
        for index, event_id in enumerate(plan.event_ids):
            if event_id in result.poisoned:
                outcome.poisoned[index] = result.poisoned[event_id]
            elif event_id in applied and event_id not in first_seen:
                first_seen.add(event_id)
            else:
                # Known done in Redis or the database, or a second copy within this batch.
                outcome.duplicates += 1
        if result.applied or result.poisoned:
            logger.info(
                "author matches stored",
                extra={
                    "events": len(plan.event_ids),
                    "applied": len(result.applied),
                    "duplicates": outcome.duplicates,
                    "poisoned": len(outcome.poisoned),
                    "associations_inserted": result.inserted,
                },
            )
        return outcome

    async def handle(self, batch: Sequence[Inbound[AuthorMatchEvent]]) -> BatchOutcome:
        """Both stages at once (for callers that do not pipeline)."""
        return await self.apply(await self.prepare(batch))


def build_author_match_consumer(
    container: Container,
) -> KafkaBatchConsumer[AuthorMatchEvent, AuthorMatchPlan]:
    """The author-match consumer worker, wired from the container (see bootstrap)."""
    settings = container.settings
    cache = IdempotencyCache(
        container.redis,
        in_flight_ttl_seconds=settings.idempotency_in_flight_ttl_seconds,
        completed_ttl_seconds=settings.idempotency_completed_ttl_seconds,
    )
    handler = AuthorMatchHandler(AuthorMatchIngestion(container.session_factory), cache)
    return KafkaBatchConsumer(
        name=CONSUMER_WORKER_NAME,
        settings=settings,
        topic=settings.author_matches_topic,
        group_id=settings.consumer_group_id,
        handler=handler,
        dead_letters=DeadLetterPublisher(
            container.producer,
            settings.dead_letter_topic,
            service_name=settings.service_name,
            store=DeadLetterStore(container.session_factory),
        ),
        metrics=ConsumerMetrics(container.metrics.registry),
    )
