"""The pure choice of a suggested author per essay (no servers)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.events import BatchAuthorMatchesSuggestedV1
from class_management_service.associations.selection import plan_associations

# Ordered ids, so "lowest student id" is easy to state.
S1 = uuid.UUID(int=1)
S2 = uuid.UUID(int=2)
S3 = uuid.UUID(int=3)
OUTSIDER = uuid.UUID(int=99)
MEMBERS = frozenset({S1, S2, S3})


def payload(*essays: dict[str, Any]) -> BatchAuthorMatchesSuggestedV1:
    return BatchAuthorMatchesSuggestedV1.model_validate(
        {
            "batch_id": str(uuid.uuid4()),
            "class_id": str(uuid.uuid4()),
            "match_results": list(essays),
        }
    )


def essay(
    essay_id: uuid.UUID, *suggestions: tuple[uuid.UUID, float], **extra: Any
) -> dict[str, Any]:
    return {
        "essay_id": str(essay_id),
        "text_storage_id": "t",
        "filename": f"{essay_id}.txt",
        "suggestions": [
            {
                "student_id": str(student),
                "student_name": "n",
                "confidence_score": confidence,
                "match_reasons": [f"reason-{confidence}"],
            }
            for student, confidence in suggestions
        ],
        **extra,
    }


def chosen(
    *suggestions: tuple[uuid.UUID, float], members: frozenset[uuid.UUID] = MEMBERS
) -> uuid.UUID | None:
    """The student the plan picks for one essay suggested these, in this order."""
    [row] = plan_associations(uuid.uuid4(), payload(essay(uuid.uuid4(), *suggestions)), members)
    return row.student_id


def test_highest_confidence_wins_regardless_of_list_order() -> None:
    ascending = [(S1, 0.2), (S2, 0.5), (S3, 0.9)]
    for order in (ascending, ascending[::-1], [ascending[1], ascending[2], ascending[0]]):
        assert chosen(*order) == S3


def test_tie_is_broken_by_lowest_student_id_in_any_order() -> None:
    tied = [(S3, 0.8), (S1, 0.8), (S2, 0.8)]
    for order in (tied, tied[::-1], [tied[1], tied[0], tied[2]]):
        assert chosen(*order) == S1


def test_students_outside_the_class_are_ignored_even_with_higher_confidence() -> None:
    assert chosen((OUTSIDER, 0.99), (S2, 0.4)) == S2


def test_no_valid_suggestion_gives_none() -> None:
    assert chosen() is None
    assert chosen((OUTSIDER, 0.9)) is None
    assert chosen((S1, 0.9), members=frozenset()) is None


def test_zero_confidence_member_still_beats_nothing() -> None:
    assert chosen((S2, 0.0)) == S2


def test_plan_has_one_row_per_essay_with_status_and_fields() -> None:
    e1, e2, e3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    event_id = uuid.uuid4()
    data = payload(
        essay(e1, (S1, 0.3), (S2, 0.7)),
        essay(e2, (OUTSIDER, 0.95)),
        essay(e3, no_match_reason="no name found"),
    )
    plans = {plan.essay_id: plan for plan in plan_associations(event_id, data, MEMBERS)}

    assert list(plans) == [e1, e2, e3]
    matched = plans[e1]
    assert matched.status is AssociationStatus.PENDING_VALIDATION
    assert matched.student_id == S2
    assert matched.confidence_score == 0.7
    assert matched.match_reasons == ("reason-0.7",)
    assert matched.filename == f"{e1}.txt"
    assert matched.batch_id == data.batch_id
    assert matched.class_id == data.class_id
    assert matched.source_event_id == event_id
    for essay_id in (e2, e3):
        unmatched = plans[essay_id]
        # The check constraint: no student exactly when the status is studentless.
        assert unmatched.status is AssociationStatus.NO_MATCH
        assert unmatched.student_id is None
        assert unmatched.confidence_score is None
        assert unmatched.match_reasons == ()


def test_an_essay_listed_twice_is_planned_once_from_all_its_suggestions() -> None:
    e1 = uuid.uuid4()
    data = payload(essay(e1, (S3, 0.4)), essay(e1, (S2, 0.6)))
    plans = plan_associations(uuid.uuid4(), data, MEMBERS)
    assert len(plans) == 1
    assert plans[0].student_id == S2


def test_empty_batch_plans_nothing() -> None:
    assert plan_associations(uuid.uuid4(), payload(), MEMBERS) == []


def test_plan_is_deterministic() -> None:
    data = payload(*(essay(uuid.uuid4(), (S3, 0.5), (S1, 0.5), (S2, 0.5)) for _ in range(20)))
    event_id = uuid.uuid4()
    assert plan_associations(event_id, data, MEMBERS) == plan_associations(event_id, data, MEMBERS)
    assert {plan.student_id for plan in plan_associations(event_id, data, MEMBERS)} == {S1}


def test_the_stored_ranking_keeps_each_member_once_best_first() -> None:
    e1 = uuid.uuid4()
    data = payload(essay(e1, (S2, 0.4), (OUTSIDER, 0.9), (S3, 0.6), (S2, 0.8), (S1, 0.6)))
    [plan] = plan_associations(uuid.uuid4(), data, MEMBERS)
    assert (plan.student_id, plan.confidence_score, plan.match_reasons) == (
        S2,
        0.8,
        ("reason-0.8",),
    )
    assert json.loads(plan.suggestions) == [
        {"student_id": str(student), "confidence_score": confidence, "match_reasons": [reason]}
        for student, confidence, reason in (
            (S2, 0.8, "reason-0.8"),
            (S1, 0.6, "reason-0.6"),
            (S3, 0.6, "reason-0.6"),
        )
    ]
