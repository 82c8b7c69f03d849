"""The association state machine (pure): every transition, no-op and refusal."""

from __future__ import annotations

import uuid

import pytest

from class_management_service.associations.decisions import (
    AssociationState,
    DecisionConflict,
    InvalidDecision,
    TeacherDecision,
    Transition,
    apply_transitions,
    batch_complete,
    decide_for_teacher,
    decide_timeout,
    summarize,
    teacher_transition,
    timeout_transition,
)
from class_management_service.associations.domain import AssociationStatus as S
from class_management_service.associations.domain import ValidationMethod as M

ESSAY = uuid.uuid4()
SUGGESTED = uuid.uuid4()
OTHER = uuid.uuid4()


def state(
    status: S, student: uuid.UUID | None = SUGGESTED, confidence: float | None = 0.9
) -> AssociationState:
    if status in (S.NO_MATCH, S.REJECTED):
        student = None
    return AssociationState(ESSAY, status, student, confidence)


def confirm(student: uuid.UUID | None = SUGGESTED) -> TeacherDecision:
    return TeacherDecision(ESSAY, student, confirmed=True)


REJECT = TeacherDecision(ESSAY, None, confirmed=False)


@pytest.mark.parametrize(
    ("current", "decision", "expected_status", "expected_student"),
    [
        (S.PENDING_VALIDATION, confirm(), S.CONFIRMED, SUGGESTED),
        (S.PENDING_VALIDATION, confirm(OTHER), S.CONFIRMED, OTHER),  # reassign
        (S.PENDING_VALIDATION, REJECT, S.REJECTED, None),
        (S.NO_MATCH, confirm(OTHER), S.CONFIRMED, OTHER),
        (S.NO_MATCH, REJECT, S.REJECTED, None),
        # "No student" confirmed for an essay without a suggestion: decided, no author.
        (S.NO_MATCH, confirm(None), S.REJECTED, None),
        # Before finalization a teacher may change their mind.
        (S.CONFIRMED, REJECT, S.REJECTED, None),
        (S.CONFIRMED, confirm(OTHER), S.CONFIRMED, OTHER),
        (S.REJECTED, confirm(OTHER), S.CONFIRMED, OTHER),
    ],
)
def test_teacher_transitions(
    current: S, decision: TeacherDecision, expected_status: S, expected_student: uuid.UUID | None
) -> None:
    transition = teacher_transition(state(current), decision, finalized=False)
    assert transition == Transition(ESSAY, expected_status, expected_student, M.HUMAN)


@pytest.mark.parametrize("finalized", [False, True])
@pytest.mark.parametrize(
    ("current", "decision"),
    [
        (S.CONFIRMED, confirm()),
        (S.TIMEOUT_CONFIRMED, confirm()),
        (S.REJECTED, REJECT),
        (S.REJECTED, confirm(None)),
    ],
)
def test_repeating_a_decision_is_a_no_op(
    current: S, decision: TeacherDecision, finalized: bool
) -> None:
    assert teacher_transition(state(current), decision, finalized=finalized) is None


@pytest.mark.parametrize(
    ("current", "decision"),
    [
        (S.CONFIRMED, REJECT),
        (S.CONFIRMED, confirm(OTHER)),
        (S.REJECTED, confirm(OTHER)),
        (S.TIMEOUT_CONFIRMED, REJECT),
        (S.TIMEOUT_CONFIRMED, confirm(OTHER)),
    ],
)
def test_a_different_decision_after_finalization_conflicts(
    current: S, decision: TeacherDecision
) -> None:
    with pytest.raises(DecisionConflict):
        teacher_transition(state(current), decision, finalized=True)


def test_timeout_confirmed_is_final_even_without_the_flag() -> None:
    with pytest.raises(DecisionConflict):
        teacher_transition(state(S.TIMEOUT_CONFIRMED), REJECT, finalized=False)


@pytest.mark.parametrize("current", [S.PENDING_VALIDATION, S.CONFIRMED, S.TIMEOUT_CONFIRMED])
def test_confirm_without_student_is_invalid_for_an_essay_with_one(current: S) -> None:
    with pytest.raises(InvalidDecision):
        teacher_transition(state(current), confirm(None), finalized=False)


@pytest.mark.parametrize(
    ("current", "confidence", "expected"),
    [
        (S.PENDING_VALIDATION, 0.9, Transition(ESSAY, S.TIMEOUT_CONFIRMED, SUGGESTED, M.TIMEOUT)),
        (S.PENDING_VALIDATION, 0.7, Transition(ESSAY, S.TIMEOUT_CONFIRMED, SUGGESTED, M.TIMEOUT)),
        (S.PENDING_VALIDATION, 0.69, Transition(ESSAY, S.REJECTED, None, M.TIMEOUT)),
        (S.PENDING_VALIDATION, None, Transition(ESSAY, S.REJECTED, None, M.TIMEOUT)),
        (S.NO_MATCH, None, Transition(ESSAY, S.REJECTED, None, M.TIMEOUT)),
        (S.CONFIRMED, 0.1, None),
        (S.REJECTED, 0.99, None),
        (S.TIMEOUT_CONFIRMED, 0.99, None),
    ],
)
def test_timeout_transitions(
    current: S, confidence: float | None, expected: Transition | None
) -> None:
    assert timeout_transition(state(current, confidence=confidence), threshold=0.7) == expected


