"""X-User-ID on the teacher routes: required, visible, trimmed (a header parameter validated in
http/deps.py, not a dependency)."""

from __future__ import annotations

import uuid

import httpx
import pytest


async def test_missing_or_blank_teacher_is_401_with_the_contract_body(
    api_client: httpx.AsyncClient, subtests: pytest.Subtests
) -> None:
    # Subtests on one app and database: a refused request writes nothing.
    for headers in ({}, {"X-User-ID": ""}, {"X-User-ID": "   "}):
        with subtests.test(headers=headers):
            for path in (f"/v1/classes/{uuid.uuid4()}", "/v1/classes/", "/v1/classes/students"):
                response = await api_client.get(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.json()["error"]["code"] == "UNAUTHORIZED"
                assert response.headers["x-correlation-id"]


async def test_teacher_id_is_trimmed_and_too_long_is_refused(
    api_client: httpx.AsyncClient,
) -> None:
    created = await api_client.post(
        "/v1/classes/",
        json={"name": "Trimmed", "course_codes": ["ENG5"]},
        headers={"X-User-ID": "  teacher-trim  "},
    )
    assert created.status_code == 201, created.text
    class_id = created.json()["id"]
    found = await api_client.get(f"/v1/classes/{class_id}", headers={"X-User-ID": "teacher-trim"})
    assert found.status_code == 200
    too_long = await api_client.get(f"/v1/classes/{class_id}", headers={"X-User-ID": "t" * 256})
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "VALIDATION_ERROR"
