"""OpenAPI links: which operations take the id another one answers with.

A client (and schemathesis' stateful phase) follows them from a created class or student to the
operations on it. They live here, in one table, because they describe how routes of different
modules relate rather than any single route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

CLASS = "/v1/classes/{class_id}"
STUDENT = "/v1/classes/students/{student_id}"

# A creating operation (its 201 body has the new "id") -> the path parameter that takes that id,
# and the operations that have it.
LINKS: dict[tuple[str, str], tuple[str, list[tuple[str, str]]]] = {
    ("post", "/v1/classes/"): (
        "class_id",
        [
            ("get", CLASS),
            ("put", CLASS),
            ("delete", CLASS),
            ("get", f"{CLASS}/students"),
            ("post", f"{CLASS}/students/import"),
            ("get", f"{CLASS}/roster"),
        ],
    ),
    ("post", "/v1/classes/students"): (
        "student_id",
        [("get", STUDENT), ("put", STUDENT), ("delete", STUDENT)],
    ),
}


def _add_links(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for (method, path), (parameter, targets) in LINKS.items():
        response = paths[path][method]["responses"]["201"]
        response["links"] = {
            paths[target][target_method]["operationId"]: {
                "operationId": paths[target][target_method]["operationId"],
                "parameters": {parameter: "$response.body#/id"},
            }
            for target_method, target in targets
        }


def install_links(app: FastAPI) -> None:
    """Make ``app.openapi()`` (cached by FastAPI after the first call) carry :data:`LINKS`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _add_links(generate())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