def _batch(*statuses: S) -> dict[uuid.UUID, AssociationState]:
    states = {}
    for status in statuses:
        essay = uuid.uuid4()
        student = None if status in (S.NO_MATCH, S.REJECTED) else uuid.uuid4()
        states[essay] = AssociationState(essay, status, student, 0.8)
    return states


def test_decide_for_teacher_reports_every_invalid_item_at_once() -> None:
    states = _batch(S.PENDING_VALIDATION, S.NO_MATCH, S.CONFIRMED)
    pending, no_match, confirmed = list(states)
    stranger = uuid.uuid4()
    with pytest.raises(InvalidDecision) as raised:
        decide_for_teacher(
            states,
            [
                TeacherDecision(uuid.uuid4(), None, confirmed=False),
                TeacherDecision(pending, stranger, confirmed=True),
                TeacherDecision(confirmed, None, confirmed=True),
                TeacherDecision(no_match, None, confirmed=True),
                TeacherDecision(no_match, None, confirmed=False),
            ],
            roster=set(),
            finalized=False,
        )
    details = raised.value.details
    assert len(details["essays_not_in_batch"]) == 1
    assert details["students_not_in_class"] == [
        {"essay_id": str(pending), "student_id": str(stranger)}
    ]
    assert details["confirmations_without_student"] == [str(confirmed)]
    assert details["duplicate_essay_ids"] == [str(no_match)]


def test_confirming_as_listed_decides_the_whole_batch() -> None:
    """The platform's harness confirms every essay with its listed student (null: none)."""
    states = _batch(S.PENDING_VALIDATION, S.NO_MATCH, S.PENDING_VALIDATION)
    as_listed = [TeacherDecision(s.essay_id, s.student_id, confirmed=True) for s in states.values()]
    transitions = decide_for_teacher(states, as_listed, roster=set(), finalized=False)
    after = apply_transitions(states, transitions)
    assert batch_complete(after.values())
    assert summarize(after.values()) == {"total_associations": 3, "confirmed": 2, "rejected": 1}


def test_invalid_input_wins_over_conflicts() -> None:
    states = _batch(S.CONFIRMED)
    (essay,) = states
    with pytest.raises(InvalidDecision):
        decide_for_teacher(
            states,
            [
                TeacherDecision(essay, None, confirmed=False),
                TeacherDecision(uuid.uuid4(), None, confirmed=False),
            ],
            roster=set(),
            finalized=True,
        )


def test_roster_is_needed_only_for_a_different_student() -> None:
    states = _batch(S.PENDING_VALIDATION, S.PENDING_VALIDATION)
    first, second = states.values()
    newcomer = uuid.uuid4()
    transitions = decide_for_teacher(
        states,
        [
            TeacherDecision(first.essay_id, first.student_id, confirmed=True),
            TeacherDecision(second.essay_id, newcomer, confirmed=True),
        ],
        roster={newcomer},
        finalized=False,
    )
    assert [(t.status, t.student_id) for t in transitions] == [
        (S.CONFIRMED, first.student_id),
        (S.CONFIRMED, newcomer),
    ]


def test_finalized_batch_accepts_repeats_and_refuses_changes() -> None:
    states = _batch(S.CONFIRMED, S.REJECTED)
    confirmed, rejected = states.values()
    repeat = [
        TeacherDecision(confirmed.essay_id, confirmed.student_id, confirmed=True),
        TeacherDecision(rejected.essay_id, None, confirmed=False),
    ]
    assert decide_for_teacher(states, repeat, roster=set(), finalized=True) == []
    with pytest.raises(DecisionConflict) as raised:
        decide_for_teacher(
            states,
            [TeacherDecision(confirmed.essay_id, None, confirmed=False)],
            roster=set(),
            finalized=True,
        )
    assert raised.value.details["conflicts"][0]["essay_id"] == str(confirmed.essay_id)


def test_completion_summary_and_timeout_of_a_whole_batch() -> None:
    states = _batch(S.PENDING_VALIDATION, S.NO_MATCH, S.CONFIRMED, S.REJECTED)
    assert not batch_complete(states.values())
    transitions = decide_timeout(states.values(), threshold=0.7)
    assert len(transitions) == 2  # decided essays keep their decision
    after = apply_transitions(states, transitions)
    assert batch_complete(after.values())
    assert summarize(after.values()) == {"total_associations": 4, "confirmed": 2, "rejected": 2}
