"""How a change is named in the history and what confidence a change of student brings (pure)."""

from __future__ import annotations

import uuid

import pytest

from class_management_service.associations.decisions import AssociationState, Transition
from class_management_service.associations.domain import AssociationStatus as S
from class_management_service.associations.domain import HistoryMethod as H
from class_management_service.associations.domain import RankedSuggestion
from class_management_service.associations.domain import ValidationMethod as M
from class_management_service.associations.history import Match, history_method, match_after

ESSAY = uuid.UUID(int=1)
SUGGESTED = uuid.UUID(int=10)
ALTERNATIVE = uuid.UUID(int=11)
UNSUGGESTED = uuid.UUID(int=12)
BEFORE = AssociationState(
    ESSAY,
    S.PENDING_VALIDATION,
    SUGGESTED,
    0.8,
    (
        RankedSuggestion(SUGGESTED, 0.8, ("name",)),
        RankedSuggestion(ALTERNATIVE, 0.6, ("initials",)),
    ),
)


@pytest.mark.parametrize(
    ("transition", "method", "match"),
    [
        (Transition(ESSAY, S.CONFIRMED, SUGGESTED, M.HUMAN), H.TEACHER_CONFIRM, Match(0.8, None)),
        (
            Transition(ESSAY, S.CONFIRMED, ALTERNATIVE, M.HUMAN),
            H.TEACHER_REASSIGN,
            Match(0.6, ("initials",)),
        ),
        (Transition(ESSAY, S.CONFIRMED, UNSUGGESTED, M.HUMAN), H.TEACHER_REASSIGN, Match(None, ())),
        (Transition(ESSAY, S.REJECTED, None, M.HUMAN), H.TEACHER_REJECT, Match(0.8, None)),
        (Transition(ESSAY, S.TIMEOUT_CONFIRMED, SUGGESTED, M.TIMEOUT), H.TIMEOUT, Match(0.8, None)),
        (Transition(ESSAY, S.REJECTED, None, M.TIMEOUT), H.TIMEOUT, Match(0.8, None)),
    ],
)
def test_method_and_match_of_a_change(transition: Transition, method: H, match: Match) -> None:
    assert history_method(BEFORE, transition) == method
    assert match_after(BEFORE, transition) == match


def test_a_no_student_confirmation_is_a_rejection() -> None:
    no_match = AssociationState(ESSAY, S.NO_MATCH, None)
    transition = Transition(ESSAY, S.REJECTED, None, M.HUMAN)
    assert history_method(no_match, transition) == H.TEACHER_REJECT
