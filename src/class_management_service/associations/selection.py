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
from typing import NamedTuple

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


class PlannedAssociation(NamedTuple):
    """One row to insert into ``essay_student_associations`` (if the essay has none yet). A
    named tuple, like :class:`RankedSuggestion`: one is built per ingested essay.

    The ranking is kept as the text it is stored as, not as suggestion objects: a plan lives
    while the previous batch is written, and the garbage collector walks every container
    object alive then (three suggestions per essay were two thirds of a plan's objects)."""

    essay_id: uuid.UUID
    batch_id: uuid.UUID
    class_id: uuid.UUID
    student_id: uuid.UUID | None
    confidence_score: float | None
    match_reasons: tuple[str, ...]
    filename: str | None
    status: AssociationStatus
    source_event_id: uuid.UUID
    #: Every valid suggestion, best first (the first is the chosen one, if any), as the
    #: ``suggestions`` column's JSON (:meth:`RankedSuggestion.all_to_json`).
    suggestions: str = "[]"
    #: ``auto`` when the auto-confirm policy decided the essay, else None (undecided).
    validation_method: ValidationMethod | None = None


def _rank(suggestion: StudentMatchSuggestion) -> tuple[float, int]:
    return (-suggestion.confidence_score, suggestion.student_id.int)


def rank_suggestions(
    suggestions: Iterable[StudentMatchSuggestion], class_members: Set[uuid.UUID]
) -> list[RankedSuggestion]:
    """The valid suggestions, one per student, highest confidence first (ties: lowest id)."""
    valid = [s for s in suggestions if s.student_id in class_members]
    valid.sort(key=_rank)
    ranked: list[RankedSuggestion] = []
    # Integer keys: UUID.__hash__ is Python code, an int's hash is native.
    seen: set[int] = set()
    for s in valid:
        key = s.student_id.int
        if key in seen:  # suggested twice: the first in rank order has the higher confidence
            continue
        seen.add(key)
        ranked.append(RankedSuggestion(s.student_id, s.confidence_score, tuple(s.match_reasons)))
    return ranked


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
    # By the essay id's integer (see rank_suggestions): (essay id, filename, suggestions).
    essays: dict[int, tuple[uuid.UUID, str | None, list[StudentMatchSuggestion]]] = {}
    for result in payload.match_results:
        entry = essays.get(result.essay_id.int)
        if entry is None:
            essays[result.essay_id.int] = (
                result.essay_id,
                result.filename,
                list(result.suggestions),
            )
        else:
            entry[2].extend(result.suggestions)

    planned: list[PlannedAssociation] = []
    for essay_id, filename, candidates in essays.values():
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
                filename=filename,
                status=status,
                source_event_id=event_id,
                suggestions=RankedSuggestion.all_to_json(ranked),
                validation_method=ValidationMethod.AUTO if automatic else None,
            )
        )
    return planned
