"""Abuse in-process (the app over a real PostgreSQL, no workers): cross-teacher access, API key.

* Teacher B tries every teacher route on teacher A's generated classes, students and batches:
  read, change, delete, list, search, import into, add to, confirm. Every direct access must be a
  404 (indistinguishable from "does not exist"), no list may show A's data, and afterwards A's
  data must be exactly as before.
* The internal API key is compared with ``hmac.compare_digest`` (constant time): a spy on it sees
  every comparison, and the decision follows its result.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from class_management_service.http import deps as identity
from tests.conftest import INTERNAL_API_KEY
from tests.reliability.conftest import AbuseRow, ReliabilityReport
from tests.reliability.harness import connection

N = 10  # classes, students and batches teacher A owns
A, B = "teacher-a", "teacher-b"


async def _create_class(client: httpx.AsyncClient, teacher: str, name: str) -> str:
    response = await client.post(
        "/v1/classes/",
        json={"name": name, "course_codes": ["ENG5"]},
        headers={"X-User-ID": teacher},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _create_student(
    client: httpx.AsyncClient, teacher: str, index: int, class_ids: list[str]
) -> str:
    response = await client.post(
        "/v1/classes/students",
        json={
            "person_name": {"first_name": f"Secret{index}", "last_name": f"Pupil{index}"},
            "email": f"secret{index}.{teacher}@example.com",
            "class_ids": class_ids,
        },
        headers={"X-User-ID": teacher},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _seed_batches(
    database_url: str, class_ids: list[str], student_ids: list[str]
) -> list[str]:
    """N batches of two pending essays each in A's classes (as the consumer would store them)."""
    batches = [str(uuid.uuid4()) for _ in range(N)]
    rows = [
        (
            uuid.uuid4(),
            uuid.uuid4(),
            uuid.UUID(batch),
            uuid.UUID(class_ids[i % len(class_ids)]),
            uuid.UUID(student_ids[i % len(student_ids)]),
        )
        for i, batch in enumerate(batches)
        for _ in range(2)
    ]
    async with connection(database_url) as conn:
        await conn.executemany(
            "INSERT INTO essay_student_associations (id, essay_id, batch_id, class_id, student_id,"
            " confidence_score, status) VALUES ($1, $2, $3, $4, $5, 0.9, 'pending_validation')",
            rows,
        )
    return batches


async def _snapshot(
    client: httpx.AsyncClient, classes: list[str], students: list[str], batches: list[str]
) -> list[Any]:
    """Everything A sees of A's data."""
    headers = {"X-User-ID": A}
    seen: list[Any] = []
    for path in (
        *(f"/v1/classes/{c}" for c in classes),
        *(f"/v1/classes/students/{s}" for s in students),
        *(f"/v1/batches/{b}/student-associations" for b in batches),
    ):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        seen.append(response.json())
    return seen


