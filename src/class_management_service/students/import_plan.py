"""Roster import, the planning part (no I/O): :func:`plan_import` decides, given the students
that already exist, which rows create, update or leave a student unchanged. The use case then
applies the plan with a fixed handful of set-based statements, whatever the number of rows.

Matching rules (what makes a re-import idempotent):

- A row with an e-mail is the teacher's student with that e-mail. If there is none, but exactly
  one member of the class has the same name and no e-mail, the row is that student and the
  e-mail is added to them (a roster first imported without e-mails, then with).
- A row without an e-mail is the class member with the same first and last name
  (case-insensitive); several such members make it ambiguous (rejected). Otherwise it creates a
  student.
- Cells left empty never erase stored values.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from class_management_service.students.importer import Rejection, RosterRow, name_key


@dataclass(frozen=True, slots=True)
class ExistingStudent:
    id: uuid.UUID
    first_name: str
    last_name: str
    legal_full_name: str | None
    email: str | None
    in_class: bool


@dataclass(frozen=True, slots=True)
class PlannedCreate:
    student_id: uuid.UUID
    row: RosterRow


@dataclass(frozen=True, slots=True)
class PlannedUpdate:
    """New values for the fields that change (None: unchanged) and whether it joins the class."""

    student_id: uuid.UUID
    row: RosterRow
    first_name: str | None
    last_name: str | None
    legal_full_name: str | None
    email: str | None
    joins_class: bool


@dataclass(frozen=True, slots=True)
class PlannedUnchanged:
    student_id: uuid.UUID
    row: RosterRow


@dataclass(slots=True)
class ImportPlan:
    creates: list[PlannedCreate] = field(default_factory=list)
    updates: list[PlannedUpdate] = field(default_factory=list)
    unchanged: list[PlannedUnchanged] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def plan_import(
    rows: Sequence[RosterRow],
    existing_by_email: Mapping[str, ExistingStudent],
    class_members: Iterable[ExistingStudent],
) -> ImportPlan:
    """Decide each row's outcome. ``existing_by_email`` holds the teacher's students whose
    e-mails occur in ``rows``; ``class_members`` the class's students (only consulted for rows
    that need matching by name)."""
    members_by_name: defaultdict[tuple[str, str], list[ExistingStudent]] = defaultdict(list)
    for member in class_members:
        members_by_name[name_key(member.first_name, member.last_name)].append(member)
    plan = ImportPlan()
    row_of_student: dict[uuid.UUID, int] = {}
    for row in rows:
        namesakes = members_by_name.get(row.name_key, [])
        if row.email is not None:
            existing = existing_by_email.get(row.email)
            if existing is None:
                # Adopt the one namesake without an e-mail, unless another row already did.
                without_email = [member for member in namesakes if member.email is None]
                if len(without_email) == 1 and without_email[0].id not in row_of_student:
                    existing = without_email[0]
        elif len(namesakes) > 1:
            plan.rejections.append(
                Rejection(
                    row.row,
                    f"{len(namesakes)} students in the class have this name; add an e-mail",
                )
            )
            continue
        else:
            existing = namesakes[0] if namesakes else None

        if existing is None:
            plan.creates.append(PlannedCreate(uuid.uuid4(), row))
            continue
        if existing.id in row_of_student:
            plan.rejections.append(
                Rejection(
                    row.row,
                    f"is the same student as row {row_of_student[existing.id]}",
                    row.email,
                )
            )
            continue
        row_of_student[existing.id] = row.row
        _plan_existing(plan, row, existing)
    return plan


def _plan_existing(plan: ImportPlan, row: RosterRow, existing: ExistingStudent) -> None:
    def changed(new: str | None, old: str | None) -> str | None:
        # Empty cells never erase: None means "keep".
        return new if new is not None and new != old else None

    update = PlannedUpdate(
        student_id=existing.id,
        row=row,
        first_name=changed(row.first_name, existing.first_name),
        last_name=changed(row.last_name, existing.last_name),
        legal_full_name=changed(row.legal_full_name, existing.legal_full_name),
        email=changed(row.email, existing.email),
        joins_class=not existing.in_class,
    )
    if update.joins_class or any(
        value is not None
        for value in (update.first_name, update.last_name, update.legal_full_name, update.email)
    ):
        plan.updates.append(update)
    else:
        plan.unchanged.append(PlannedUnchanged(existing.id, row))
