"""Each student field is spelled once per representation: the others are derived from it, and
these tests check that the derivations line up (no database needed)."""

from __future__ import annotations

import dataclasses
import uuid

from pydantic import BaseModel

from class_management_service.messaging import topics
from class_management_service.students.bulk import ROSTER_COLUMNS
from class_management_service.students.import_plan import (
    ExistingStudent,
    PlannedUpdate,
    plan_import,
)
from class_management_service.students.importer import RosterRow
from class_management_service.students.models import Student
from class_management_service.students.queries import owned_students
from class_management_service.students.roster_import import _import_events
from class_management_service.students.schemas import (
    MEMBERSHIP_FIELDS,
    PersonName,
    PersonNameResponse,
    PersonNameUpdate,
    StudentCreate,
    StudentCreatedV1,
    StudentResponse,
    StudentUpdate,
    StudentUpdatedV1,
)

_COLUMNS = set(Student.__table__.c.keys())


def test_the_rendered_select_has_the_response_fields_in_order() -> None:
    assert list(owned_students().selected_columns.keys()) == list(StudentResponse.model_fields)


def test_the_rendered_person_name_has_the_response_fields_in_order() -> None:
    sql = str(owned_students().compile())
    names = ", ".join(f"students.{name} AS {name}" for name in PersonNameResponse.model_fields)
    # Correlated to the student's row: no FROM of its own.
    assert f"FROM (SELECT {names}) AS n) AS person_name" in sql


def _column_fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields) - {"person_name", *MEMBERSHIP_FIELDS}


def test_every_written_request_field_is_a_student_column() -> None:
    for model in (StudentCreate, StudentUpdate, PersonName, PersonNameUpdate):
        assert _column_fields(model) <= _COLUMNS, model.__name__
    assert _column_fields(StudentCreate) == _column_fields(StudentUpdate)
    assert set(PersonName.model_fields) == set(PersonNameUpdate.model_fields)


def test_the_roster_columns_are_student_columns_and_planned_update_fields() -> None:
    assert set(ROSTER_COLUMNS) <= _COLUMNS
    assert set(ROSTER_COLUMNS) <= {field.name for field in dataclasses.fields(PlannedUpdate)}


def test_the_import_events_are_exactly_their_payload_models() -> None:
    class_id = uuid.uuid4()
    moved = ExistingStudent(uuid.uuid4(), "Erik", "Lind", None, None, in_class=False)
    rows = [
        RosterRow(2, "Anna", "Svensson", "Anna Maria Svensson", "anna@x.se"),
        RosterRow(3, "Erik", "Lindqvist", None, "erik@x.se"),
    ]
    plan = plan_import(rows, {"erik@x.se": moved}, [])
    assert (len(plan.creates), len(plan.updates)) == (1, 1)
    events = _import_events(plan, "teacher-a", class_id, uuid.uuid4())
    models: dict[str, type[BaseModel]] = {
        topics.STUDENT_CREATED: StudentCreatedV1,
        topics.STUDENT_UPDATED: StudentUpdatedV1,
    }
    for event in events:
        typed = models[event.topic].model_validate(event.data)
        # Validation drops unknown keys and fills missing defaults: equal means the same keys.
        assert typed.model_dump(mode="json") == event.data
    created, updated = (event.data for event in events)
    assert (created["first_name"], created["student_email"]) == ("Anna", "anna@x.se")
    assert (updated["last_name"], updated["student_email"]) == ("Lindqvist", "erik@x.se")
    assert updated["add_class_ids"] == [str(class_id)]
