"""What the batches of an ingestion write transaction hold (statements 4 and 5 of
:mod:`.ingestion`), read inside that transaction by :mod:`.ingestion_writer`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.associations.admission import BatchState, Candidate

# The batches' classes, after locking their rows (statement 4): batch by batch
# in the order given (sorted), each batch's rows in id order, the order a teacher's or the
# timeout's finalization of one batch takes them in. One index probe per batch: with
# ``batch_id = ANY(...)`` the planner, without fresh statistics (a table growing by thousands of
# rows a second outruns autovacuum's ANALYZE), chose a sequential scan of the whole table.
_LOCK_BATCHES = text(
    """
    SELECT DISTINCT locked.batch_id, locked.class_id
    FROM unnest(CAST(:batch_ids AS uuid[])) AS b(batch_id)
    CROSS JOIN LATERAL (
        SELECT batch_id, class_id
        FROM essay_student_associations
        WHERE batch_id = b.batch_id
        ORDER BY id
        FOR SHARE
    ) AS locked
    """
)

# A new statement, so a new snapshot: it sees a finalization the lock above waited for.
_FINALIZED = text(
    "SELECT batch_id FROM batch_confirmations WHERE batch_id = ANY(CAST(:batch_ids AS uuid[]))"
)

# Which batch each essay is in: an index probe per essay, asked only when an essay may already be
# stored (batch_state).
_ESSAY_BATCHES = text(
    """
    SELECT essay_id, batch_id
    FROM essay_student_associations
    WHERE essay_id = ANY(CAST(:essay_ids AS uuid[]))
    """
)


async def batch_state(
    session: AsyncSession, candidates: Sequence[Candidate], *, look_up_essays: bool
) -> BatchState:
    """What the events' batches hold now.

    An essay can already be in one of these batches only if the batch has rows (or is
    finalized): when none has, the essays are not looked up (an index probe each) unless
    ``look_up_essays``; one stored in another batch meanwhile makes the INSERT skip it, and the
    writer then runs the transaction again looking every essay up."""
    state = BatchState()
    if not candidates:
        return state
    batch_ids = sorted({candidate.batch_id for candidate in candidates})
    for batch_id, class_id in await session.execute(_LOCK_BATCHES, {"batch_ids": batch_ids}):
        state.batch_classes.setdefault(batch_id, set()).add(class_id)
    found = await session.execute(_FINALIZED, {"batch_ids": batch_ids})
    state.finalized.update(found.scalars())
    if look_up_essays or state.batch_classes or state.finalized:
        # Not deduplicated: an essay listed twice (rare) costs PostgreSQL less than hashing
        # every id here (UUID.__hash__ is Python code).
        essay_ids = [row.essay_id for candidate in candidates for row in candidate.rows]
        for essay_id, batch_id in await session.execute(_ESSAY_BATCHES, {"essay_ids": essay_ids}):
            state.essay_batches[essay_id] = batch_id
    return state
