"""The decision history: every change of an association, appended in the change's transaction.

An essay's history starts with its "ingested" entry, which is not stored: it is derived from the
association row's ingest-time facts, which nothing changes afterwards (:mod:`.queries` renders
it): ``created_at`` (when), ``correlation_id`` (the NLP event's), the first ranked entry of
``suggestions`` (the student chosen at ingestion; none means ``no_match``, else
``pending_validation``), actor ``system``, id 0 (before every stored entry). Decisions change
the student, status, validation and match columns only; erasure clears reasons inside
``suggestions`` but keeps their ids and order. A student deleted since shows as no student, as
``ON DELETE SET NULL`` does for stored entries. Only rows the consumer stored
(``source_event_id`` set) have the entry. Storing it cost a row with three foreign-key checks
and two index entries per ingested essay: ~40 % more time per essay.

``association_history`` stores every later change: "auto" (written by ingestion's insert for
the essays the auto-confirm policy decided, :mod:`.ingestion_writer`), teacher confirm / reject /
reassign and timeout (:func:`write_transitions`), erasure (:mod:`..students.data_rights`). Each
is written by the statement that makes the change (a data-modifying CTE whose ``RETURNING``
feeds the history ``INSERT ... SELECT``), not by a trigger: the actor, the method and the
correlation id are the use case's knowledge, which a trigger could only get through session
variables every writer would have to remember to set.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.associations.decisions import AssociationState, Transition
from class_management_service.associations.domain import HistoryMethod, ValidationMethod


def history_method(before: AssociationState, transition: Transition) -> HistoryMethod:
    """How ``association_history`` names a change: by who decided and what came out of it (a
    teacher's "no student" for an essay without a suggestion is a rejection too)."""
    if transition.validation_method == ValidationMethod.TIMEOUT:
        return HistoryMethod.TIMEOUT
    if transition.student_id is None:
        return HistoryMethod.TEACHER_REJECT
    if transition.student_id == before.student_id:
        return HistoryMethod.TEACHER_CONFIRM
    return HistoryMethod.TEACHER_REASSIGN


@dataclass(frozen=True)
class Match:
    """The NLP's confidence and reasons for an association's student after a change."""

    confidence_score: float | None
    #: None: keep the stored reasons.
    match_reasons: tuple[str, ...] | None


def match_after(before: AssociationState, transition: Transition) -> Match:
    """The row's confidence and reasons always describe its current student: a change to
    another student takes that student's suggestion (none: no confidence, reported as 0.0);
    keeping or clearing the student keeps what is stored."""
    if transition.student_id is None or transition.student_id == before.student_id:
        return Match(before.confidence_score, None)
    for suggestion in before.suggestions:
        if suggestion.student_id == transition.student_id:
            return Match(suggestion.confidence_score, suggestion.match_reasons)
    return Match(None, ())


# The changes by primary key, the rows updated from them, and one history row per change.
_APPLY_TRANSITIONS = text(
    """
    WITH changes AS (
        SELECT *
        FROM unnest(
            CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:student_ids AS uuid[]),
            CAST(:validation_methods AS text[]), CAST(:confidence_scores AS double precision[]),
            CAST(:match_reasons AS text[]), CAST(:methods AS text[]),
            CAST(:from_student_ids AS uuid[]), CAST(:from_statuses AS text[])
        ) AS c(id, status, student_id, validation_method, confidence_score, match_reasons,
               method, from_student_id, from_status)
    ), changed AS (
        UPDATE essay_student_associations AS a
        SET status = c.status,
            student_id = c.student_id,
            validation_method = c.validation_method,
            confidence_score = c.confidence_score,
            match_reasons = COALESCE(CAST(c.match_reasons AS jsonb), a.match_reasons),
            validated_by = CAST(:validated_by AS text),
            validated_at = CAST(:now AS timestamptz),
            updated_at = CAST(:now AS timestamptz)
        FROM changes AS c
        WHERE a.id = c.id
        RETURNING a.id, a.essay_id, a.batch_id, a.student_id, a.status,
                  c.method, c.from_student_id, c.from_status
    )
    INSERT INTO association_history (
        association_id, essay_id, batch_id, changed_at, actor, method,
        from_student_id, to_student_id, from_status, to_status, correlation_id
    )
    SELECT id, essay_id, batch_id, CAST(:now AS timestamptz), CAST(:actor AS text), method,
           from_student_id, student_id, from_status, status, CAST(:correlation_id AS uuid)
    FROM changed
    ORDER BY essay_id
    """
)


async def write_transitions(
    session: AsyncSession,
    rows: Sequence[tuple[uuid.UUID, AssociationState]],
    transitions: Sequence[Transition],
    *,
    validated_by: str | None,
    actor: str,
    correlation_id: uuid.UUID,
    now: datetime,
) -> None:
    """Write the changes and their history in one statement. ``rows`` are the batch's locked
    associations as (primary key, state before the change)."""
    if not transitions:
        return
    before = {state.essay_id: (row_id, state) for row_id, state in rows}
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "ids",
            "statuses",
            "student_ids",
            "validation_methods",
            "confidence_scores",
            "match_reasons",
            "methods",
            "from_student_ids",
            "from_statuses",
        )
    }
    for transition in transitions:
        row_id, state = before[transition.essay_id]
        match = match_after(state, transition)
        columns["ids"].append(row_id)
        columns["statuses"].append(transition.status.value)
        columns["student_ids"].append(transition.student_id)
        columns["validation_methods"].append(transition.validation_method.value)
        columns["confidence_scores"].append(match.confidence_score)
        columns["match_reasons"].append(
            None if match.match_reasons is None else json.dumps(list(match.match_reasons))
        )
        columns["methods"].append(history_method(state, transition).value)
        columns["from_student_ids"].append(state.student_id)
        columns["from_statuses"].append(state.status.value)
    await session.execute(
        _APPLY_TRANSITIONS,
        {
            **columns,
            "validated_by": validated_by,
            "actor": actor,
            "correlation_id": correlation_id,
            "now": now,
        },
    )
