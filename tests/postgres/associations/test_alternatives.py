"""Alternatives: every valid suggestion kept, ranked, listed beside the chosen one; reassigning
to one is one decision, and the confirmed event reports the NLP's confidence for that student."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.ingestion import AuthorMatchIngestion
from tests.factories import add_student, associations, essay, event, ingest, seed_roster
from tests.postgres.associations.conftest import Headers, _item, _outbox, _url

TEACHER = "teacher-a"


async def test_every_valid_suggestion_is_kept_ranked_and_reassigning_reports_its_confidence(
    api_client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    teacher_headers: Headers,
) -> None:
    roster = await seed_roster(session_factory, students=5, teacher=TEACHER)
    s0, s1, s2, s3, s4 = roster.student_ids  # sorted: s0 < s1 < ... (ties go to the lower id)
    outsider = await add_student(session_factory, teacher=TEACHER)
    batch_id, chosen, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    incoming = event(
        roster.class_id,
        [
            # Listed out of order, with a tie (s3/s1 at 0.6), a student named twice (s2: the
            # higher 0.5 counts) and a student outside the class (ignored however confident).
            essay(
                chosen,
                [(s3, 0.6), (s2, 0.3), (outsider, 0.99), (s0, 0.8), (s1, 0.6), (s2, 0.5)],
            ),
            essay(other, [(s4, 0.7)]),
        ],
        batch_id=batch_id,
    )
    await ingest(AuthorMatchIngestion(session_factory), [incoming])

    (row,) = await associations(session_factory, essay_ids=[chosen])
    assert [(s["student_id"], s["confidence_score"]) for s in row.suggestions] == [
        (str(s0), 0.8),
        (str(s1), 0.6),
        (str(s3), 0.6),
        (str(s2), 0.5),
    ]
    assert row.suggestions[0]["match_reasons"] == ["fuzzy:0.8"]
    assert (row.student_id, row.confidence_score) == (s0, 0.8)

    headers = teacher_headers(TEACHER)
    listed = (await api_client.get(_url(batch_id), headers=headers)).json()
    item = next(a for a in listed["associations"] if a["essay_id"] == str(chosen))
    assert item["student_id"] == str(s0)
    assert item["alternatives"] == [
        {
            "student_id": str(s1),
            "student_name": "First1 Last1",
            "confidence_score": 0.6,
            "match_reasons": ["fuzzy:0.6"],
        },
        {
            "student_id": str(s3),
            "student_name": "First3 Last3",
            "confidence_score": 0.6,
            "match_reasons": ["fuzzy:0.6"],
        },
        {
            "student_id": str(s2),
            "student_name": "First2 Last2",
            "confidence_score": 0.5,
            "match_reasons": ["fuzzy:0.5"],
        },
    ]

    # Reassigning to an alternative is one decision; the row now describes that student.
    reassigned = await api_client.post(
        _url(batch_id, confirm=True), json={"associations": [_item(chosen, s3)]}, headers=headers
    )
    assert reassigned.status_code == 200, reassigned.text
    item = next(a for a in reassigned.json()["associations"] if a["essay_id"] == str(chosen))
    assert (item["student_id"], item["status"]) == (str(s3), "confirmed")
    assert item["confidence_score"] == 0.6
    assert item["match_reasons"] == ["fuzzy:0.6"]
    # The former choice is an alternative now, in its rank.
    assert [a["student_id"] for a in item["alternatives"]] == [str(s0), str(s1), str(s2)]

    # A student the NLP did not suggest for the other essay: no confidence, reported as 0.0.
    final = await api_client.post(
        _url(batch_id, confirm=True), json={"associations": [_item(other, s1)]}, headers=headers
    )
    assert final.status_code == 200, final.text
    assert final.json()["finalized"] is True
    (published,) = await _outbox(session_factory)
    sent = {a["essay_id"]: a for a in published.envelope["data"]["associations"]}
    assert (sent[str(chosen)]["student_id"], sent[str(chosen)]["confidence_score"]) == (
        str(s3),
        0.6,
    )
    assert (sent[str(other)]["student_id"], sent[str(other)]["confidence_score"]) == (
        str(s1),
        0.0,
    )
