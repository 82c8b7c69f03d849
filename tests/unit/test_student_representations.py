"""Each student field is spelled once per representation: the others are derived from it, and
these tests check that the derivations line up (no database needed)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from class_management_service.students.models import Student
from class_management_service.students.queries import owned_students
from class_management_service.students.schemas import (
    MEMBERSHIP_FIELDS,
    PersonName,
    PersonNameResponse,
    PersonNameUpdate,
    StudentCreate,
    StudentResponse,
    StudentUpdate,
)

pytestmark = pytest.mark.unit

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
