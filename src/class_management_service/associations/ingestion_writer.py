"""The write transaction of author-match ingestion (statements 2-7 of :mod:`.ingestion`)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.admission import Candidate, Rejection, admit
from class_management_service.associations.confirmation import finalize_auto_decided
from class_management_service.associations.events import AuthorMatchEvent
from class_management_service.associations.ingestion_state import batch_state
from class_management_service.associations.selection import PlannedAssociation
from class_management_service.messaging import ledger
from class_management_service.messaging.cooperative import urgently
from class_management_service.messaging.ledger import LedgerEntry

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

# The rows, and with them the history rows of the essays the auto-confirm policy decided (their
# "auto" step). The "ingested" step is not stored: it is the row's own ingest-time facts
# (:mod:`.history`).
_INSERT_ASSOCIATIONS = """
    WITH inserted AS (
        INSERT INTO essay_student_associations (
            id, essay_id, batch_id, class_id, student_id, confidence_score, match_reasons,
            suggestions, filename, status, validation_method, validated_at, source_event_id,
            correlation_id, trace_context
        )
        SELECT gen_random_uuid(), r.essay_id, e.batch_ids[r.event], e.class_ids[r.event],
               r.student_id, r.confidence_score, CAST(r.match_reasons AS jsonb),
               CAST(r.suggestions AS jsonb), r.filename, r.status, r.validation_method,
               CASE WHEN r.validation_method IS NOT NULL THEN now() END,
               e.event_ids[r.event], e.correlation_ids[r.event], CAST(r.trace_context AS jsonb)
        FROM unnest(
            CAST(:essay_ids AS uuid[]), CAST(:events AS integer[]), CAST(:student_ids AS uuid[]),
            CAST(:confidence_scores AS double precision[]), CAST(:match_reasons AS text[]),
            CAST(:suggestions AS text[]), CAST(:filenames AS text[]), CAST(:statuses AS text[]),
            CAST(:validation_methods AS text[]), CAST(:trace_contexts AS text[])
        ) AS r(essay_id, event, student_id, confidence_score, match_reasons, suggestions,
               filename, status, validation_method, trace_context)
        -- What all rows of an event share is sent once per event, each row naming its event
        -- (``r.event``, 1-based): a quarter fewer array elements to encode, and subscripts
        -- of fixed-width arrays without NULLs cost PostgreSQL nothing to speak of.
        CROSS JOIN (
            SELECT CAST(:batch_ids AS uuid[]) AS batch_ids,
                   CAST(:class_ids AS uuid[]) AS class_ids,
                   CAST(:event_ids AS uuid[]) AS event_ids,
                   CAST(:correlation_ids AS uuid[]) AS correlation_ids
        ) AS e
        ORDER BY r.essay_id
        ON CONFLICT (essay_id) DO NOTHING
        RETURNING {returning}
    ){history}
    SELECT count(*) FROM inserted
