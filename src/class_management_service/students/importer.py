"""Roster CSV import, the parsing part (no I/O): :func:`parse_roster` turns bytes into valid
rows and per-row rejections, or raises for a file that cannot be read at all. What the rows
change is decided in :mod:`.import_plan`.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from class_management_service.classes.schemas import storable_text
from class_management_service.errors import MalformedRequest, PayloadTooLarge, ValidationFailed
from class_management_service.students.schemas import (
    LEGAL_NAME_MAX_LENGTH,
    NAME_MAX_LENGTH,
    normalize_email,
)

MAX_ROWS = 50_000

FIRST_NAME = "first_name"
LAST_NAME = "last_name"
LEGAL_FULL_NAME = "legal_full_name"
EMAIL = "email"
REQUIRED_COLUMNS = (FIRST_NAME, LAST_NAME)

# Header spellings accepted for each column, compared case-insensitively with spaces and
# hyphens read as underscores ("First Name", "first-name", "E-mail"). Swedish spellings too,
# as Swedish schools export their rosters with them.
COLUMN_ALIASES: Mapping[str, tuple[str, ...]] = {
    FIRST_NAME: ("first_name", "firstname", "first", "given_name", "förnamn", "fornamn"),
    LAST_NAME: ("last_name", "lastname", "last", "surname", "family_name", "efternamn"),
    LEGAL_FULL_NAME: (
        "legal_full_name",
        "full_legal_name",
        "legal_name",
        "full_name",
        "fullständigt_namn",
    ),
    EMAIL: ("email", "e_mail", "email_address", "student_email", "e_post", "epost"),
}
_CANONICAL_COLUMN = {
    alias: column for column, aliases in COLUMN_ALIASES.items() for alias in aliases
}
# Spreadsheets in Swedish (and other comma-decimal) locales save CSV with semicolons.
_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True, slots=True)
class RosterRow:
    row: int
    first_name: str
    last_name: str
    legal_full_name: str | None
    email: str | None

    @property
    def name_key(self) -> tuple[str, str]:
        return name_key(self.first_name, self.last_name)


@dataclass(frozen=True, slots=True)
class Rejection:
    row: int
    reason: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedRoster:
    rows: list[RosterRow]
    rejections: list[Rejection]
    ignored_columns: list[str]

    @property
    def total_rows(self) -> int:
        return len(self.rows) + len(self.rejections)


def name_key(first_name: str, last_name: str) -> tuple[str, str]:
    return first_name.casefold(), last_name.casefold()


class _RowError(Exception):
    """One row is invalid; the reason goes into the report, the import goes on."""


def parse_roster(data: bytes, *, max_rows: int = MAX_ROWS) -> ParsedRoster:
    """Valid rows and rejected ones; raises a ServiceError for a file unusable as a whole."""
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    rows: list[RosterRow] = []
    rejections: list[Rejection] = []
    try:
        header = next((record for record in reader if not _is_blank(record)), None)
        if header is None:
            raise ValidationFailed(
                "The CSV is empty: it needs a header row naming its columns.",
                {"accepted_headers": dict(COLUMN_ALIASES)},
            )
        columns, ignored = _map_header(header)
        last_line = reader.line_num
        for record in reader:
            first_line, last_line = last_line + 1, reader.line_num
            if _is_blank(record):
                continue
            if len(rows) + len(rejections) >= max_rows:
                raise PayloadTooLarge(
                    f"The CSV has more than {max_rows} student rows; split it into several files.",
                    {"max_rows": max_rows},
                )
            try:
                rows.append(_roster_row(record, first_line, columns, len(header)))
            except _RowError as exc:
                rejections.append(Rejection(first_line, str(exc)))
    except csv.Error as exc:
        raise MalformedRequest(
            f"The CSV is malformed near line {reader.line_num}: {exc}.",
            {"line": reader.line_num},
        ) from None
    unique_rows, duplicates = _reject_duplicates(rows)
    return ParsedRoster(unique_rows, rejections + duplicates, ignored)


def _decode(data: bytes) -> str:
    try:
        # utf-8-sig: spreadsheet programs often start UTF-8 files with a byte-order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(
            "The CSV is not valid UTF-8; save it as 'CSV UTF-8'.", {"byte_offset": exc.start}
        ) from None
    if "\x00" in text:
        raise MalformedRequest("The CSV contains NUL characters; it is not a text file.")
    return text


def _delimiter(text: str) -> str:
    """The delimiter used most on the first line (commas when it uses none)."""
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    counts = {delimiter: first_line.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _is_blank(record: Sequence[str]) -> bool:
    return all(not cell.strip() for cell in record)


def _map_header(header: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, raw in enumerate(header):
        column = _CANONICAL_COLUMN.get(re.sub(r"[\s\-]+", "_", raw.strip().casefold()))
        if column is None:
            if raw.strip():
                ignored.append(raw.strip())
            continue
        if column in columns:
            raise ValidationFailed(
                f"Two header columns mean {column}: "
                f"{header[columns[column]].strip()!r} and {raw.strip()!r}.",
                {"column": column},
            )
        columns[column] = index
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise ValidationFailed(
            "The header row must name the columns " + " and ".join(REQUIRED_COLUMNS) + ".",
            {"missing": missing, "accepted_headers": dict(COLUMN_ALIASES)},
        )
    return columns, ignored


def _roster_row(
    record: Sequence[str], line: int, columns: Mapping[str, int], width: int
) -> RosterRow:
    if len(record) > width and not _is_blank(record[width:]):
        raise _RowError(f"has {len(record)} fields but the header names {width}")

    def cell(column: str) -> str:
        index = columns.get(column)
        # Short rows are fine: spreadsheets drop trailing empty cells.
        return record[index].strip() if index is not None and index < len(record) else ""

    raw_email = cell(EMAIL)
    try:
        email = normalize_email(raw_email) if raw_email else None
    except ValueError as exc:
        raise _RowError(f"{EMAIL} {exc}") from None
    return RosterRow(
        row=line,
        first_name=_text(cell(FIRST_NAME), FIRST_NAME, NAME_MAX_LENGTH),
        last_name=_text(cell(LAST_NAME), LAST_NAME, NAME_MAX_LENGTH),
        legal_full_name=_text(cell(LEGAL_FULL_NAME), LEGAL_FULL_NAME, LEGAL_NAME_MAX_LENGTH)
        or None,
        email=email,
    )


def _text(value: str, column: str, max_length: int) -> str:
    if not value and column in REQUIRED_COLUMNS:
        raise _RowError(f"{column} is empty")
    if len(value) > max_length:
        raise _RowError(f"{column} is longer than {max_length} characters")
    try:
        return storable_text(value)
    except ValueError as exc:
        raise _RowError(f"{column} {exc}") from None


def _reject_duplicates(rows: Iterable[RosterRow]) -> tuple[list[RosterRow], list[Rejection]]:
    """One row per e-mail (the first wins); no e-mail-less row whose name another row shares."""
    rows = list(rows)
    name_counts = Counter(row.name_key for row in rows)
    first_row_of_email: dict[str, int] = {}
    kept: list[RosterRow] = []
    rejected: list[Rejection] = []
    for row in rows:
        if row.email is None:
            if name_counts[row.name_key] > 1:
                rejected.append(
                    Rejection(row.row, "another row has the same name; add an e-mail to each")
                )
                continue
        elif row.email in first_row_of_email:
            rejected.append(
                Rejection(
                    row.row,
                    f"duplicate e-mail (also on row {first_row_of_email[row.email]})",
                    row.email,
                )
            )
            continue
        else:
            first_row_of_email[row.email] = row.row
        kept.append(row)
    return kept, rejected
