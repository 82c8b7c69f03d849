"""Whether an event's essays may join its batch. Pure: no I/O.

An event is applied whole or rejected whole (dead-lettered with a reason an operator can act on);
nothing is dropped silently and no batch is left undecidable:

* ``batch_class_mismatch``: the batch already holds essays of another class. One batch belongs
  to one class, so one teacher's review never waits for another teacher's.
* ``essay_in_other_batch``: an essay of the event is already in another batch (an essay has one
  association, so it cannot be in two batches' reviews).
* ``batch_already_finalized``: the batch was finalized (its StudentAssociationsConfirmedV1 is
  published) and the event brings essays it does not hold. Reopening would publish a second,
  different confirmation for the same batch; the new essays belong in a new batch.

Essays the batch already holds are not new: a re-run of the same batch (a new event id, same
essays) is accepted and changes nothing, finalized or not. Events are judged in order, each
seeing the effects of the ones accepted before it, exactly as if applied one by one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from class_management_service.associations.selection import PlannedAssociation

# How many essay ids a rejection names (the error is cut to 2,000 characters anyway).
_NAMED_ESSAYS = 5


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    error: str


@dataclass
class BatchState:
    """What the database holds for the batches and essays of the events being judged."""

    #: Classes of each existing batch (more than one only in data written before these rules).
    batch_classes: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)
    finalized: set[uuid.UUID] = field(default_factory=set)
    #: Batch of each existing essay.
    essay_batches: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Candidate:
    event_id: uuid.UUID
    batch_id: uuid.UUID
    class_id: uuid.UUID
    rows: list[PlannedAssociation]


def admit(
    candidates: Iterable[Candidate], state: BatchState
) -> tuple[list[PlannedAssociation], dict[uuid.UUID, Rejection]]:
    """The rows to insert (essays new to their batch) and the rejected events, by event id.

    ``state`` is updated with the accepted events' effects.
    """
    rows: list[PlannedAssociation] = []
    rejected: dict[uuid.UUID, Rejection] = {}
    for candidate in candidates:
        rejection = judge(candidate, state)
        if rejection is not None:
            rejected[candidate.event_id] = rejection
            continue
        state.batch_classes.setdefault(candidate.batch_id, set()).add(candidate.class_id)
        for row in candidate.rows:
            if row.essay_id not in state.essay_batches:
                state.essay_batches[row.essay_id] = candidate.batch_id
                rows.append(row)
    return rows, rejected


def judge(candidate: Candidate, state: BatchState) -> Rejection | None:
    batch, class_id = candidate.batch_id, candidate.class_id
    classes = state.batch_classes.get(batch, set())
    if classes - {class_id}:
        return Rejection(
            "batch_class_mismatch",
            f"batch {batch} belongs to class {_ids(classes)}; this event names class {class_id}",
        )
    elsewhere = _in_other_batches(candidate, state.essay_batches)
    if elsewhere:
        named = "; ".join(
            f"essay {essay} is in batch {other}"
            for essay, other in list(elsewhere.items())[:_NAMED_ESSAYS]
        )
        return Rejection(
            "essay_in_other_batch",
            f"{len(elsewhere)} essay(s) of batch {batch} are already in another batch: {named}",
        )
    if batch in state.finalized:
        new = [row.essay_id for row in candidate.rows if row.essay_id not in state.essay_batches]
        if new:
            return Rejection(
                "batch_already_finalized",
                f"batch {batch} is finalized; this event adds {len(new)} essay(s) it does not "
                f"hold (e.g. {_ids(new[:_NAMED_ESSAYS])}): send them in a new batch",
            )
    return None


def _in_other_batches(
    candidate: Candidate, essay_batches: Mapping[uuid.UUID, uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    found = {}
    for row in candidate.rows:
        other = essay_batches.get(row.essay_id)
        if other is not None and other != candidate.batch_id:
            found[row.essay_id] = other
    return found


def _ids(ids: Set[uuid.UUID] | list[uuid.UUID]) -> str:
    return ", ".join(str(i) for i in sorted(ids, key=str))
