"""``data_rights.scrubbed_envelope``: what erasure rewrites in an outbox row (pure)."""

from __future__ import annotations

import uuid
from typing import Any

from class_management_service.students.data_rights import PSEUDONYM, scrubbed_envelope

STUDENT, OTHER = str(uuid.uuid4()), str(uuid.uuid4())


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event_type": "t", "data": data}


def test_the_students_own_events_keep_only_the_pseudonym_and_what_was_not_sent() -> None:
    created = _envelope(
        {"student_id": STUDENT, "first_name": "Ann", "last_name": "Ek", "student_email": "a@x.se"}
    )
    renamed = _envelope(
        {"student_id": STUDENT, "first_name": None, "last_name": "Berg", "student_email": None}
    )

    assert scrubbed_envelope(created, STUDENT)["data"] == {
        "student_id": STUDENT,
        "first_name": "Erased",
        "last_name": "student",
        "student_email": None,
    }
    # A field the event did not carry (null: not changed) stays null.
    assert scrubbed_envelope(renamed, STUDENT)["data"]["first_name"] is None
    assert scrubbed_envelope(renamed, STUDENT)["data"]["last_name"] == "student"
    assert scrubbed_envelope(created, OTHER) == created
    assert created["data"]["first_name"] == "Ann"  # the input is not changed


def test_a_notification_naming_the_student_loses_the_name_in_its_message_too() -> None:
    added = _envelope(
        {
            "teacher_id": "teacher-a",
            "payload": {
                "student_id": STUDENT,
                "student_name": "Ann Ek",
                "class_designation": "9A",
                "message": "Student 'Ann Ek' added to class '9A'",
            },
        }
    )
    imported = _envelope({"payload": {"student_id": None, "student_name": None, "message": "x"}})

    payload = scrubbed_envelope(added, STUDENT)["data"]["payload"]

    assert payload["student_name"] == PSEUDONYM
    assert payload["message"] == f"Student '{PSEUDONYM}' added to class '9A'"
    assert scrubbed_envelope(added, OTHER) == added
    assert scrubbed_envelope(imported, STUDENT) == imported
