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

import json
import uuid
from collections.abc import Container, Iterable, Sequence, Set
from functools import lru_cache
from operator import itemgetter
from typing import NamedTuple

from class_management_service.associations.auto_confirm import AutoConfirmPolicy
from class_management_service.associations.domain import (
    AssociationStatus,
    ValidationMethod,
)
from class_management_service.associations.events import (
    BatchAuthorMatchesSuggestedV1,
    StudentMatchSuggestion,
    match_reasons,
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
    #: ``suggestions`` column's JSON (:func:`_ranking_json`).
    suggestions: str = "[]"
    #: ``auto`` when the auto-confirm policy decided the essay, else None (undecided).
    validation_method: ValidationMethod | None = None


def _ranked(
    suggestions: Iterable[StudentMatchSuggestion], members: Container[int]
) -> list[tuple[float, int, StudentMatchSuggestion]]:
    """(-confidence, student id's integer, suggestion) of the valid suggestions, one per
    student, best first. Plain tuples on integer keys: this runs for every ingested essay, and
    ``UUID.__hash__``, ``UUID.__eq__`` and a key function per item are Python calls."""
    valid = [(-s["confidence_score"], s["student_id"].int, s) for s in suggestions]
    valid = [item for item in valid if item[1] in members]
    if len(valid) > 1:
        # Never compares the suggestions themselves: equal (confidence, student) pairs are
        # the same student twice, and the first of them is kept.
        valid.sort(key=_RANK_KEY)
        if len({item[1] for item in valid}) < len(valid):
            seen: set[int] = set()
            unique = []
            for item in valid:  # the first of a student in rank order: its highest confidence
                if item[1] not in seen:
                    seen.add(item[1])
                    unique.append(item)
            valid = unique
    return valid


_RANK_KEY = itemgetter(0, 1)


def _ranking_json(ranked: Sequence[tuple[float, int, StudentMatchSuggestion]]) -> str:
    """The stored ranking (the ``suggestions`` jsonb column, read back by
    :meth:`RankedSuggestion.all_from_json`): ``[{student_id, confidence_score,
    match_reasons}, ...]``. Written out directly: it runs for every ingested essay, and
    ``json.dumps`` of the equivalent dicts costs several times as much."""
    return (
        "["
        + ",".join(
            [
                f"{_student_prefix(key)}{-negated!r},"
                f'"match_reasons":{_reasons_json(match_reasons(s))}}}'
                for negated, key, s in ranked
            ]
        )
        + "]"
    )


@lru_cache(maxsize=65536)
def _student_prefix(key: int) -> str:
    # The same students recur across a class's essays, and str(UUID) costs ~1 us; keyed by the
    # integer, whose hash is native (UUID.__hash__ is Python code).
    return f'{{"student_id":"{uuid.UUID(int=key)}","confidence_score":'


@lru_cache(maxsize=4096)
def _reasons_json(reasons: tuple[str, ...]) -> str:
    # Few distinct reason lists recur across essays: encode each once.
    return json.dumps(list(reasons))


def plan_associations(
    event_id: uuid.UUID,
    payload: BatchAuthorMatchesSuggestedV1,
    class_members: Set[uuid.UUID],
    auto_confirm: AutoConfirmPolicy | None = None,
) -> list[PlannedAssociation]:
    """One planned row per distinct essay of the event, in the event's essay order."""
    # By the essay id's integer (see _ranked): (essay id, filename, suggestions).
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

    # The row names the class member's own id object, not the one decoded with each suggestion:
    # the decoded ids are freed with the event instead of living on in the plan (which the
    # collector walks), and asyncpg encodes its own UUIDs (the roster's) natively.
    members = {member.int: member for member in class_members}
    planned: list[PlannedAssociation] = []
    for essay_id, filename, candidates in essays.values():
        ranked = _ranked(candidates, members)
        best = ranked[0][2] if ranked else None
        automatic = auto_confirm is not None and auto_confirm.confirms(
            [-negated for negated, _, _ in ranked[:2]]
        )
        if automatic:
            status = AssociationStatus.CONFIRMED
        elif best is not None:
            status = AssociationStatus.PENDING_VALIDATION
        else:
            status = AssociationStatus.NO_MATCH
        # Positional, in the fields' order: keyword arguments cost a named tuple twice as much,
        # ~10 ms per 1,000 events (30,000 essays).
        planned.append(
            PlannedAssociation(
                essay_id,
                payload.batch_id,
                payload.class_id,
                members[ranked[0][1]] if ranked else None,
                best["confidence_score"] if best else None,
                match_reasons(best) if best else (),
                filename,
                status,
                event_id,
                _ranking_json(ranked),
                ValidationMethod.AUTO if automatic else None,
            )
        )
    return planned
