"""Rules the classes API enforces over a real PostgreSQL: clean 401/400/422 bodies on bad input."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.http_helpers import (
    assert_error,
    teacher,
)

A, B = teacher("teacher-a"), teacher("teacher-b")

INVALID_CREATE_BODIES: list[Any] = [
    {"name": "", "course_codes": ["ENG5"]},
    {"name": "   ", "course_codes": ["ENG5"]},
    {"name": "x" * 101, "course_codes": ["ENG5"]},
    {"name": "bad\x00name", "course_codes": ["ENG5"]},
    {"name": "9A", "course_codes": []},
    {"name": "9A", "course_codes": ["ENG5", "SV1"]},
    {"name": "9A", "course_codes": ["ENG5", "ENG5"]},
    {"name": "9A", "course_codes": ["ENG9"]},
    {"name": "9A"},
    {"course_codes": ["ENG5"]},
    ["not", "an", "object"],
]
INVALID_LIST_QUERIES = [
    "limit=0",
    "limit=201",
    "offset=-1",
    "offset=99999999999999999999",
    "sort=id",
    "course_code=ENG9",
    "q=" + "x" * 256,
]


async def test_bad_requests_get_clean_401_and_422_bodies(api_client: httpx.AsyncClient) -> None:
    for payload in INVALID_CREATE_BODIES:
        response = await api_client.post("/v1/classes/", json=payload, headers=A)
        error = assert_error(response, 422, "VALIDATION_ERROR")
        assert error["details"]["errors"], payload
    # JSON may carry a lone surrogate, which PostgreSQL cannot store: a 422, never a 500.
    surrogate = await api_client.post(
        "/v1/classes/",
        content=b'{"name": "\\ud800", "course_codes": ["ENG5"]}',
        headers={**A, "Content-Type": "application/json"},
    )
    assert_error(surrogate, 422, "VALIDATION_ERROR")
    for query in INVALID_LIST_QUERIES:
        assert_error(
            await api_client.get(f"/v1/classes/?{query}", headers=A), 422, "VALIDATION_ERROR"
        )
    assert_error(await api_client.get("/v1/classes/not-a-uuid", headers=A), 400, "BAD_REQUEST")

    class_path = f"/v1/classes/{uuid.uuid4()}"
    for method, path in [
        ("POST", "/v1/classes/"),
        ("GET", "/v1/classes/"),
        ("GET", class_path),
        ("PUT", class_path),
        ("DELETE", class_path),
    ]:
        response = await api_client.request(
            method, path, json={"name": "x", "course_codes": ["SV1"]}
        )
        assert_error(response, 401, "UNAUTHORIZED")
