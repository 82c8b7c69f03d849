"""The export of everything held about a student (GDPR articles 15 and 20): complete by the
schema's own account (every table with a foreign key to ``students`` has its section, holding
exactly that table's rows of the student), valid against its documented model, owner only."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import column as sql_column
from sqlalchemy import func, or_, select, text
from sqlalchemy import table as sql_table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.domain import AssociationStatus
from class_management_service.students.export import EXPORT_SECTIONS
from class_management_service.students.export_schemas import StudentExport
from tests.factories import seed_batch
from tests.http_helpers import assert_error, teacher

A, B = teacher("teacher-a"), teacher("teacher-b")

# Every (table, column) whose foreign key points at students, as the database declares it.
_REFERENCES = text(
    """
    SELECT c.conrelid::regclass::text AS table_name, a.attname AS column_name
    FROM pg_constraint c
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
    WHERE c.contype = 'f' AND c.confrelid = 'students'::regclass
    ORDER BY 1, 2
    """
)


async def test_the_export_has_every_table_that_refers_to_the_student(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    batch = await seed_batch(
        session_factory, (AssociationStatus.PENDING_VALIDATION, AssociationStatus.CONFIRMED)
    )
    student = batch.suggested[0]
    assert student is not None
    # A second essay of the same student, in a finalized batch of a second class.
    other = await seed_batch(session_factory, (AssociationStatus.CONFIRMED,))
    async with session_factory() as session:
        await session.execute(
            text("UPDATE essay_student_associations SET student_id = :s WHERE essay_id = :e"),
            {"s": student, "e": other.essays[0]},
        )
        await session.execute(
            text("INSERT INTO class_students (class_id, student_id) VALUES (:c, :s)"),
            {"c": other.class_id, "s": student},
        )
        await session.execute(
            text(
                "INSERT INTO batch_confirmations (batch_id, class_id, timeout_triggered, event_id)"
                " VALUES (:b, :c, false, gen_random_uuid())"
            ),
            {"b": other.batch_id, "c": other.class_id},
        )
        # The essay moved to the student by a teacher: a decision naming the student.
        await session.execute(
            text(
                "INSERT INTO association_history (association_id, essay_id, batch_id, actor,"
                " method, from_student_id, to_student_id, from_status, to_status)"
                " SELECT id, essay_id, batch_id, 'teacher-a', 'teacher_reassign', NULL,"
                " student_id, 'no_match', status FROM essay_student_associations"
                " WHERE essay_id = :e"
            ),
            {"e": other.essays[0]},
        )
        await session.commit()
        references = (await session.execute(_REFERENCES)).all()

    response = await api_client.get(f"/v1/classes/students/{student}/export", headers=A)

    assert response.status_code == 200, response.text
    document = response.json()
    StudentExport.model_validate(document)
    assert list(document) == list(StudentExport.model_fields)
    assert document["student"]["id"] == str(student)
    assert document["student"]["first_name"] == "First0"
    sections = {section.table: name for name, section in EXPORT_SECTIONS.items()}
    assert references, "the schema names no table referring to students"
    columns_by_table: dict[str, list[str]] = {}
    for table, column in references:
        columns_by_table.setdefault(table, []).append(column)
    async with session_factory() as session:
        for table, columns in columns_by_table.items():
            assert table in sections, f"{table}.{columns} refers to students; no export section"
            rows = sql_table(table, *(sql_column(column) for column in columns))
            held = await session.scalar(
                select(func.count())
                .select_from(rows)
                .where(or_(*(rows.c[column] == student for column in columns)))
            )
            assert held, f"the test holds no {table} row of the student"
            assert len(document[sections[table]]) == held, table
    memberships = document["class_memberships"]
    assert sorted(m["class_id"] for m in memberships) == sorted(
        [str(batch.class_id), str(other.class_id)]
    )
    assert {(m["class_name"], m["course_code"], m["class_archived_at"]) for m in memberships} == {
        ("9A", "ENG5", None)
    }
    by_essay = {a["essay_id"]: a for a in document["essay_associations"]}
    assert set(by_essay) == {str(batch.essays[0]), str(other.essays[0])}
    open_one, finalized = by_essay[str(batch.essays[0])], by_essay[str(other.essays[0])]
    assert (open_one["status"], open_one["batch_finalized_at"]) == ("pending_validation", None)
    assert open_one["filename"] == "essay0.docx"
    assert open_one["match_reasons"] == ["exact_name"]
    assert finalized["status"] == "confirmed"
    assert finalized["batch_finalized_at"] is not None
    assert finalized["batch_timeout_triggered"] is False
    [decision] = document["decision_history"]
    assert (decision["essay_id"], decision["method"], decision["to_student_id"]) == (
        str(other.essays[0]),
        "teacher_reassign",
        str(student),
    )


async def test_only_the_owner_exports(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    batch = await seed_batch(session_factory, (AssociationStatus.PENDING_VALIDATION,))
    path = f"/v1/classes/students/{batch.suggested[0]}/export"

    foreign = assert_error(await api_client.get(path, headers=B), 404, "NOT_FOUND")
    missing = await api_client.get(f"/v1/classes/students/{uuid.uuid4()}/export", headers=A)

    assert foreign["message"] == assert_error(missing, 404, "NOT_FOUND")["message"]
    assert_error(
        await api_client.get("/v1/classes/students/x/export", headers=A), 400, "BAD_REQUEST"
    )
