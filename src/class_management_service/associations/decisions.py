"""The association state machine: every status change of an association is decided here.

Pure functions, no I/O: the service loads the rows, asks this module what changes, and writes the
answer back in one statement (with its history, :mod:`.history`). Nothing else in the code base
decides a status, except ingestion's choice for a new essay (:mod:`.selection`).

======================  ===========================  =========================================
from                    event                        to
======================  ===========================  =========================================
(new essay)             ingestion, policy clears     confirmed (auto) — :mod:`.selection` with
                                                     the policy of :mod:`.auto_confirm`
pending_validation      teacher confirms suggestion  confirmed (human)
pending_validation      teacher names other student  confirmed (human), student replaced
no_match                teacher names a student      confirmed (human)
no_match                teacher confirms "no         rejected (human): the essay has no
                        student" (student_id null)   student (the platform's "confirm as listed")
pending_validation,     teacher rejects              rejected (human), student cleared
no_match
confirmed, rejected     teacher changes their mind   confirmed / rejected (human) — only while
                                                     the batch is not finalized
pending_validation      timeout, confidence >= t     timeout_confirmed (timeout)
pending_validation      timeout, confidence < t      rejected (timeout), student cleared
no_match                timeout                      rejected (timeout)
any                     same decision again          no change (idempotent)
any (batch finalized)   a different decision         conflict (HTTP 409)
======================  ===========================  =========================================

An essay is *decided* when its status is confirmed, rejected or timeout_confirmed. ``no_match``
is undecided on purpose: the teacher sees those essays and either names the author or rejects the
essay; until every essay is decided the batch stays open (or the timeout closes it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from class_management_service.associations.domain import (
    AssociationStatus,
    RankedSuggestion,
    ValidationMethod,
)

UNDECIDED_STATUSES = frozenset({AssociationStatus.PENDING_VALIDATION, AssociationStatus.NO_MATCH})
DECIDED_STATUSES = frozenset(
    {
        AssociationStatus.CONFIRMED,
        AssociationStatus.REJECTED,
        AssociationStatus.TIMEOUT_CONFIRMED,
    }
)
CONFIRMED_STATUSES = frozenset({AssociationStatus.CONFIRMED, AssociationStatus.TIMEOUT_CONFIRMED})


@dataclass(frozen=True)
class AssociationState:
    """What the state machine needs to know about one stored association."""

    essay_id: uuid.UUID
    status: AssociationStatus
    student_id: uuid.UUID | None
    confidence_score: float | None = None
    #: The essay's valid suggestions, ranked (stored at ingestion).
    suggestions: tuple[RankedSuggestion, ...] = ()


@dataclass(frozen=True)
class TeacherDecision:
    """One item of the confirm request: confirm (with a student) or reject an essay."""

    essay_id: uuid.UUID
    student_id: uuid.UUID | None
    confirmed: bool


@dataclass(frozen=True)
class Transition:
    """A change to write: the essay's new status and student, and who decided it."""

    essay_id: uuid.UUID
    status: AssociationStatus
    student_id: uuid.UUID | None
    validation_method: ValidationMethod


class DecisionError(Exception):
    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidDecision(DecisionError):
    """The request itself is wrong (unknown essay, student outside the roster, ...): a 422."""


class DecisionConflict(DecisionError):
    """The request contradicts a final decision: a 409."""


def is_decided(status: AssociationStatus) -> bool:
    return status in DECIDED_STATUSES


def batch_complete(states: Iterable[AssociationState]) -> bool:
    """True when no essay of the batch is left pending or without a decision."""
    return all(is_decided(state.status) for state in states)


def teacher_transition(
    state: AssociationState, decision: TeacherDecision, *, finalized: bool
) -> Transition | None:
    """The change one teacher decision makes to one association, or None when it changes nothing.

    Assumes the decision was validated (:func:`decide_for_teacher` checks essay, student, roster).
    Confirming ``student_id: null`` for an essay that has no student confirms "no student": the
    essay is decided without an author, exactly like a rejection.
    """
    if decision.confirmed and decision.student_id is not None:
        target_status, target_student = AssociationStatus.CONFIRMED, decision.student_id
        unchanged = state.status in CONFIRMED_STATUSES and state.student_id == target_student
    elif decision.confirmed and state.student_id is not None:
        raise InvalidDecision(
            "Confirming an essay that has a student needs a student_id.",
            {"essay_id": str(decision.essay_id)},
        )
    else:
        target_status, target_student = AssociationStatus.REJECTED, None
        unchanged = state.status == AssociationStatus.REJECTED
    if unchanged:
        return None
    if finalized or state.status == AssociationStatus.TIMEOUT_CONFIRMED:
        raise DecisionConflict(
            "The batch is already finalized; its decisions can no longer change.",
            {
                "essay_id": str(state.essay_id),
                "current_status": state.status.value,
                "current_student_id": str(state.student_id) if state.student_id else None,
            },
        )
    return Transition(
        essay_id=state.essay_id,
        status=target_status,
        student_id=target_student,
        validation_method=ValidationMethod.HUMAN,
    )


