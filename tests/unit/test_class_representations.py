"""The rendered class select is derived from the response model; this checks they line up."""

from __future__ import annotations

from class_management_service.classes.queries import owned_classes
from class_management_service.classes.schemas import ClassResponse


def test_the_rendered_select_has_the_response_fields_in_order() -> None:
    assert list(owned_classes().selected_columns.keys()) == list(ClassResponse.model_fields)