async def test_another_teachers_resources_are_404_on_every_route_and_never_listed(
    api_client: httpx.AsyncClient,
    database_url: str,
    reliability_report: ReliabilityReport,
) -> None:
    client = api_client
    a_classes = [await _create_class(client, A, f"A secret class {i}") for i in range(N)]
    a_students = [await _create_student(client, A, i, [a_classes[i]]) for i in range(N)]
    a_batches = await _seed_batches(database_url, a_classes, a_students)
    b_class = await _create_class(client, B, "B own class")
    b_student = await _create_student(client, B, 0, [b_class])
    before = await _snapshot(client, a_classes, a_students, a_batches)
    a_ids = set(a_classes) | set(a_students) | set(a_batches)

    hb = {"X-User-ID": B}
    attempts: list[tuple[str, str, httpx.Response]] = []

    async def attempt(method: str, path: str, **kwargs: Any) -> None:
        response = await client.request(
            method, path, headers={**hb, **kwargs.pop("headers", {})}, **kwargs
        )
        attempts.append((method, path, response))

    csv = "first_name,last_name,email\nEve,Intruder,eve@example.com\n"
    for class_id in a_classes:
        await attempt("GET", f"/v1/classes/{class_id}")
        await attempt("PUT", f"/v1/classes/{class_id}", json={"name": "hijacked"})
        await attempt("GET", f"/v1/classes/{class_id}/students")
        await attempt(
            "POST",
            f"/v1/classes/{class_id}/students/import",
            content=csv,
            headers={"Content-Type": "text/csv"},
        )
        await attempt(
            "POST",
            "/v1/classes/students",
            json={
                "person_name": {"first_name": "Eve", "last_name": "Intruder"},
                "class_ids": [class_id],
            },
        )
        await attempt(
            "PUT", f"/v1/classes/students/{b_student}", json={"add_class_ids": [class_id]}
        )
        await attempt("DELETE", f"/v1/classes/{class_id}")
    for student_id in a_students:
        await attempt("GET", f"/v1/classes/students/{student_id}")
        await attempt(
            "PUT",
            f"/v1/classes/students/{student_id}",
            json={"person_name": {"first_name": "Hijacked", "last_name": "Name"}},
        )
        await attempt("DELETE", f"/v1/classes/students/{student_id}")
    for batch_id in a_batches:
        await attempt(
            "POST",
            f"/v1/batches/{batch_id}/student-associations/confirm",
            json={"associations": [{"essay_id": str(uuid.uuid4()), "confirmed": False}]},
        )
    direct = len(attempts)

    # The review listing answers another teacher's batch like one not stored yet: 200 and
    # nothing in it (the platform's harness may ask before ingestion).
    empty_views: list[str] = []
    for batch_id in a_batches:
        response = await client.get(f"/v1/batches/{batch_id}/student-associations", headers=hb)
        body = response.json()
        if response.status_code != 200 or body["associations"] or body["class_id"] is not None:
            empty_views.append(f"GET {batch_id} -> {response.status_code} {response.text[:200]}")
    assert not empty_views, "\n".join(empty_views)

    # Lists and searches: 200, but never a trace of A's data.
    for path, params in (
        ("/v1/classes/", {"limit": 200}),
        ("/v1/classes/", {"q": "secret", "limit": 200}),
        ("/v1/classes/students", {"limit": 200}),
        ("/v1/classes/students", {"q": "Secret", "limit": 200}),
        *(("/v1/classes/students", {"class_id": c, "limit": 200}) for c in a_classes),
    ):
        await attempt("GET", path, params=params)

    leaks: list[str] = []
    for index, (method, path, response) in enumerate(attempts):
        if index < direct:
            if response.status_code != 404:
                leaks.append(f"{method} {path} -> {response.status_code} {response.text[:200]}")
            continue
        listed = _ids_in(response.json())
        if response.status_code != 200 or listed & a_ids:
            leaks.append(f"{method} {path} -> {response.status_code}, lists {listed & a_ids}")
    assert not leaks, "\n".join(leaks)

    # Nothing B did changed anything of A's; B's own student joined no class of A's.
    assert await _snapshot(client, a_classes, a_students, a_batches) == before
    own = await client.get(f"/v1/classes/students/{b_student}", headers=hb)
    assert own.json()["class_ids"] == [b_class]
    mine = await client.get("/v1/classes/students", params={"limit": 200}, headers=hb)
    assert mine.json()["pagination"]["total"] == 1, (
        "B's failed creates must not have created students"
    )

    reliability_report.record_abuse(
        AbuseRow(
            check="cross-teacher access",
            attempts=len(attempts),
            failures=len(leaks),
            notes=(
                f"teacher B on teacher A's {N} classes, {N} students and {N} batches: "
                f"{direct} direct GET/PUT/DELETE/import/add-to-class/confirm attempts, all 404; "
                f"{N} review listings of A's batches, all empty; "
                f"{len(attempts) - direct} lists/searches, none showing A's data; "
                "A's data unchanged afterwards"
            ),
        )
    )


def _ids_in(body: Any) -> set[str]:
    """Every string value anywhere in a JSON body (ids included)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            found.add(value)

    walk(body)
    return found


async def test_internal_api_key_is_compared_with_hmac_compare_digest(
    api_client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    reliability_report: ReliabilityReport,
) -> None:
    calls: list[tuple[bytes, bytes, bool]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(presented: bytes, expected: bytes) -> bool:
        result = real(presented, expected)
        calls.append((presented, expected, result))
        return result

    monkeypatch.setattr(f"{identity.__name__}.hmac.compare_digest", spy)
    path = f"/internal/v1/batches/class-info?batch_ids={uuid.uuid4()}"
    cases = [
        (INTERNAL_API_KEY, 200),
        ("wrong-key", 401),
        (INTERNAL_API_KEY[:-1], 401),  # a prefix: an early-exit == would differ in timing
        (INTERNAL_API_KEY + "x", 401),
        ("", 401),
    ]
    for key, status in cases:
        response = await api_client.get(
            path, headers={"X-Internal-API-Key": key, "X-Service-ID": "nlp_service"}
        )
        assert response.status_code == status, (key, response.text)
        assert key not in json.dumps(response.json()) or not key
    # Every request's key went through compare_digest, and its answer decided.
    assert [(p, e) for p, e, _ in calls] == [
        (key.encode(), INTERNAL_API_KEY.encode()) for key, _ in cases
    ]
    assert [r for _, _, r in calls] == [status == 200 for _, status in cases]

    # And the decision really rests on it: a compare_digest that says "no" locks the key out.
    monkeypatch.setattr(f"{identity.__name__}.hmac.compare_digest", lambda *_: False)
    response = await api_client.get(
        path, headers={"X-Internal-API-Key": INTERNAL_API_KEY, "X-Service-ID": "nlp_service"}
    )
    assert response.status_code == 401

    reliability_report.record_abuse(
        AbuseRow(
            check="internal API key: constant time",
            attempts=len(cases) + 1,
            failures=0,
            notes=(
                "every presented key compared by hmac.compare_digest (spied) and the decision "
                "follows its result (right key, wrong key, prefix, suffix, empty); a spy that "
                "answers no locks the right key out"
            ),
        )
    )
