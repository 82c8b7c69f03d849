"""Which student, if any, is suggested as the author of each essay. Pure: no I/O.

Rules:

* Only students who belong to the event's class count; suggestions for anyone else are ignored.
* Among those, the highest ``confidence_score`` wins. The producer says its list is ordered by
  confidence; that is not relied on.
* Ties are broken deterministically by the lowest student id, so every replica and every
  redelivery picks the same student.
* An essay without any valid suggestion is still accounted for, as ``no_match`` with no student
  (the table's check constraint: student_id IS NULL exactly for no_match/rejected).
* An essay listed twice in one event is planned once: its suggestions are pooled and the filename
  of its first entry is kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Set
from dataclasses import dataclass

from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.events import (
    BatchAuthorMatchesSuggestedV1,
    StudentMatchSuggestion,
)


@dataclass(frozen=True, slots=True)
class PlannedAssociation:
    """One row to insert into ``essay_student_associations`` (if the essay has none yet)."""

    essay_id: uuid.UUID
    batch_id: uuid.UUID
    class_id: uuid.UUID
    student_id: uuid.UUID | None
    confidence_score: float | None
    match_reasons: tuple[str, ...]
    filename: str | None
    status: AssociationStatus
    source_event_id: uuid.UUID


def best_suggestion(
    suggestions: Iterable[StudentMatchSuggestion], class_members: Set[uuid.UUID]
) -> StudentMatchSuggestion | None:
    """The valid suggestion with the highest confidence (ties: lowest student id), or None."""
    best: StudentMatchSuggestion | None = None
    for suggestion in suggestions:
        if suggestion.student_id not in class_members:
            continue
        if (
            best is None
            or suggestion.confidence_score > best.confidence_score
            or (
                suggestion.confidence_score == best.confidence_score
                and suggestion.student_id.int < best.student_id.int
            )
        ):
            best = suggestion
    return best


def plan_associations(
    event_id: uuid.UUID,
    payload: BatchAuthorMatchesSuggestedV1,
    class_members: Set[uuid.UUID],
) -> list[PlannedAssociation]:
    """One planned row per distinct essay of the event, in the event's essay order."""
    suggestions: dict[uuid.UUID, list[StudentMatchSuggestion]] = {}
    filenames: dict[uuid.UUID, str | None] = {}
    for result in payload.match_results:
        if result.essay_id not in suggestions:
            suggestions[result.essay_id] = []
            filenames[result.essay_id] = result.filename
        suggestions[result.essay_id].extend(result.suggestions)

    planned: list[PlannedAssociation] = []
    for essay_id, candidates in suggestions.items():
        best = best_suggestion(candidates, class_members)
        planned.append(
            PlannedAssociation(
                essay_id=essay_id,
                batch_id=payload.batch_id,
                class_id=payload.class_id,
                student_id=best.student_id if best else None,
                confidence_score=best.confidence_score if best else None,
                match_reasons=tuple(best.match_reasons) if best else (),
                filename=filenames[essay_id],
                status=(
                    AssociationStatus.PENDING_VALIDATION if best else AssociationStatus.NO_MATCH
                ),
                source_event_id=event_id,
            )
        )
    return planned
