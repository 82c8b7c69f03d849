"""The term-end archive through the API: archive, unarchive, the bulk archive of a course, the
lists hiding archived classes, and what an archived class still serves."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.associations.domain import AssociationStatus
from class_management_service.messaging import topics
from tests.factories import seed_batch
from tests.http_helpers import assert_error, create_class, outbox_events, teacher

A, B = teacher("teacher-a"), teacher("teacher-b")


async def _listed(client: httpx.AsyncClient, query: str = "") -> list[str]:
    response = await client.get(f"/v1/classes/?limit=200{query}", headers=A)
    assert response.status_code == 200, response.text
    return sorted(item["id"] for item in response.json()["classes"])


async def _archive_events(
    session_factory: async_sessionmaker[AsyncSession],
) -> list[dict[str, Any]]:
    return [e.envelope["data"] for e in await outbox_events(session_factory, topics.CLASS_UPDATED)]


async def test_archive_hides_a_class_from_lists_and_unarchive_brings_it_back(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    kept = await create_class(api_client, name="9A")
    old = await create_class(api_client, name="8A")
    path = f"/v1/classes/{old['id']}"
    assert old["archived_at"] is None

    archived = await api_client.post(f"{path}/archive", headers=A)
    again = await api_client.post(f"{path}/archive", headers=A)

    assert archived.status_code == again.status_code == 200, archived.text
    assert archived.json()["archived_at"] is not None
    assert again.json() == archived.json() == (await api_client.get(path, headers=A)).json()
    assert archived.json()["updated_at"] > old["updated_at"]
    assert await _listed(api_client) == [kept["id"]]
    assert await _listed(api_client, "&include_archived=true") == sorted([kept["id"], old["id"]])
    assert await _listed(api_client, "&include_archived=true&q=8A") == [old["id"]]
    listed = (await api_client.get("/v1/classes/?include_archived=true&q=8A", headers=A)).json()
    assert listed["classes"][0] == archived.json()
    assert listed["pagination"]["total"] == 1

    unarchived = await api_client.post(f"{path}/unarchive", headers=A)
    assert unarchived.status_code == 200
    assert unarchived.json()["archived_at"] is None
    assert (await api_client.post(f"{path}/unarchive", headers=A)).json() == unarchived.json()
    assert await _listed(api_client) == sorted([kept["id"], old["id"]])

    # One event per change of state (the repeated calls changed nothing), keyed by the class.
    events = await outbox_events(session_factory, topics.CLASS_UPDATED)
    assert [e.message_key for e in events] == [old["id"]] * 2
    payloads = [e.envelope["data"] for e in events]
    assert [(p["archived"], p["archived_at"] is not None) for p in payloads] == [
        (True, True),
        (False, False),
    ]
    assert all(
        (p["event"], p["class_designation"], p["course_codes"], p["user_id"])
        == ("class.updated", None, None, "teacher-a")
        for p in payloads
    )


async def test_only_the_owner_archives_and_unknown_paths_are_answered_cleanly(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    created = await create_class(api_client)
    for action in ("archive", "unarchive"):
        foreign = await api_client.post(f"/v1/classes/{created['id']}/{action}", headers=B)
        missing = await api_client.post(f"/v1/classes/{uuid.uuid4()}/{action}", headers=A)
        assert_error(foreign, 404, "NOT_FOUND")
        assert_error(missing, 404, "NOT_FOUND")
        assert_error(
            await api_client.post(f"/v1/classes/x/{action}", headers=A), 400, "BAD_REQUEST"
        )
    assert (await api_client.get(f"/v1/classes/{created['id']}", headers=A)).json() == created
    assert await _archive_events(session_factory) == []
    # The bulk archive's path is not a class id: other methods are its 405, not a lookup.
    not_served = await api_client.get("/v1/classes/archive", headers=A)
    assert not_served.status_code == 405
    assert not_served.headers["allow"] == "POST"
    assert_error(await api_client.post("/v1/classes/archive", headers=A), 422, "VALIDATION_ERROR")


async def test_bulk_archive_takes_every_active_class_of_one_course_of_the_teacher(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    eng5 = [(await create_class(api_client, name=f"9{n}", course="ENG5"))["id"] for n in "ABC"]
    await api_client.post(f"/v1/classes/{eng5[2]}/archive", headers=A)
    swedish = await create_class(api_client, name="9A sv", course="SV1")
    others = await create_class(api_client, "teacher-b", name="9A", course="ENG5")

    response = await api_client.post("/v1/classes/archive?course_code=ENG5", headers=A)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "course_code": "ENG5",
        "archived": 2,
        "class_ids": sorted(eng5[:2]),
    }
    assert await _listed(api_client) == [swedish["id"]]
    assert (await api_client.get(f"/v1/classes/{others['id']}", headers=B)).json() == others
    again = await api_client.post("/v1/classes/archive?course_code=ENG5", headers=A)
    assert again.json() == {"course_code": "ENG5", "archived": 0, "class_ids": []}
    events = await outbox_events(session_factory, topics.CLASS_UPDATED)
    # The single archive of 9C, then one per class of the bulk archive.
    assert sorted(e.message_key for e in events[1:]) == sorted(eng5[:2])
    assert all(e.envelope["data"]["archived"] is True for e in events)


async def test_an_archived_class_still_serves_its_roster_and_the_review_of_its_batches(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    batch = await seed_batch(session_factory, (AssociationStatus.PENDING_VALIDATION,) * 2)
    archived = await api_client.post(f"/v1/classes/{batch.class_id}/archive", headers=A)
    assert archived.status_code == 200, archived.text

    roster = await api_client.get(f"/v1/classes/{batch.class_id}/roster", headers=A)
    listed = await api_client.get(f"/v1/classes/{batch.class_id}/students", headers=A)
    review = await api_client.get(f"/v1/batches/{batch.batch_id}/student-associations", headers=A)
    confirmed = await api_client.post(
        f"/v1/batches/{batch.batch_id}/student-associations/confirm",
        json={
            "associations": [
                {"essay_id": str(essay), "student_id": str(student), "confirmed": True}
                for essay, student in zip(batch.essays, batch.suggested, strict=True)
            ]
        },
        headers=A,
    )

    assert roster.status_code == listed.status_code == review.status_code == 200
    assert len(roster.json()["students"]) == len(listed.json()["students"]) == 2
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["finalized"] is True
    assert len(await outbox_events(session_factory, topics.STUDENT_ASSOCIATIONS_CONFIRMED)) == 1