def decide_for_teacher(
    states: Mapping[uuid.UUID, AssociationState],
    decisions: Sequence[TeacherDecision],
    *,
    roster: Set[uuid.UUID],
    finalized: bool,
) -> list[Transition]:
    """Validate a whole confirm request against the batch, then compute its changes.

    ``states`` are the batch's associations by essay id; ``roster`` holds (at least) the requested
    students who belong to the batch's class. Every problem of the request is reported at once:
    :class:`InvalidDecision` for bad input, else :class:`DecisionConflict` for changes to a
    finalized batch. Returns only real changes (repeated decisions are no-ops).
    """
    seen: set[uuid.UUID] = set()
    duplicates: list[str] = []
    unknown: list[str] = []
    missing_student: list[str] = []
    outside_roster: list[dict[str, str]] = []
    for decision in decisions:
        if decision.essay_id in seen:
            duplicates.append(str(decision.essay_id))
        seen.add(decision.essay_id)
        state = states.get(decision.essay_id)
        if state is None:
            unknown.append(str(decision.essay_id))
            continue
        if not decision.confirmed:
            continue
        if decision.student_id is None:
            if state.student_id is not None:
                # "No student" is only a confirmation for an essay that has none.
                missing_student.append(str(decision.essay_id))
        elif decision.student_id != state.student_id and decision.student_id not in roster:
            # Confirming the stored suggestion needs no roster check; naming anyone else does.
            outside_roster.append(
                {"essay_id": str(decision.essay_id), "student_id": str(decision.student_id)}
            )
    problems: dict[str, Any] = {}
    if unknown:
        problems["essays_not_in_batch"] = unknown
    if duplicates:
        problems["duplicate_essay_ids"] = duplicates
    if missing_student:
        problems["confirmations_without_student"] = missing_student
    if outside_roster:
        problems["students_not_in_class"] = outside_roster
    if problems:
        raise InvalidDecision("The decisions do not fit this batch.", problems)

    transitions: list[Transition] = []
    conflicts: list[dict[str, Any]] = []
    for decision in decisions:
        try:
            transition = teacher_transition(
                states[decision.essay_id], decision, finalized=finalized
            )
        except DecisionConflict as exc:
            conflicts.append(exc.details)
            continue
        if transition is not None:
            transitions.append(transition)
    if conflicts:
        raise DecisionConflict(
            "The batch is already finalized; its decisions can no longer change.",
            {"conflicts": conflicts},
        )
    return transitions


def timeout_transition(state: AssociationState, *, threshold: float) -> Transition | None:
    """What the validation timeout does to one association (None: it was already decided)."""
    if state.status == AssociationStatus.PENDING_VALIDATION:
        confidence = state.confidence_score if state.confidence_score is not None else 0.0
        if state.student_id is not None and confidence >= threshold:
            return Transition(
                essay_id=state.essay_id,
                status=AssociationStatus.TIMEOUT_CONFIRMED,
                student_id=state.student_id,
                validation_method=ValidationMethod.TIMEOUT,
            )
        # Too uncertain to attribute: the essay is left without a student (reported as null).
        return Transition(
            essay_id=state.essay_id,
            status=AssociationStatus.REJECTED,
            student_id=None,
            validation_method=ValidationMethod.TIMEOUT,
        )
    if state.status == AssociationStatus.NO_MATCH:
        return Transition(
            essay_id=state.essay_id,
            status=AssociationStatus.REJECTED,
            student_id=None,
            validation_method=ValidationMethod.TIMEOUT,
        )
    return None


def decide_timeout(states: Iterable[AssociationState], *, threshold: float) -> list[Transition]:
    """The timeout's changes to a batch: every undecided essay gets a decision."""
    return [
        transition
        for state in states
        if (transition := timeout_transition(state, threshold=threshold)) is not None
    ]


def apply_transitions(
    states: Mapping[uuid.UUID, AssociationState], transitions: Iterable[Transition]
) -> dict[uuid.UUID, AssociationState]:
    """The batch as it will be once the transitions are written."""
    result = dict(states)
    for transition in transitions:
        current = result[transition.essay_id]
        result[transition.essay_id] = AssociationState(
            essay_id=current.essay_id,
            status=transition.status,
            student_id=transition.student_id,
            confidence_score=current.confidence_score,
        )
    return result


def summarize(states: Iterable[AssociationState]) -> dict[str, int]:
    """The event's ``validation_summary``: confirmed includes timeout-confirmed essays."""
    total = confirmed = rejected = 0
    for state in states:
        total += 1
        if state.status in CONFIRMED_STATUSES:
            confirmed += 1
        elif state.status in (AssociationStatus.REJECTED, AssociationStatus.NO_MATCH):
            rejected += 1
    return {"total_associations": total, "confirmed": confirmed, "rejected": rejected}
