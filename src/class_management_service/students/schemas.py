"""Wire shapes of the students feature: request bodies, responses, import report, event payloads."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from class_management_service.classes.schemas import (
    CONTROL_CHARACTERS,
    VISIBLE_TEXT,
    storable_text,
)

NAME_MAX_LENGTH = 100
LEGAL_NAME_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 255
# Enough for any real request; bounds the work (and the lock set) of one call.
MAX_CLASS_IDS = 100

# Deliberately permissive (one @, a dot in the domain, no whitespace): the address is an
# identifier here, never mailed to, and over-strict checks reject real international addresses.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalize_email(raw: str) -> str:
    """Trimmed and lower-cased, so one address is one student per teacher however it is typed."""
    email = storable_text(raw.strip().lower())
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValueError(f"must be at most {EMAIL_MAX_LENGTH} characters")
    if not _EMAIL.fullmatch(email):
        raise ValueError("is not an e-mail address")
    return email


NamePart = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(storable_text),
    Field(json_schema_extra=VISIBLE_TEXT),
]
LegalFullName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=LEGAL_NAME_MAX_LENGTH),
    AfterValidator(storable_text),
    Field(json_schema_extra=VISIBLE_TEXT),
]
# normalize_email's rule for OpenAPI: surrounding whitespace, then one @ and a dot in the domain.
_EMAIL_PART = f"[^@\\s{CONTROL_CHARACTERS}]+"
Email = Annotated[
    str,
    Field(
        max_length=EMAIL_MAX_LENGTH,
        description="Stored trimmed and lower-cased; unique among one teacher's students.",
        examples=["anna.svensson@example.com"],
        json_schema_extra={"pattern": f"^\\s*{_EMAIL_PART}@{_EMAIL_PART}\\.{_EMAIL_PART}\\s*$"},
    ),
    AfterValidator(normalize_email),
]
ClassIds = Annotated[
    list[uuid.UUID],
    Field(max_length=MAX_CLASS_IDS, description="Ids of the calling teacher's own classes."),
]


class PersonName(BaseModel):
    first_name: NamePart = Field(examples=["Anna"])
    last_name: NamePart = Field(examples=["Svensson"])
    legal_full_name: LegalFullName | None = Field(default=None, examples=["Anna Maria Svensson"])


class StudentCreate(BaseModel):
    person_name: PersonName
    email: Email | None = None
    class_ids: ClassIds | None = None


class StudentUpdate(BaseModel):
    """Omitted or null fields keep their value (an e-mail cannot be removed, only replaced).

    ``person_name`` changes only the name fields it contains.
    """

    person_name: PersonName | None = None
    email: Email | None = None
    add_class_ids: ClassIds | None = None
    remove_class_ids: ClassIds | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "person_name": {"first_name": "Anna", "last_name": "Berg"},
                    "add_class_ids": ["0b0c5e4e-2f4a-4b0e-8f5e-3c9f1d2a7b61"],
                }
            ]
        }
    )


class PersonNameResponse(BaseModel):
    first_name: str
    last_name: str
    legal_full_name: str | None


class StudentResponse(BaseModel):
    id: uuid.UUID
    person_name: PersonNameResponse
    email: str | None
    class_ids: list[uuid.UUID] = Field(description="The student's classes (sorted by id).")
    created_at: datetime
    updated_at: datetime


class StudentSort(enum.StrEnum):
    """Allowed ``sort`` values; a leading ``-`` sorts descending. ``name`` is last, first name."""

    NAME = "name"
    NAME_DESC = "-name"
    EMAIL = "email"
    EMAIL_DESC = "-email"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"


class ImportStatus(enum.StrEnum):
    CREATED = "created"
    # An existing student whose names changed and/or who joined the class.
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


class ImportRowResult(BaseModel):
    row: int = Field(description="Line of the file where the record starts (the header is 1).")
    status: ImportStatus
    student_id: uuid.UUID | None = None
    email: str | None = None
    reason: str | None = Field(default=None, description="Why the row was rejected.")


class ImportTotals(BaseModel):
    rows: int = Field(ge=0, description="Data rows read (blank lines are not counted).")
    created: int = Field(ge=0)
    updated: int = Field(ge=0)
    unchanged: int = Field(ge=0)
    rejected: int = Field(ge=0)


class ImportReportRows(enum.StrEnum):
    ALL = "all"
    REJECTED = "rejected"


class RosterImportReport(BaseModel):
    class_id: uuid.UUID
    totals: ImportTotals
    ignored_columns: list[str] = Field(description="Header columns the importer does not know.")
    rows: list[ImportRowResult]


class StudentCreatedV1(BaseModel):
    """Payload of ``huleedu.class.student.created.v1``."""

    event: Literal["student.created"] = "student.created"
    student_id: str
    first_name: str
    last_name: str
    student_email: str | None
    class_ids: list[str]
    created_by_user_id: str
    correlation_id: uuid.UUID
    timestamp: datetime


class StudentUpdatedV1(BaseModel):
    """Payload of ``huleedu.class.student.updated.v1``: null means "not changed"."""

    event: Literal["student.updated"] = "student.updated"
    student_id: str
    first_name: str | None = None
    last_name: str | None = None
    student_email: str | None = None
    add_class_ids: list[str] | None = None
    remove_class_ids: list[str] | None = None
    updated_by_user_id: str
    correlation_id: uuid.UUID
    timestamp: datetime
