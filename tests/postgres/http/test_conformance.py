"""HTTP answers the framework gives before any route runs: a method the path does not serve,
a body that is not the declared media type or not JSON. Each carries the contract's error body."""

from __future__ import annotations

import httpx
import pytest

TEACHER = {"X-User-ID": "teacher-conformance"}
SOME_ID = "0b0c5e4e-2f4a-4b0e-8f5e-3c9f1d2a7b61"  # no such class or student: routing comes first


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", f"/v1/classes/{SOME_ID}", "DELETE, GET, PUT"),
        ("PATCH", f"/v1/classes/students/{SOME_ID}", "DELETE, GET, PUT"),
        ("DELETE", "/v1/classes/", "GET, POST"),
        # The students collection, not a class called "students" (which was a 422).
        ("PUT", "/v1/classes/students", "GET, POST"),
        ("DELETE", "/v1/classes/students", "GET, POST"),
        ("TRACE", "/healthz", "GET"),
        ("OPTIONS", f"/v1/classes/{SOME_ID}/students/import", "POST"),
    ],
)
async def test_a_method_the_path_does_not_serve_is_405_with_every_allowed_method(
    api_client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await api_client.request(method, path, headers=TEACHER)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
