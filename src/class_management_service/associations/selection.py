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
* Every valid suggestion is kept, ranked the same way (one per student: a student suggested
  twice keeps the higher confidence), so the teacher sees the alternatives and a reassignment
  knows the NLP's confidence for the student chosen.
* With an auto-confirm policy (:mod:`.auto_confirm`), an essay whose ranking clears it is
  stored ``confirmed`` by ``auto``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Set
from dataclasses import dataclass

from class_management_service.associations.auto_confirm import AutoConfirmPolicy
from class_management_service.associations.domain import (
    AssociationStatus,
    RankedSuggestion,
    ValidationMethod,
)
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
    #: Every valid suggestion, best first (the first is the chosen one, if any).
    suggestions: tuple[RankedSuggestion, ...] = ()
    #: ``auto`` when the auto-confirm policy decided the essay, else None (undecided).
    validation_method: ValidationMethod | None = None


def rank_suggestions(
    suggestions: Iterable[StudentMatchSuggestion], class_members: Set[uuid.UUID]
) -> list[RankedSuggestion]:
    """The valid suggestions, one per student, highest confidence first (ties: lowest id)."""
    best: dict[uuid.UUID, StudentMatchSuggestion] = {}
    for suggestion in suggestions:
        if suggestion.student_id not in class_members:
            continue
        kept = best.get(suggestion.student_id)
        if kept is None or suggestion.confidence_score > kept.confidence_score:
            best[suggestion.student_id] = suggestion
    ranked = sorted(best.values(), key=lambda s: (-s.confidence_score, s.student_id.int))
    return [
        RankedSuggestion(s.student_id, s.confidence_score, tuple(s.match_reasons)) for s in ranked
    ]


def best_suggestion(
    suggestions: Iterable[StudentMatchSuggestion], class_members: Set[uuid.UUID]
) -> RankedSuggestion | None:
    """The valid suggestion with the highest confidence (ties: lowest student id), or None."""
    ranked = rank_suggestions(suggestions, class_members)
    return ranked[0] if ranked else None


def plan_associations(
    event_id: uuid.UUID,
    payload: BatchAuthorMatchesSuggestedV1,
    class_members: Set[uuid.UUID],
    auto_confirm: AutoConfirmPolicy | None = None,
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
        ranked = rank_suggestions(candidates, class_members)
        best = ranked[0] if ranked else None
        automatic = auto_confirm is not None and auto_confirm.confirms(ranked)
        if automatic:
            status = AssociationStatus.CONFIRMED
        elif best is not None:
            status = AssociationStatus.PENDING_VALIDATION
        else:
            status = AssociationStatus.NO_MATCH
        planned.append(
            PlannedAssociation(
                essay_id=essay_id,
                batch_id=payload.batch_id,
                class_id=payload.class_id,
                student_id=best.student_id if best else None,
                confidence_score=best.confidence_score if best else None,
                match_reasons=best.match_reasons if best else (),
                filename=filenames[essay_id],
                status=status,
                source_event_id=event_id,
                suggestions=tuple(ranked),
                validation_method=ValidationMethod.AUTO if automatic else None,
            )
        )
    return planned
