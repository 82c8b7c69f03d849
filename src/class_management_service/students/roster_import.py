"""The roster import use case: a parsed roster applied to a class in one transaction, with a
fixed number of statements whatever its size."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import String, any_, bindparam, exists, select
from sqlalchemy import literal as sql_literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.classes.queries import class_not_found
from class_management_service.classes.read_only import ensure_writable
from class_management_service.db import sqlstate
from class_management_service.errors import Conflict
from class_management_service.messaging import topics
from class_management_service.notifications.outbox import notify_roster_imported
from class_management_service.observability.context import current_correlation_id
from class_management_service.outbox.writer import (
    OutboxCopyRecord,
    PendingEvent,
    copy_outbox_records,
    outbox_copy_records,
)
from class_management_service.students import bulk
from class_management_service.students.import_plan import ExistingStudent, ImportPlan, plan_import
from class_management_service.students.importer import ParsedRoster
from class_management_service.students.models import Student
from class_management_service.students.schemas import (
    ImportReportRows,
    ImportRowResult,
    ImportStatus,
    ImportTotals,
    RosterImportReport,
    StudentCreatedV1,
    StudentUpdatedV1,
)
from class_management_service.students.service import AGGREGATE_TYPE, UNIQUE_VIOLATION
from class_management_service.unit_of_work import UnitOfWork, lock_for_no_key_update


async def import_roster(
    uow: UnitOfWork,
    teacher_id: str,
    class_id: uuid.UUID,
    roster: ParsedRoster,
    *,
    report_rows: ImportReportRows = ImportReportRows.ALL,
) -> RosterImportReport:
    """Apply a parsed roster to a class in one transaction with a fixed number of statements."""
    session = uow.session
    correlation_id = current_correlation_id()
    # FOR NO KEY UPDATE serializes imports into the same class (two concurrent imports could
    # otherwise both create the same e-mail-less student), yet lets memberships of other
    # requests reference the class meanwhile.
    await lock_for_no_key_update(
        session,
        select(SchoolClass.id).where(
            SchoolClass.id == class_id, SchoolClass.created_by_user_id == teacher_id
        ),
        lambda: class_not_found(class_id),
    )
    await ensure_writable(session, teacher_id, [class_id])

    emails = [row.email for row in roster.rows if row.email is not None]
    by_email = await _students_by_email(session, teacher_id, class_id, emails)
    needs_name_matching = len(by_email) < len(roster.rows)
    members = await _class_members(session, teacher_id, class_id) if needs_name_matching else []
    plan = plan_import(roster.rows, by_email, members)

    # Building the events is pure CPU (most of an import's Python time): a worker thread does
    # it while PostgreSQL inserts the students, and the event loop stays free for others.
    outbox = asyncio.ensure_future(
        asyncio.to_thread(_import_outbox_records, plan, teacher_id, class_id, correlation_id)
    )
    try:
        await _write_students(session, teacher_id, class_id, plan)
    except BaseException:
        outbox.cancel()  # the thread runs to its end; its result is dropped
        raise
    await copy_outbox_records(session, await outbox)
    await notify_roster_imported(
        session,
        class_id=class_id,
        students_added=len(plan.creates) + sum(update.joins_class for update in plan.updates),
        correlation_id=correlation_id,
        now=datetime.now(UTC),
    )
    await uow.commit()
    return _import_report(class_id, roster, plan, report_rows)


async def _write_students(
    session: AsyncSession, teacher_id: str, class_id: uuid.UUID, plan: ImportPlan
) -> None:
    try:
        await bulk.insert_students(
            session, teacher_id, [(create.student_id, create.row) for create in plan.creates]
        )
        await bulk.update_students(session, teacher_id, plan.updates)
    except (bulk.EmailTakenMeanwhile, IntegrityError) as exc:
        # Only a concurrent request taking the same e-mails since the lookup can cause this.
        if isinstance(exc, IntegrityError) and sqlstate(exc) != UNIQUE_VIOLATION:
            raise
        raise Conflict("Some of these e-mails were taken meanwhile; retry the import.") from None
    await bulk.add_class_members(
        session,
        class_id,
        new_students=[create.student_id for create in plan.creates],
        existing_students=[update.student_id for update in plan.updates if update.joins_class],
    )


# The student columns of an ExistingStudent (its ``in_class`` is computed per query).
_EXISTING_STUDENT = (
    Student.id,
    Student.first_name,
    Student.last_name,
    Student.legal_full_name,
    Student.email,
)


async def _students_by_email(
    session: AsyncSession, teacher_id: str, class_id: uuid.UUID, emails: Sequence[str]
) -> dict[str, ExistingStudent]:
    if not emails:
        return {}
    in_class = exists().where(
        ClassMembership.class_id == class_id, ClassMembership.student_id == Student.id
    )
    rows = await session.execute(
        select(*_EXISTING_STUDENT, in_class.label("in_class"), Student.email_key).where(
            Student.created_by_user_id == teacher_id,
            # The roster's e-mails are in key form already (normalize_email). One array
            # parameter, not one bind per e-mail (PostgreSQL caps binds at 32767).
            Student.email_key == any_(bindparam("emails", list(emails), type_=ARRAY(String))),
        )
    )
    return {
        row.email_key: ExistingStudent(
            id=row.id,
            first_name=row.first_name,
            last_name=row.last_name,
            legal_full_name=row.legal_full_name,
            email=row.email,
            in_class=row.in_class,
        )
        for row in rows
    }


async def _class_members(
    session: AsyncSession, teacher_id: str, class_id: uuid.UUID
) -> list[ExistingStudent]:
    rows = await session.execute(
        select(*_EXISTING_STUDENT, sql_literal(True).label("in_class"))
        .join(ClassMembership, ClassMembership.student_id == Student.id)
        .where(ClassMembership.class_id == class_id, Student.created_by_user_id == teacher_id)
    )
    return [ExistingStudent(**row._asdict()) for row in rows]


def _import_outbox_records(
    plan: ImportPlan, teacher_id: str, class_id: uuid.UUID, correlation_id: uuid.UUID
) -> list[OutboxCopyRecord]:
    return outbox_copy_records(
        AGGREGATE_TYPE, _import_events(plan, teacher_id, class_id, correlation_id)
    )


def _import_events(
    plan: ImportPlan, teacher_id: str, class_id: uuid.UUID, correlation_id: uuid.UUID
) -> list[PendingEvent]:
    """One StudentCreatedV1 per created and one StudentUpdatedV1 per updated student.

    The fields all events share are validated once, in a template payload; each event only
    puts in its student's own values, which are validated strings already. (Building 50,000
    payload models one by one would cost more than all the SQL of the import.)
    """
    timestamp = datetime.now(UTC)
    class_ids = [str(class_id)]
    created = StudentCreatedV1(
        student_id="",  # per student, below
        first_name="",
        last_name="",
        student_email=None,
        class_ids=class_ids,
        created_by_user_id=teacher_id,
        correlation_id=correlation_id,
        timestamp=timestamp,
    ).model_dump(mode="json")
    updated = StudentUpdatedV1(
        student_id="",  # per student, below
        updated_by_user_id=teacher_id,
        correlation_id=correlation_id,
        timestamp=timestamp,
    ).model_dump(mode="json")
    events = []
    for create in plan.creates:
        student_id = str(create.student_id)
        payload = {
            **created,
            "student_id": student_id,
            "first_name": create.row.first_name,
            "last_name": create.row.last_name,
            "student_email": create.row.email,
        }
        events.append(PendingEvent(topics.STUDENT_CREATED, student_id, payload, correlation_id))
    for update in plan.updates:
        student_id = str(update.student_id)
        payload = {
            **updated,
            "student_id": student_id,
            "first_name": update.first_name,
            "last_name": update.last_name,
            "student_email": update.email,
            "add_class_ids": class_ids if update.joins_class else None,
        }
        events.append(PendingEvent(topics.STUDENT_UPDATED, student_id, payload, correlation_id))
    return events


def _import_report(
    class_id: uuid.UUID, roster: ParsedRoster, plan: ImportPlan, report_rows: ImportReportRows
) -> RosterImportReport:
    rejections = [*roster.rejections, *plan.rejections]
    # model_construct: our own typed values, up to 50,000 of them; validation adds nothing.
    results = [
        ImportRowResult.model_construct(
            row=rejection.row,
            status=ImportStatus.REJECTED,
            email=rejection.email,
            reason=rejection.reason,
        )
        for rejection in rejections
    ]
    if report_rows is ImportReportRows.ALL:
        outcomes = (
            [(ImportStatus.CREATED, c.student_id, c.row) for c in plan.creates]
            + [(ImportStatus.UPDATED, u.student_id, u.row) for u in plan.updates]
            + [(ImportStatus.UNCHANGED, u.student_id, u.row) for u in plan.unchanged]
        )
        results += [
            ImportRowResult.model_construct(
                row=row.row, status=status, student_id=student_id, email=row.email, reason=None
            )
            for status, student_id, row in outcomes
        ]
    results.sort(key=lambda result: result.row)
    return RosterImportReport(
        class_id=class_id,
        totals=ImportTotals(
            rows=roster.total_rows,
            created=len(plan.creates),
            updated=len(plan.updates),
            unchanged=len(plan.unchanged),
            rejected=len(rejections),
        ),
        ignored_columns=roster.ignored_columns,
        rows=results,
    )