"""
_AUTO_STEPS = """, history AS (
        INSERT INTO association_history (
            association_id, essay_id, batch_id, actor, method, from_student_id, to_student_id,
            from_status, to_status, correlation_id
        )
        SELECT id, essay_id, batch_id, 'system', 'auto', student_id, student_id,
               'pending_validation', status, correlation_id
        FROM inserted
        WHERE validation_method = 'auto'
        ORDER BY essay_id
    )"""
#: By whether any row was decided by the auto-confirm policy.
_INSERT_STATEMENTS = {
    False: text(_INSERT_ASSOCIATIONS.format(returning="1", history="")),
    True: text(
        _INSERT_ASSOCIATIONS.format(
            returning="id, essay_id, batch_id, student_id, status, validation_method, "
            "correlation_id",
            history=_AUTO_STEPS,
        )
    ),
}


class ConcurrentBatchChange(Exception):
    """Another transaction put an essay of this event into another batch meanwhile: retry (a
    transient error; the retry sees that essay and rejects the event)."""


class _StoredEssays(Exception):
    """The INSERT skipped essays stored before, which the transaction did not look up."""


#: How to get an event again if its batch must be re-planned event by event.
EventSource = Callable[[], AuthorMatchEvent]


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


@dataclass(frozen=True, slots=True)
class Written:
    """What one committed write transaction did."""

    #: Events new to ``processed_events`` (the rest were applied before).
    new: set[uuid.UUID]
    #: New events the admission rules rejected whole (recorded nowhere).
    rejected: dict[uuid.UUID, Rejection]
    #: Association rows inserted.
    inserted: int
    #: Of those, how many the auto-confirm policy decided, per batch.
    auto_confirmed: dict[uuid.UUID, int] = field(default_factory=dict)
    #: Batches finalized in this transaction (all their essays decided by the policy).
    finalized: list[uuid.UUID] = field(default_factory=list)


async def write_batch(
    session_factory: async_sessionmaker[AsyncSession], items: Sequence[PlannedEvent]
) -> Written:
    """Statements 2-7 of :mod:`.ingestion` in one transaction; raises if it rolled back.

    Essays of batches new to the database are not looked up first: the INSERT's conflict check
    finds any stored one anyway, and then the transaction is rolled back and run again with
    every essay looked up, to judge the events with those essays in view."""
    try:
        return await _write_batch(session_factory, items, look_up_essays=False)
    except _StoredEssays:
        return await _write_batch(session_factory, items, look_up_essays=True)


async def _write_batch(
    session_factory: async_sessionmaker[AsyncSession],
    items: Sequence[PlannedEvent],
    *,
    look_up_essays: bool,
) -> Written:
    async with session_factory() as session:
        # PostgreSQL has little to do until the INSERT: its statements go first (cooperative).
        with urgently():
            batch_ids = sorted({item.batch_id for item in items})
            await session.execute(_LOCK_BATCH_IDS, {"batch_ids": batch_ids})
            new_ids = await ledger.record_new(
                session, [LedgerEntry(item.event_id, item.topic, item.summary) for item in items]
            )
            # Among events of this batch the earliest (offset order) wins, exactly as if they
            # had been applied one after the other.
            candidates = [
                Candidate(item.event_id, item.batch_id, item.class_id, item.rows)
                for item in items
                if item.event_id in new_ids
            ]
            rows, rejected = admit(
                candidates, await batch_state(session, candidates, look_up_essays=look_up_essays)
            )
            await ledger.forget(session, rejected)
        inserted_rows = 0
        auto_confirmed = [row for row in rows if row.validation_method is not None]
        finalized: list[uuid.UUID] = []
        if rows:
            events = {item.event_id: item for item in items}
            written = await session.execute(
                _INSERT_STATEMENTS[bool(auto_confirmed)], _columns(rows, events)
            )
            inserted_rows = int(written.scalar_one())
            if inserted_rows < len(rows):
                if not look_up_essays:
                    raise _StoredEssays
                # Ingestion of one batch is serialized: only another batch's transaction
                # can have added one of these essays since statement 5.
                raise ConcurrentBatchChange(
                    f"{len(rows) - inserted_rows} of {len(rows)} essays were added to "
                    "another batch meanwhile"
                )
            if auto_confirmed:
                causes = {
                    row.batch_id: events[row.source_event_id] for row in reversed(auto_confirmed)
                }
                finalized = await finalize_auto_decided(session, causes)
        await session.commit()
    return Written(
        new_ids,
        rejected,
        inserted_rows,
        dict(Counter(row.batch_id for row in auto_confirmed)),
        finalized,
    )


def _columns(
    rows: Sequence[PlannedAssociation], events: Mapping[uuid.UUID, PlannedEvent]
) -> dict[str, list[Any]]:
    """The INSERT's parameter arrays: one list per column of the rows (a comprehension each:
    this runs for every ingested essay), and one per column of their events."""
    reasons_json: dict[tuple[str, ...], str] = {}  # few distinct reason lists: encode each once
    for reasons in {row.match_reasons for row in rows}:
        reasons_json[reasons] = json.dumps(list(reasons))
    # Rows of one event are adjacent and share its id object: look the event up once per run.
    origins: list[PlannedEvent] = []
    positions: list[int] = []
    traces: list[str | None] = []
    event: PlannedEvent | None = None
    for row in rows:
        if event is None or event.event_id is not row.source_event_id:
            event = events[row.source_event_id]
            origins.append(event)
        positions.append(len(origins))
        traces.append(event.trace_context)
    return {
        "essay_ids": [row.essay_id for row in rows],
        "events": positions,
        "student_ids": [row.student_id for row in rows],
        "confidence_scores": [row.confidence_score for row in rows],
        "match_reasons": [reasons_json[row.match_reasons] for row in rows],
        "suggestions": [row.suggestions for row in rows],
        "filenames": [row.filename for row in rows],
        # The enums are strs: asyncpg encodes their values (``.value`` is a Python property).
        "statuses": [row.status for row in rows],
        "validation_methods": [row.validation_method for row in rows],
        "trace_contexts": traces,
        "batch_ids": [origin.batch_id for origin in origins],
        "class_ids": [origin.class_id for origin in origins],
        "event_ids": [origin.event_id for origin in origins],
        "correlation_ids": [origin.correlation_id for origin in origins],
    }
