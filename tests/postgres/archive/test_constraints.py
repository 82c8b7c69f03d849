"""The read-only guard: every write touching an archived class or its memberships is a 409
with the contract's error body, and changes nothing; the same writes work again once the class
is unarchived. Another teacher's archived class stays a 404 (its state never leaks)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.classes.models import ClassMembership
from tests.http_helpers import (
    assert_error,
    count_rows,
    create_class,
    create_student,
    outbox_events,
    teacher,
)

A, B = teacher("teacher-a"), teacher("teacher-b")
STUDENTS = "/v1/classes/students"
CSV = {"content-type": "text/csv"}


async def test_every_write_touching_an_archived_class_is_a_409_until_it_is_unarchived(
    api_client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    archived = await create_class(api_client, name="8A")
    active = await create_class(api_client, name="9A")
    member = await create_student(api_client, first="Mia", class_ids=[archived["id"]])
    outsider = await create_student(api_client, first="Bo", class_ids=[active["id"]])
    class_path = f"/v1/classes/{archived['id']}"
    assert (await api_client.post(f"{class_path}/archive", headers=A)).status_code == 200
    events_before = len(await outbox_events(session_factory))
    memberships_before = await count_rows(session_factory, ClassMembership)

    writes: dict[str, httpx.Response] = {
        "rename": await api_client.put(class_path, json={"name": "8B"}, headers=A),
        "delete class": await api_client.delete(class_path, headers=A),
        "create member": await api_client.post(
            STUDENTS,
            json={
                "person_name": {"first_name": "N", "last_name": "N"},
                "class_ids": [archived["id"]],
            },
            headers=A,
        ),
        "join": await api_client.put(
            f"{STUDENTS}/{outsider['id']}", json={"add_class_ids": [archived["id"]]}, headers=A
        ),
        "leave": await api_client.put(
            f"{STUDENTS}/{member['id']}", json={"remove_class_ids": [archived["id"]]}, headers=A
        ),
        "delete member": await api_client.delete(f"{STUDENTS}/{member['id']}", headers=A),
        "import": await api_client.post(
            f"{class_path}/students/import",
            content=b"first_name,last_name\nEva,Ek\n",
            headers={**A, **CSV},
        ),
    }

    for write, response in writes.items():
        error = assert_error(response, 409, "CONFLICT")
        assert error["details"] == {"archived_class_ids": [archived["id"]]}, write
    assert len(await outbox_events(session_factory)) == events_before
    assert await count_rows(session_factory, ClassMembership) == memberships_before
    assert (await api_client.get(class_path, headers=A)).json()["name"] == "8A"
    # Writes that do not touch the archived class go on (renaming its member, say).
    renamed = await api_client.put(
        f"{STUDENTS}/{member['id']}", json={"person_name": {"first_name": "Maja"}}, headers=A
    )
    assert renamed.status_code == 200, renamed.text

    assert (await api_client.post(f"{class_path}/unarchive", headers=A)).status_code == 200
    joined = await api_client.put(
        f"{STUDENTS}/{outsider['id']}", json={"add_class_ids": [archived["id"]]}, headers=A
    )
    assert joined.status_code == 200, joined.text
    assert (await api_client.put(class_path, json={"name": "8B"}, headers=A)).status_code == 200


async def test_another_teachers_archived_class_is_still_a_404(
    api_client: httpx.AsyncClient,
) -> None:
    theirs = await create_class(api_client, "teacher-b")
    await api_client.post(f"/v1/classes/{theirs['id']}/archive", headers=B)
    path = f"/v1/classes/{theirs['id']}"
    mine = await create_student(api_client)

    answers: list[Any] = [
        await api_client.put(path, json={"name": "X"}, headers=A),
        await api_client.delete(path, headers=A),
        await api_client.put(
            f"{STUDENTS}/{mine['id']}", json={"add_class_ids": [theirs["id"]]}, headers=A
        ),
    ]

    for response in answers:
        assert_error(response, 404, "NOT_FOUND")
