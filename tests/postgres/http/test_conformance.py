"""An answer the framework gives before any route runs: a method the path does not serve is a 405
whose Allow header lists every method the path does serve, with the contract's error body."""

from __future__ import annotations

import httpx
import pytest

TEACHER = {"X-User-ID": "teacher-conformance"}
SOME_ID = "0b0c5e4e-2f4a-4b0e-8f5e-3c9f1d2a7b61"  # no such class or student: routing comes first


# (method, path, what its Allow header lists)
NOT_SERVED = [
    ("POST", f"/v1/classes/{SOME_ID}", "DELETE, GET, PUT"),
    ("PATCH", f"/v1/classes/students/{SOME_ID}", "DELETE, GET, PUT"),
    ("DELETE", "/v1/classes/", "GET, POST"),
    # The students collection, not a class called "students" (which was a 422).
    ("PUT", "/v1/classes/students", "GET, POST"),
    ("DELETE", "/v1/classes/students", "GET, POST"),
    ("TRACE", "/healthz", "GET"),
    ("OPTIONS", f"/v1/classes/{SOME_ID}/students/import", "POST"),
]


async def test_a_method_the_path_does_not_serve_is_405_with_every_allowed_method(
    api_client: httpx.AsyncClient, subtests: pytest.Subtests
) -> None:
    # Subtests on one app and database: nothing here writes, so no case needs a fresh one.
    for method, path, allowed in NOT_SERVED:
        with subtests.test(method=method, path=path):
            response = await api_client.request(method, path, headers=TEACHER)
            assert response.status_code == 405
            assert response.headers["allow"] == allowed
            assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
