"""The OpenAPI document itself: every route documented, with the contract's error body, the
identity headers required, and links from created resources to the operations on them.
(Schemathesis holds the service to it: tests/service/test_openapi_fuzz.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.fixture
async def document(api_client: httpx.AsyncClient) -> dict[str, Any]:
    assert (await api_client.get("/docs")).status_code == 200
    body: dict[str, Any] = (await api_client.get("/openapi.json")).json()
    return body


def test_the_schema_documents_every_class_student_and_internal_route(
    document: dict[str, Any],
) -> None:
    error_body = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, methods in document["paths"].items():
        if not path.startswith(("/v1/", "/internal/")):
            continue
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            assert operation["summary"], where
            assert operation["description"], where
            for status in ("400", "401", "404", "413", "422", "500", "503"):
                response = operation["responses"][status]
                assert response["content"]["application/json"]["schema"] == error_body, where
            # Every route needs a caller identity, and says so.
            headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
            if path.endswith("/roster"):
                # Three ways in (internal key, the class's teacher, or none where the operator
                # allows it), so each header is documented and none is required.
                roster_identity = {"x-internal-api-key", "x-service-id", "x-user-id"}
                assert roster_identity <= set(headers), where
                assert not any(headers[name]["required"] for name in roster_identity), where
                continue
            identity = {"x-user-id"} if path.startswith("/v1/") else set()
            if not identity.intersection(headers):
                identity = {"x-internal-api-key", "x-service-id"}
            for name in identity:
                assert headers[name]["required"] is True, where


def test_created_classes_and_students_link_to_the_operations_on_them(
    document: dict[str, Any],
) -> None:
    operations = {
        operation["operationId"]: (method, path)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }

    def linked(method: str, path: str) -> set[tuple[str, str]]:
        links = document["paths"][path][method]["responses"]["201"]["links"]
        return {operations[link["operationId"]] for link in links.values()}

    assert linked("post", "/v1/classes/") == {
        ("get", "/v1/classes/{class_id}"),
        ("put", "/v1/classes/{class_id}"),
        ("delete", "/v1/classes/{class_id}"),
        ("get", "/v1/classes/{class_id}/students"),
        ("post", "/v1/classes/{class_id}/students/import"),
        ("get", "/v1/classes/{class_id}/roster"),
    }
    assert linked("post", "/v1/classes/students") == {
        ("get", "/v1/classes/students/{student_id}"),
        ("put", "/v1/classes/students/{student_id}"),
        ("delete", "/v1/classes/students/{student_id}"),
    }
