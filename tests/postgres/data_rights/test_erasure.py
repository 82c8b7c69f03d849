"""Erasure of a student's personal data (GDPR article 17): nothing personal left in any table
(the outbox's published and pending rows included) nor in outbox rows written afterwards, the
essays still linked to the pseudonymous id, idempotent; erased students appear in no roster,
list or search, and cannot be changed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import Text, cast, func, or_, select, text
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging import topics
from class_management_service.outbox.models import OutboxEvent
from tests.http_helpers import assert_error, count_rows, create_class, create_student, teacher

A, B = teacher("teacher-a"), teacher("teacher-b")
STUDENTS = "/v1/classes/students"
Factory = async_sessionmaker[AsyncSession]

FIRST, LAST, RENAMED = "Zebulon", "Quixotesmith", "Quixotesmyth"
LEGAL = "Zebulon Xanthippus Quixotesmith"
EMAIL = "zq.private@example.org"
# Every spelling of the student's personal data the test writes anywhere.
PERSONAL = ("zebulon", "quixotesm", "xanthippus", "zq.private")

_TEXT_COLUMNS = text(
    """
    SELECT table_name, column_name FROM information_schema.columns
    WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'json', 'jsonb')
    ORDER BY 1, 2
    """
)


async def _personal_data_left(session_factory: Factory) -> list[str]:
    """Every ``table.column`` of the schema whose text holds any of :data:`PERSONAL`."""
    found = []
    async with session_factory() as session:
        for table, column in (await session.execute(_TEXT_COLUMNS)).all():
            rows = sql_table(table, sql_column(column))
            value = cast(rows.c[column], Text)
            hits = await session.scalar(
                select(func.count())
                .select_from(rows)
                .where(or_(*(value.ilike(f"%{word}%") for word in PERSONAL)))
            )
            if hits:
                found.append(f"{table}.{column}")
    return found


async def _seed_essays(session_factory: Factory, class_id: str, student_id: str) -> uuid.UUID:
    """A batch of the class: the student's essay (its file name, match reasons and ranked
    suggestions naming the student) and an essay without a student."""
    batch_id = uuid.uuid4()
    async with session_factory() as session:
        await session.execute(
            text(
                "INSERT INTO essay_student_associations (id, essay_id, batch_id, class_id, "
                "student_id, confidence_score, match_reasons, suggestions, filename, status) "
                "VALUES (gen_random_uuid(), gen_random_uuid(), :b, :c, CAST(:s AS uuid), 0.9, "
                "CAST(:reasons AS jsonb), jsonb_build_array(jsonb_build_object('student_id', "
                "CAST(:s AS text), 'confidence_score', 0.9, 'match_reasons', "
                "CAST(:reasons AS jsonb))), :file, 'pending_validation'), "
                "(gen_random_uuid(), gen_random_uuid(), :b, :c, NULL, NULL, '[]', '[]', NULL, "
                "'no_match')"
            ),
            {
                "b": batch_id,
                "c": class_id,
                "s": student_id,
                "reasons": f'["name: {FIRST} {LAST}"]',
                "file": f"{FIRST}_{LAST}_essay.docx",
            },
        )
        await session.commit()
    return batch_id


async def test_erasure_leaves_no_personal_data_in_any_table_nor_in_later_outbox_rows(
    api_client: httpx.AsyncClient, session_factory: Factory
) -> None:
    nine_a = await create_class(api_client, name="9A")
    student = await create_student(
        api_client, first=FIRST, last=LAST, legal=LEGAL, email=EMAIL, class_ids=[nine_a["id"]]
    )
    path = f"{STUDENTS}/{student['id']}"
    renamed = await api_client.put(path, json={"person_name": {"last_name": RENAMED}}, headers=A)
    assert renamed.status_code == 200
    batch_id = await _seed_essays(session_factory, nine_a["id"], student["id"])
    async with session_factory() as session:  # the relay already sent the creation
        await session.execute(
            text(
                "UPDATE outbox_events SET status = 'published', published_at = now() "
                "WHERE topic = :t"
            ),
            {"t": topics.STUDENT_CREATED},
        )
        await session.commit()
    before = await _personal_data_left(session_factory)
    assert before == [
        "essay_student_associations.filename",
        "essay_student_associations.match_reasons",
        "essay_student_associations.suggestions",
        "outbox_events.envelope",
        "students.email",
        "students.email_key",
        "students.first_name",
        "students.last_name",
        "students.legal_full_name",
    ]

    erased = await api_client.post(f"{path}/erase", headers=A)

    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert (body["id"], body["full_name"], body["email"], body["class_ids"]) == (
        student["id"],
        "Erased student",
        None,
        [],
    )
    assert body["person_name"] == {
        "first_name": "Erased",
        "last_name": "student",
        "legal_full_name": None,
    }
    assert body["erased_at"] is not None
    assert await _personal_data_left(session_factory) == []
    async with session_factory() as session:
        assert await session.scalar(
            text("SELECT email_key IS NULL FROM students WHERE id = :s"), {"s": student["id"]}
        )
        linked = await session.scalar(
            text("SELECT count(*) FROM essay_student_associations WHERE student_id = :s"),
            {"s": student["id"]},
        )
        recorded = (
            await session.execute(
                text(
                    "SELECT actor, method, from_student_id = to_student_id FROM "
                    "association_history WHERE to_student_id = :s"
                ),
                {"s": student["id"]},
            )
        ).all()
    assert linked == 1  # the essay keeps its author, under the pseudonymous id
    assert [tuple(row) for row in recorded] == [("teacher-a", "erasure", True)]
    events = await _student_events(session_factory, student["id"])
    erasure = events[-1]
    assert erasure.pop("timestamp")
    assert erasure.pop("correlation_id")
    assert erasure == {
        "event": "student.updated",
        "student_id": student["id"],
        "first_name": "Erased",
        "last_name": "student",
        "student_email": None,
        "add_class_ids": None,
        "remove_class_ids": [nine_a["id"]],
        "updated_by_user_id": "teacher-a",
        "erased_fields": ["first_name", "last_name", "legal_full_name", "email"],
    }

    # Idempotent: the same answer, nothing published.
    outbox_before = await count_rows(session_factory, OutboxEvent)
    again = await api_client.post(f"{path}/erase", headers=A)
    assert (again.status_code, again.json()) == (200, body)
    assert await count_rows(session_factory, OutboxEvent) == outbox_before

    # Work after the erasure (the review finalizing the batch: event and notification).
    listed = (
        await api_client.get(f"/v1/batches/{batch_id}/student-associations", headers=A)
    ).json()["associations"]
    confirmed = await api_client.post(
        f"/v1/batches/{batch_id}/student-associations/confirm",
        json={
            "associations": [
                {
                    "essay_id": a["essay_id"],
                    "student_id": a["suggested_student_id"],
                    "confirmed": True,
                }
                for a in listed
            ]
        },
        headers=A,
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["finalized"] is True
    assert await count_rows(session_factory, OutboxEvent) > outbox_before
    assert await _personal_data_left(session_factory) == []


async def _student_events(session_factory: Factory, student_id: str) -> list[dict[str, Any]]:
    async with session_factory() as session:
        envelopes = await session.scalars(
            select(OutboxEvent.envelope)
            .where(
                OutboxEvent.topic == topics.STUDENT_UPDATED, OutboxEvent.message_key == student_id
            )
            .order_by(OutboxEvent.aggregate_sequence)
        )
        return [dict(envelope["data"]) for envelope in envelopes]


async def test_erased_students_are_in_no_roster_list_or_search_and_cannot_be_changed(
    api_client: httpx.AsyncClient, session_factory: Factory
) -> None:
    nine_a = await create_class(api_client, name="9A")
    anna = await create_student(api_client, first="Anna", class_ids=[nine_a["id"]])
    bo = await create_student(api_client, first="Bo", email="bo@x.se", class_ids=[nine_a["id"]])
    # An archived class does not keep its member: erasure outranks the archive.
    assert (
        await api_client.post(f"/v1/classes/{nine_a['id']}/archive", headers=A)
    ).status_code == 200
    path = f"{STUDENTS}/{bo['id']}"
    assert_error(await api_client.post(f"{path}/erase", headers=B), 404, "NOT_FOUND")
    assert (await api_client.post(f"{path}/erase", headers=A)).status_code == 200

    for listing in (
        f"{STUDENTS}?limit=200",
        f"{STUDENTS}?q=Erased",
        f"{STUDENTS}?q=Bo",
        f"{STUDENTS}?class_id={nine_a['id']}",
        f"/v1/classes/{nine_a['id']}/students",
    ):
        page = (await api_client.get(listing, headers=A)).json()
        assert bo["id"] not in [s["id"] for s in page["students"]], listing
        assert page["pagination"]["total"] == len(page["students"]), listing
    roster = (await api_client.get(f"/v1/classes/{nine_a['id']}/roster", headers=A)).json()
    assert [s["student_id"] for s in roster["students"]] == [anna["id"]]
    got = (await api_client.get(f"/v1/classes/{nine_a['id']}", headers=A)).json()
    assert got["student_count"] == 1
    assert (await api_client.get(path, headers=A)).json()["full_name"] == "Erased student"
    # The e-mail is free again: a new student may take it.
    await create_student(api_client, first="Bo", email="bo@x.se")

    frozen = await api_client.put(path, json={"person_name": {"first_name": "Bo"}}, headers=A)
    assert_error(frozen, 409, "CONFLICT")
    assert (await api_client.get(path, headers=A)).json()["first_name"] == "Erased"


async def test_deleting_a_student_with_essays_is_a_409_that_names_erasure(
    api_client: httpx.AsyncClient, session_factory: Factory
) -> None:
    nine_a = await create_class(api_client)
    student = await create_student(api_client, class_ids=[nine_a["id"]])
    await _seed_essays(session_factory, nine_a["id"], student["id"])

    refused = await api_client.delete(f"{STUDENTS}/{student['id']}", headers=A)

    error = assert_error(refused, 409, "CONFLICT")
    erase = f"{STUDENTS}/{student['id']}/erase"
    assert error["details"] == {"student_id": student["id"], "erase": erase}
    assert erase in error["message"]
