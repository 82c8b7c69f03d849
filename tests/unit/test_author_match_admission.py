"""The pure admission rules of an event into its batch (no servers)."""

from __future__ import annotations

import uuid

from class_management_service.associations.admission import BatchState, Candidate, admit
from class_management_service.associations.domain import AssociationStatus
from class_management_service.associations.selection import PlannedAssociation

CLASS_A, CLASS_B = uuid.UUID(int=1), uuid.UUID(int=2)
BATCH_1, BATCH_2 = uuid.UUID(int=11), uuid.UUID(int=12)
E1, E2, E3 = uuid.UUID(int=101), uuid.UUID(int=102), uuid.UUID(int=103)


def candidate(batch: uuid.UUID, class_id: uuid.UUID, *essays: uuid.UUID) -> Candidate:
    event_id = uuid.uuid4()
    return Candidate(
        event_id,
        batch,
        class_id,
        [
            PlannedAssociation(
                essay_id=essay_id,
                batch_id=batch,
                class_id=class_id,
                student_id=None,
                confidence_score=None,
                match_reasons=(),
                filename=None,
                status=AssociationStatus.NO_MATCH,
                source_event_id=event_id,
            )
            for essay_id in essays
        ],
    )


def test_a_new_batch_is_accepted_whole() -> None:
    new = candidate(BATCH_1, CLASS_A, E1, E2)
    rows, rejected = admit([new], BatchState())
    assert [row.essay_id for row in rows] == [E1, E2]
    assert rejected == {}


def test_late_essays_join_an_open_batch_and_known_ones_are_not_inserted_again() -> None:
    state = BatchState(batch_classes={BATCH_1: {CLASS_A}}, essay_batches={E1: BATCH_1})
    rows, rejected = admit([candidate(BATCH_1, CLASS_A, E1, E2)], state)
    assert [row.essay_id for row in rows] == [E2]
    assert rejected == {}


def test_new_essays_for_a_finalized_batch_are_rejected_but_a_re_run_is_a_no_op() -> None:
    state = BatchState(
        batch_classes={BATCH_1: {CLASS_A}}, finalized={BATCH_1}, essay_batches={E1: BATCH_1}
    )
    re_run = candidate(BATCH_1, CLASS_A, E1)
    late = candidate(BATCH_1, CLASS_A, E1, E2)
    rows, rejected = admit([re_run, late], state)
    assert rows == []
    assert set(rejected) == {late.event_id}
    assert rejected[late.event_id].reason == "batch_already_finalized"
    assert str(E2) in rejected[late.event_id].error


def test_an_essay_already_in_another_batch_rejects_the_event_naming_both_batches() -> None:
    state = BatchState(batch_classes={BATCH_1: {CLASS_A}}, essay_batches={E1: BATCH_1})
    second = candidate(BATCH_2, CLASS_A, E2, E1)
    rows, rejected = admit([second], state)
    assert rows == []
    rejection = rejected[second.event_id]
    assert rejection.reason == "essay_in_other_batch"
    assert str(E1) in rejection.error
    assert str(BATCH_1) in rejection.error
    assert str(BATCH_2) in rejection.error


def test_a_batch_never_spans_two_classes() -> None:
    state = BatchState(batch_classes={BATCH_1: {CLASS_A}}, essay_batches={E1: BATCH_1})
    other_class = candidate(BATCH_1, CLASS_B, E2)
    rows, rejected = admit([other_class], state)
    assert rows == []
    assert rejected[other_class.event_id].reason == "batch_class_mismatch"
    assert str(CLASS_A) in rejected[other_class.event_id].error


def test_events_of_one_call_see_the_effects_of_the_ones_accepted_before_them() -> None:
    first = candidate(BATCH_1, CLASS_A, E1)
    same_essay_other_batch = candidate(BATCH_2, CLASS_A, E1)
    other_class_same_batch = candidate(BATCH_1, CLASS_B, E3)
    late_essay = candidate(BATCH_1, CLASS_A, E2)
    rows, rejected = admit(
        [first, same_essay_other_batch, other_class_same_batch, late_essay], BatchState()
    )
    assert [row.essay_id for row in rows] == [E1, E2]
    assert {event_id: r.reason for event_id, r in rejected.items()} == {
        same_essay_other_batch.event_id: "essay_in_other_batch",
        other_class_same_batch.event_id: "batch_class_mismatch",
    }


def test_a_rejected_event_leaves_no_trace_for_the_events_after_it() -> None:
    rejected_first = candidate(BATCH_1, CLASS_B, E2)
    state = BatchState(batch_classes={BATCH_1: {CLASS_A}}, essay_batches={E1: BATCH_1})
    # E2 was not taken by the rejected event, so another batch may have it.
    taker = candidate(BATCH_2, CLASS_A, E2)
    rows, rejected = admit([rejected_first, taker], state)
    assert set(rejected) == {rejected_first.event_id}
    assert [row.essay_id for row in rows] == [E2]
