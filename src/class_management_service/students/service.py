"""Use cases of the students feature: CRUD with class membership, and the roster import.

Every statement is scoped to the calling teacher (``created_by_user_id``), so another teacher's
student is indistinguishable from a missing one. Unique and foreign-key violations are answered
as 409s from the database's own verdict, so concurrent requests cannot turn them into 500s.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import asyncpg
from sqlalchemy import (
    Select,
    String,
    Uuid,
    any_,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy import literal as sql_literal
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.classes.service import class_not_found, ensure_owned_classes
from class_management_service.errors import Conflict, NotFound, ValidationFailed
from class_management_service.http.pagination import (
    PageRequest,
    contains,
    fetch_page,
    order_by,
    page_query,
)
from class_management_service.messaging import topics
from class_management_service.notifications.outbox import (
    notify_roster_imported,
    notify_student_added,
)
from class_management_service.observability.context import current_correlation_id
from class_management_service.outbox.writer import (
    PendingEvent,
    add_outbox_event,
    copy_outbox_records,
    outbox_copy_records,
)
from class_management_service.reads import (
    RawQuery,
    ReadOnlyDatabase,
    iso_timestamp,
    json_rows,
    session_driver,
)
from class_management_service.students import bulk
from class_management_service.students.importer import (
    ExistingStudent,
    ImportPlan,
    ParsedRoster,
    plan_import,
)
from class_management_service.students.models import Student
from class_management_service.students.schemas import (
    ImportReportRows,
    ImportRowResult,
    ImportStatus,
    ImportTotals,
    RosterImportReport,
    StudentCreate,
    StudentCreatedV1,
    StudentSort,
    StudentUpdate,
    StudentUpdatedV1,
)
from class_management_service.unit_of_work import UnitOfWork

AGGREGATE_TYPE = "student"

_UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"

_SORTABLE = {
    "name": func.lower(Student.last_name + " " + Student.first_name),
    "email": Student.email,
    "created_at": Student.created_at,
}


def student_not_found(student_id: uuid.UUID) -> NotFound:
    return NotFound("Student not found.", {"student_id": str(student_id)})


def _email_taken(email: str | None) -> Conflict:
    return Conflict("You already have a student with this e-mail.", {"email": email})


def _sqlstate(exc: IntegrityError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def _unique(ids: Iterable[uuid.UUID] | None) -> list[uuid.UUID]:
    """Duplicates removed, first-seen order kept."""
    return list(dict.fromkeys(ids or ()))


def _owned_students() -> Select[Any]:
    """Student rows shaped like :class:`StudentResponse` (its field names, nesting and JSON
    forms: the names both flat and nested), class ids included, in one query; parameter
    ``teacher_id``."""
    names = (
        select(Student.first_name, Student.last_name, Student.legal_full_name)
        .correlate(Student)
        .subquery("n")
    )
    person_name = select(func.row_to_json(names.table_valued())).scalar_subquery()
    class_ids = (
        select(
            func.array_agg(aggregate_order_by(ClassMembership.class_id, ClassMembership.class_id))
        )
        .where(ClassMembership.student_id == Student.id)
        .correlate(Student)
        .scalar_subquery()
    )
    return select(
        Student.id,
        (Student.first_name + " " + Student.last_name).label("full_name"),
        Student.first_name,
        Student.last_name,
        person_name.label("person_name"),
        Student.email,
        # array_agg over no memberships is NULL; the response has an empty list.
        func.coalesce(class_ids, literal_column("'{}'::uuid[]")).label("class_ids"),
        iso_timestamp(Student.created_at).label("created_at"),
        iso_timestamp(Student.updated_at).label("updated_at"),
    ).where(Student.created_by_user_id == bindparam("teacher_id", type_=String))


_STUDENT = RawQuery.of(
    json_rows(_owned_students().where(Student.id == bindparam("student_id", type_=Uuid)))
)
_OWNED_CLASS = RawQuery.of(
    select(SchoolClass.id).where(
        SchoolClass.id == bindparam("class_id", type_=Uuid),
        SchoolClass.created_by_user_id == bindparam("teacher_id", type_=String),
    )
)


@cache
def _list_queries(sort: StudentSort, by_class: bool, by_text: bool) -> RawQuery:
    """One compiled statement per filter combination (24 at most)."""
    statement = _owned_students()
    if by_class:
        statement = statement.where(
            Student.id.in_(
                select(ClassMembership.student_id).where(
                    ClassMembership.class_id == bindparam("class_id", type_=Uuid)
                )
            )
        )
    if by_text:
        pattern = bindparam("pattern", type_=String)
        statement = statement.where(
            or_(
                Student.first_name.ilike(pattern),
                Student.last_name.ilike(pattern),
                (Student.first_name + " " + Student.last_name).ilike(pattern),
                Student.email.ilike(pattern),
            )
        )
    return page_query(statement, order_by(sort, _SORTABLE, Student.id))


async def fetch_student(
    connection: asyncpg.Connection, teacher_id: str, student_id: uuid.UUID
) -> str:
    """The student as :class:`StudentResponse` JSON."""
    rendered: str | None = await _STUDENT.fetchval(
        connection, teacher_id=teacher_id, student_id=student_id
    )
    if rendered is None:
        raise student_not_found(student_id)
    return rendered


async def get_student(db: ReadOnlyDatabase, teacher_id: str, student_id: uuid.UUID) -> str:
    async with db.connection() as connection:
        return await fetch_student(connection, teacher_id, student_id)


async def list_students(
    db: ReadOnlyDatabase,
    teacher_id: str,
    page: PageRequest,
    *,
    sort: StudentSort,
    class_id: uuid.UUID | None = None,
    search: str | None = None,
) -> str:
    """A :class:`StudentList` page of the teacher's students as JSON; ``class_id`` narrows to
    one class (another teacher's: empty)."""
    async with db.connection() as connection:
        return await _list_students(connection, teacher_id, page, sort, class_id, search)


async def _list_students(
    connection: asyncpg.Connection,
    teacher_id: str,
    page: PageRequest,
    sort: StudentSort,
    class_id: uuid.UUID | None,
    search: str | None,
) -> str:
    query = _list_queries(sort, class_id is not None, bool(search))
    return await fetch_page(
        connection,
        query,
        page,
        "students",
        teacher_id=teacher_id,
        class_id=class_id,
        pattern=contains(search) if search else None,
    )


async def list_class_students(
    db: ReadOnlyDatabase,
    teacher_id: str,
    class_id: uuid.UUID,
    page: PageRequest,
    *,
    sort: StudentSort,
    search: str | None = None,
) -> str:
    """Like :func:`list_students` for one class, but 404 unless the teacher owns the class."""
    async with db.connection() as connection:
        owned = await _OWNED_CLASS.fetchval(connection, class_id=class_id, teacher_id=teacher_id)
        if owned is None:  # the same answer ensure_owned_classes gives
            raise NotFound("Class not found.", {"class_ids": [str(class_id)]})
        return await _list_students(connection, teacher_id, page, sort, class_id, search)


async def create_student(uow: UnitOfWork, teacher_id: str, request: StudentCreate) -> str:
    session = uow.session
    class_ids = _unique(request.class_ids)
    await ensure_owned_classes(session, teacher_id, class_ids, lock=True)
    name = request.person_name
    # ON CONFLICT DO NOTHING: a taken e-mail (even one committed a moment ago by a concurrent
    # request) is a clean "no row" rather than an aborted transaction.
    student_id = await session.scalar(
        insert(Student)
        .values(
            id=uuid.uuid4(),
            first_name=name.first_name,
            last_name=name.last_name,
            legal_full_name=name.legal_full_name,
            email=request.email,
            created_by_user_id=teacher_id,
        )
        .on_conflict_do_nothing(index_elements=[Student.created_by_user_id, Student.email_key])
        .returning(Student.id)
    )
    if student_id is None:
        raise _email_taken(request.email)
    if class_ids:
        await session.execute(
            insert(ClassMembership),
            [{"class_id": class_id, "student_id": student_id} for class_id in class_ids],
        )
    _publish(
        session,
        topics.STUDENT_CREATED,
        student_id,
        StudentCreatedV1(
            student_id=str(student_id),
            first_name=name.first_name,
            last_name=name.last_name,
            student_email=request.email,
            class_ids=[str(class_id) for class_id in class_ids],
            created_by_user_id=teacher_id,
            correlation_id=current_correlation_id(),
            timestamp=datetime.now(UTC),
        ),
    )
    await notify_student_added(
        session,
        class_ids=class_ids,
        student_id=student_id,
        first_name=name.first_name,
        last_name=name.last_name,
        correlation_id=current_correlation_id(),
        now=datetime.now(UTC),
    )
    created = await fetch_student(await session_driver(session), teacher_id, student_id)
    await uow.commit()
    return created


async def update_student(
    uow: UnitOfWork, teacher_id: str, student_id: uuid.UUID, request: StudentUpdate
) -> str:
    session = uow.session
    add_ids, remove_ids = _unique(request.add_class_ids), _unique(request.remove_class_ids)
    both = sorted(str(class_id) for class_id in set(add_ids) & set(remove_ids))
    if both:
        raise ValidationFailed("A class cannot be both added and removed.", {"class_ids": both})
    # FOR NO KEY UPDATE: concurrent updates of this student queue up, while memberships
    # referencing it (foreign-key checks) are not blocked.
    student = await session.scalar(
        select(Student)
        .where(Student.id == student_id, Student.created_by_user_id == teacher_id)
        .with_for_update(key_share=True)
    )
    if student is None:
        raise student_not_found(student_id)
    await ensure_owned_classes(session, teacher_id, add_ids, lock=True)

    event = StudentUpdatedV1(
        student_id=str(student_id),
        updated_by_user_id=teacher_id,
        correlation_id=current_correlation_id(),
        timestamp=datetime.now(UTC),
    )
    row_changed = False
    if request.person_name is not None:
        # Only the name fields present in the request change.
        for field in request.person_name.model_fields_set:
            value = getattr(request.person_name, field)
            if value is not None and value != getattr(student, field):
                setattr(student, field, value)
                row_changed = True
                if field in ("first_name", "last_name"):
                    setattr(event, field, value)
    if request.email is not None and request.email != student.email:
        student.email = event.student_email = request.email
        row_changed = True
    try:
        await session.flush()
    except IntegrityError as exc:
        if _sqlstate(exc) == _UNIQUE_VIOLATION:
            raise _email_taken(request.email) from None
        raise

    added = await _add_memberships(session, student_id, add_ids)
    removed = await _remove_memberships(session, student_id, remove_ids)
    if added:
        event.add_class_ids = [str(class_id) for class_id in added]
    if removed:
        event.remove_class_ids = [str(class_id) for class_id in removed]
    if not (row_changed or added or removed):
        # Nothing changed, so nothing is published.
        return await fetch_student(await session_driver(session), teacher_id, student_id)
    if not row_changed:
        # Memberships are part of the student resource: its updated_at moves with them.
        student.updated_at = func.now()
    _publish(session, topics.STUDENT_UPDATED, student_id, event)
    await notify_student_added(
        session,
        class_ids=added,
        student_id=student_id,
        first_name=student.first_name,
        last_name=student.last_name,
        correlation_id=event.correlation_id,
        now=event.timestamp,
    )
    await session.flush()
    updated = await fetch_student(await session_driver(session), teacher_id, student_id)
    await uow.commit()
    return updated


async def delete_student(uow: UnitOfWork, teacher_id: str, student_id: uuid.UUID) -> None:
    """Memberships go with the student; a student who authored essays stays (409)."""
    try:
        deleted = await uow.session.scalar(
            delete(Student)
            .where(Student.id == student_id, Student.created_by_user_id == teacher_id)
            .returning(Student.id)
        )
    except IntegrityError as exc:
        if _sqlstate(exc) == _FOREIGN_KEY_VIOLATION:
            raise Conflict(
                "The student is linked to essays (essay-student associations) and cannot be "
                "deleted.",
                {"student_id": str(student_id)},
            ) from None
        raise
    if deleted is None:
        raise student_not_found(student_id)
    await uow.commit()


async def _add_memberships(
    session: AsyncSession, student_id: uuid.UUID, class_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """The classes the student actually joined (already-member classes are skipped)."""
    if not class_ids:
        return []
    result = await session.scalars(
        insert(ClassMembership)
        .values([{"class_id": class_id, "student_id": student_id} for class_id in class_ids])
        .on_conflict_do_nothing()
        .returning(ClassMembership.class_id)
    )
    return list(result.all())


async def _remove_memberships(
    session: AsyncSession, student_id: uuid.UUID, class_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """The classes the student actually left (not being a member is not an error)."""
    if not class_ids:
        return []
    result = await session.scalars(
        delete(ClassMembership)
        .where(ClassMembership.student_id == student_id, ClassMembership.class_id.in_(class_ids))
        .returning(ClassMembership.class_id)
    )
    return list(result.all())


def _publish(
    session: AsyncSession,
    topic: str,
    student_id: uuid.UUID,
    event: StudentCreatedV1 | StudentUpdatedV1,
) -> None:
    """Queue the event in the caller's transaction (keyed by the student id)."""
    add_outbox_event(
        session,
        topic=topic,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=student_id,
        data=event.model_dump(mode="json"),
        correlation_id=event.correlation_id,
    )


# --- roster import -------------------------------------------------------------------------


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
    locked = await session.scalar(
        select(SchoolClass.id)
        .where(SchoolClass.id == class_id, SchoolClass.created_by_user_id == teacher_id)
        .with_for_update(key_share=True)
    )
    if locked is None:
        raise class_not_found(class_id)

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
        if isinstance(exc, IntegrityError) and _sqlstate(exc) != _UNIQUE_VIOLATION:
            raise
        raise Conflict("Some of these e-mails were taken meanwhile; retry the import.") from None
    await bulk.add_class_members(
        session,
        class_id,
        new_students=[create.student_id for create in plan.creates],
        existing_students=[update.student_id for update in plan.updates if update.joins_class],
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
        select(
            Student.id,
            Student.first_name,
            Student.last_name,
            Student.legal_full_name,
            Student.email,
            in_class.label("in_class"),
            Student.email_key,
        ).where(
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
        select(
            Student.id,
            Student.first_name,
            Student.last_name,
            Student.legal_full_name,
            Student.email,
            sql_literal(True).label("in_class"),
        )
        .join(ClassMembership, ClassMembership.student_id == Student.id)
        .where(ClassMembership.class_id == class_id, Student.created_by_user_id == teacher_id)
    )
    return [ExistingStudent(**row._asdict()) for row in rows]


def _import_outbox_records(
    plan: ImportPlan, teacher_id: str, class_id: uuid.UUID, correlation_id: uuid.UUID
) -> list[tuple[Any, ...]]:
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
