"""Storing suggested authors from ``BatchAuthorMatchesSuggestedV1``: set-based and idempotent.

A batch of events costs six statements (plus BEGIN/COMMIT), whatever its size (one more when
one of its batches already has rows, and a finalization per batch when the auto-confirm policy
decided essays):

* prepare (read-only, may run while the previous batch is being written):
  1. the roster: one query for all classes of the batch (which exist, who belongs to them),
     then the pure selection (:mod:`.selection`) of one row per essay;
* apply (one transaction, :mod:`.ingestion_writer`):
  2. a transaction-scoped advisory lock per batch id (in key order): two transactions adding
     to one batch run one after the other, so the second sees what the first wrote (two new
     events of one batch naming two classes cannot both see an empty batch);
  3. the events' ledger rows (:func:`~class_management_service.messaging.ledger.record_new`):
     which events are new (an event already there had its effects committed earlier, or by a
     concurrent consumer that held the row lock until it committed);
  4. the rows of the events' batches, locked ``FOR SHARE`` batch by batch (sorted), each in id
     order: a teacher's or the timeout's finalization of one of these batches (``FOR UPDATE``
     on the same rows, in id order) either committed before, and is seen by the next
     statement, or waits until this one commits;
  5. the batches' state: finalized or not, and which batch each essay of the events is in
     (:mod:`.ingestion_state`: the essays are looked up only when a batch already has rows; for
     new batches the INSERT's conflict check finds a stored essay, and the transaction is then
     run again with every essay looked up); the pure admission rules (:mod:`.admission`) then
     accept or reject each new event whole (another class, an essay in another batch, new
     essays for a finalized batch: rejected events are poison with that reason and leave no
     trace, not even in ``processed_events``);
  6. one multi-row ``INSERT INTO essay_student_associations ... ON CONFLICT (essay_id) DO
     NOTHING`` for the essays new to their batch; with essays the auto-confirm policy decided,
     its ``RETURNING`` feeds their "auto" ``association_history`` rows in the same statement
     (the "ingested" entry is the row itself: :mod:`.history`). An essay it did not
     insert was added to another batch by a concurrent transaction after statement 5: the batch
     is rolled back and retried (transient), and the retry judges it with that essay in view;
  7. only with the auto-confirm policy on (:mod:`.auto_confirm`) and essays it decided: each
     such batch is finalized if all its essays are decided (:mod:`.confirmation`: the
     ``batch_confirmations`` row, StudentAssociationsConfirmedV1 and the teacher's notification
     through the outbox, with the event's correlation id and trace context).

Rows are inserted and locked in key order, so concurrent batches take their row locks in the
same order and cannot deadlock on each other. Events naming an unknown class are poison. If the
batch fails with a data error (a constraint or value the checks above could not foresee), it is
rolled back and the events are re-planned and applied one by one, so only the offending event is
poison. Any other failure is transient and propagates: nothing of the batch is committed and the
consumer retries it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.auto_confirm import AutoConfirmPolicy
from class_management_service.associations.events import AuthorMatchEvent
from class_management_service.associations.ingestion_writer import (
    EventSource,
    PlannedEvent,
    write_batch,
)
from class_management_service.associations.selection import (
    PlannedAssociation,
    plan_associations,
)
from class_management_service.messaging import ledger
from class_management_service.messaging.batch import PoisonMessage
from class_management_service.messaging.cooperative import cooperatively
from class_management_service.messaging.ledger import describe_db_error, is_data_error

logger = logging.getLogger(__name__)

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


@dataclass
class IngestionResult:
    applied: list[uuid.UUID] = field(default_factory=list)
    duplicates: list[uuid.UUID] = field(default_factory=list)
    poisoned: dict[uuid.UUID, PoisonMessage] = field(default_factory=dict)
    #: Association rows inserted (essays that already had one are not counted).
    inserted: int = 0
    #: Of those, how many the auto-confirm policy decided, per batch.
    auto_confirmed: dict[uuid.UUID, int] = field(default_factory=dict)
    #: Batches finalized at once because the policy decided all their essays.
    finalized: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class _Input:
    event: AuthorMatchEvent
    topic: str
    #: How to get the event again if the batch must be re-planned event by event.
    source: EventSource


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

    :meth:`prepare` reads the roster and chooses the rows (no effects); :meth:`apply` writes
    them in one transaction. The consumer calls them separately so it can prepare the next
    batch while the database writes the current one.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        auto_confirm: AutoConfirmPolicy | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._auto_confirm = auto_confirm

    async def prepare(
        self,
        events: Sequence[AuthorMatchEvent],
        *,
        topics: Sequence[str],
        sources: Sequence[EventSource],
    ) -> IngestionPlan:
        """One roster query for all classes of the batch, then the pure selection per event.

        Reading the roster before (rather than inside) the write transaction gives the same
        guarantees under READ COMMITTED, where every statement sees its own snapshot anyway:
        the foreign keys still refuse a class or student deleted in between (a data error,
        which :meth:`apply` isolates by re-planning event by event with a fresh roster).
        ``topics`` and ``sources`` go with ``events`` by position: where each came from, and how
        to re-create it for that.
        """
        inputs: dict[uuid.UUID, _Input] = {}
        for index, event in enumerate(events):
            if event.event_id not in inputs:
                inputs[event.event_id] = _Input(event, topics[index], sources[index])
        return await self._prepare(list(inputs.values()))

    async def _prepare(self, inputs: Sequence[_Input]) -> IngestionPlan:
        plan = IngestionPlan()
        if not inputs:
            return plan
        class_ids = list({item.event.payload.class_id for item in inputs})
        async with self._session_factory() as session:
            roster = (await session.execute(_ROSTER, {"class_ids": class_ids})).all()
        members = {class_id: frozenset(students) for class_id, students in roster}
        # In slices: the batch being written meanwhile keeps going (messaging.cooperative).
        async for item in cooperatively(inputs):
            event = item.event
            class_members = members.get(event.payload.class_id)
            if class_members is None:
                plan.poisoned[event.event_id] = PoisonMessage(
                    "unknown_class", f"class {event.payload.class_id} does not exist"
                )
                continue
            rows = plan_associations(
                event.event_id, event.payload, class_members, self._auto_confirm
            )
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
            return await ledger.processed(session, event_ids)

    async def _write(self, items: Sequence[PlannedEvent], result: IngestionResult) -> None:
        written = await write_batch(self._session_factory, items)
        result.inserted += written.inserted
        result.finalized.extend(written.finalized)
        for batch_id, count in written.auto_confirmed.items():
            result.auto_confirmed[batch_id] = result.auto_confirmed.get(batch_id, 0) + count
            logger.info(
                "essays auto-confirmed at ingestion",
                extra={
                    "batch_id": str(batch_id),
                    "auto_confirmed": count,
                    "finalized": batch_id in written.finalized,
                },
            )
        for event_id, rejection in written.rejected.items():
            result.poisoned[event_id] = PoisonMessage(rejection.reason, rejection.error)
        for item in items:
            if item.event_id in written.rejected:
                continue
            target = result.applied if item.event_id in written.new else result.duplicates
            target.append(item.event_id)


def _summary(event: AuthorMatchEvent, plans: Sequence[PlannedAssociation]) -> str:
    matched = sum(1 for plan in plans if plan.student_id is not None)
    return json.dumps(
        {
            "batch_id": str(event.payload.batch_id),
            "class_id": str(event.payload.class_id),
            "essays": len(plans),
            "matched": matched,
            "no_match": len(plans) - matched,
        }
    )
