"""Wire shapes of the students feature: request bodies, responses, import report, event payloads."""

from __future__ import annotations

import enum
import re
import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from class_management_service.classes.schemas import (
    CONTROL_CHARACTERS,
    VISIBLE_TEXT,
    storable_text,
)
from class_management_service.http.page_schemas import NextCursor, Pagination

NAME_MAX_LENGTH = 100
LEGAL_NAME_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 255
# Enough for any real request; bounds the work (and the lock set) of one call.
MAX_CLASS_IDS = 100
# Request fields that name classes to join or leave; every other field is a student column.
MEMBERSHIP_FIELDS = frozenset({"class_ids", "add_class_ids", "remove_class_ids"})

# Deliberately permissive (one @, a dot in the domain, no whitespace), checked on the address as
# typed: the address is an identifier here, never mailed to, and over-strict checks reject real
# international addresses. The fullwidth and small forms of "@" and "." count as them (NFKC makes
# them the same key); the key itself is not re-checked, as NFKC may turn a letter into a space and
# a combining mark (U+00A8).
_AT = "@\uff20\ufe6b"
_DOT = ".\uff0e\ufe52"
_EMAIL = re.compile(f"[^{_AT}\\s]+[{_AT}][^{_AT}\\s]+[{_DOT}][^{_AT}\\s]+")

# Unicode's Default_Ignorable_Code_Point characters (zero-width spaces and joiners, soft hyphen,
# direction marks, variation selectors, tags...): invisible, so never what tells two addresses
# apart. The same class (a regex both Python and PostgreSQL read) is in the database's
# normalized_email() of migration 0002; tests check the two functions agree.
INVISIBLE_CHARACTERS = (
    "[\\u00AD\\u034F\\u061C\\u115F\\u1160\\u17B4\\u17B5\\u180B-\\u180F\\u200B-\\u200F"
    "\\u202A-\\u202E\\u2060-\\u206F\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0\\uFFF0-\\uFFF8"
    "\\U0001BCA0-\\U0001BCA3\\U0001D173-\\U0001D17A\\U000E0000-\\U000E0FFF]"
)
_INVISIBLE = re.compile(INVISIBLE_CHARACTERS)
# What PostgreSQL's btrim is given: ASCII whitespace (NFKC has made other spaces U+0020).
_TRIMMED = " \t\n\r\f\v"


def email_key(raw: str) -> str:
    """The form two addresses are compared in, the same as the database's
    ``normalized_email()``: invisible characters removed, NFKC (fullwidth letters, ligatures,
    composed/decomposed accents become one form), trimmed, case-folded (upper then lower case:
    ``ß`` and ``SS`` meet), NFKC again (case mapping may decompose)."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", _INVISIBLE.sub("", raw)))
    return unicodedata.normalize("NFKC", text.strip(_TRIMMED).upper().lower())


def normalize_email(raw: str) -> str:
    """The address in its :func:`email_key` form, so one address is one student per teacher
    however it is typed (the database enforces it too)."""
    if not _EMAIL.fullmatch(raw.strip()):
        raise ValueError("is not an e-mail address")
    email = storable_text(email_key(raw))
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValueError(f"must be at most {EMAIL_MAX_LENGTH} characters")
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
_EMAIL_PART = f"[^{_AT}\\s{CONTROL_CHARACTERS}]+"
Email = Annotated[
    str,
    Field(
        max_length=EMAIL_MAX_LENGTH,
        description=(
            "Stored normalised (NFKC, case-folded, invisible characters removed); unique among "
            "one teacher's students in that form."
        ),
        examples=["anna.svensson@example.com"],
        json_schema_extra={
            "pattern": f"^\\s*{_EMAIL_PART}[{_AT}]{_EMAIL_PART}[{_DOT}]{_EMAIL_PART}\\s*$"
        },
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


class PersonNameUpdate(BaseModel):
    """The name fields to change; those left out (or null) keep their value."""

    first_name: NamePart | None = Field(default=None, examples=["Anna"])
    last_name: NamePart | None = Field(default=None, examples=["Berg"])
    legal_full_name: LegalFullName | None = Field(default=None, examples=["Anna Maria Berg"])


class StudentCreate(BaseModel):
    person_name: PersonName
    email: Email | None = None
    class_ids: ClassIds | None = None


class StudentUpdate(BaseModel):
    """Omitted or null fields keep their value (an e-mail cannot be removed, only replaced).

    ``person_name`` changes only the name fields it contains.
    """

    person_name: PersonNameUpdate | None = None
    email: Email | None = None
    add_class_ids: ClassIds | None = None
    remove_class_ids: ClassIds | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                # Partial: only the first name and the e-mail change. (An example naming a
                # class would name one no caller owns: a 404.)
                {"person_name": {"first_name": "Anna"}, "email": "anna.berg@example.com"}
            ]
        }
    )


class PersonNameResponse(BaseModel):
    first_name: str
    last_name: str
    legal_full_name: str | None


class StudentResponse(BaseModel):
    """The nested ``person_name`` and, for the platform's clients, the same names flat."""

    id: uuid.UUID
    full_name: str = Field(description="First and last name.", examples=["Anna Svensson"])
    first_name: str
    last_name: str
    person_name: PersonNameResponse
    email: str | None
    class_ids: list[uuid.UUID] = Field(description="The student's classes (sorted by id).")
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None = Field(
        description="When the personal data was erased (names are then a pseudonym); null: never."
    )


class StudentList(BaseModel):
    """One page of the teacher's students (the platform's list envelope)."""

    students: list[StudentResponse]
    pagination: Pagination
    next: NextCursor


class StudentDeleted(BaseModel):
    message: Literal["Student deleted successfully"] = "Student deleted successfully"


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


class StudentErasedV1(StudentUpdatedV1):
    """``StudentUpdatedV1`` of an erasure: the names are the pseudonym, and ``erased_fields``
    names every field erased (``student_email`` null here means removed, not "not changed")."""

    erased_fields: list[str]
