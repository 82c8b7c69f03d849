"""Wire shapes of the classes feature: request bodies, responses and CRUD event payloads."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from class_management_service.courses.domain import CourseCode
from class_management_service.http.page_schemas import NextCursor, Pagination

# C0/C1 control characters (tabs and newlines included): never part of a name, and NUL cannot
# be stored by PostgreSQL at all (it would surface as a 500 instead of a 422).
CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f"
_CONTROL_CHARACTERS = re.compile(f"[{CONTROL_CHARACTERS}]")
# The same rules as OpenAPI declares them (JSON Schema `pattern`, enforced by storable_text and
# the strip + min_length of the types below): no control character; a name has a visible one.
_NO_CONTROL_CHARACTERS = {"pattern": f"^[^{CONTROL_CHARACTERS}]*$"}
VISIBLE_TEXT = {
    "pattern": f"^[^{CONTROL_CHARACTERS}]*[^\\s{CONTROL_CHARACTERS}][^{CONTROL_CHARACTERS}]*$"
}


def storable_text(value: str) -> str:
    """Reject text that PostgreSQL cannot store or that no name or e-mail ever contains."""
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # JSON allows lone surrogate escapes ("\ud800"), which have no UTF-8 encoding.
        raise ValueError("must be valid Unicode text") from None
    return value


ClassName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(storable_text),
    Field(json_schema_extra=VISIBLE_TEXT),
]
# Free-text filters share the name rules (a filter longer than any name matches nothing anyway).
SearchText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=255),
    AfterValidator(storable_text),
    Field(json_schema_extra=_NO_CONTROL_CHARACTERS),
]
ExactlyOneCourse = Annotated[
    list[CourseCode],
    Field(
        min_length=1,
        max_length=1,
        description="Exactly one course code (the platform's list shape, one element).",
        examples=[["ENG5"]],
    ),
]


class ClassCreate(BaseModel):
    name: ClassName = Field(description="The class designation, 1..100 characters.")
    course_codes: ExactlyOneCourse

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "9A English", "course_codes": ["ENG5"]}]}
    )


class ClassUpdate(BaseModel):
    """Fields left out (or null) keep their current value."""

    name: ClassName | None = Field(default=None, description="New class designation.")
    course_codes: ExactlyOneCourse | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "9B English"}]})


class ClassResponse(BaseModel):
    id: uuid.UUID
    name: str
    course_code: CourseCode
    course_name: str = Field(examples=["English 5"])
    student_count: int = Field(ge=0, description="Students currently in the class.")
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = Field(
        description="When the class was archived (read-only, hidden from lists); null: active."
    )


class ClassList(BaseModel):
    """One page of the teacher's classes (the platform's list envelope)."""

    classes: list[ClassResponse]
    pagination: Pagination
    next: NextCursor


class ClassDeleted(BaseModel):
    message: Literal["Class deleted successfully"] = "Class deleted successfully"


class ArchiveReport(BaseModel):
    """What a bulk archive of one course's classes did."""

    course_code: CourseCode
    archived: int = Field(ge=0, description="Classes archived by this request.")
    class_ids: list[uuid.UUID] = Field(description="Those classes (sorted by id).")


class ClassSort(enum.StrEnum):
    """Allowed ``sort`` values; a leading ``-`` sorts descending."""

    NAME = "name"
    NAME_DESC = "-name"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"


class ClassCreatedV1(BaseModel):
    """Payload of ``huleedu.class.created.v1``."""

    event: Literal["class.created"] = "class.created"
    class_id: str
    class_designation: str
    course_codes: list[CourseCode]
    user_id: str
    correlation_id: uuid.UUID
    timestamp: datetime


class ClassUpdatedV1(BaseModel):
    """Payload of ``huleedu.class.updated.v1``: null means "not changed"."""

    event: Literal["class.updated"] = "class.updated"
    class_id: str
    class_designation: str | None
    course_codes: list[CourseCode] | None
    user_id: str
    correlation_id: uuid.UUID
    timestamp: datetime


class ClassArchiveChangedV1(ClassUpdatedV1):
    """``ClassUpdatedV1`` of an archive or unarchive: name and course unchanged (null), plus the
    new state (``archived_at`` null: active again)."""

    archived: bool
    archived_at: datetime | None
