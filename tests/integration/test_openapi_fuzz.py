"""Schemathesis over the whole OpenAPI schema, against the app in-process and a real PostgreSQL.

Every operation gets schema-valid (positive) and schema-violating (negative) requests, with the
teacher and internal headers on all of them. The run fails on any 5xx, any undocumented status
or content type, and any response body that does not match its documented schema.

Half of the positive cases aim their path ids at a class and a student that exist (seeded
afresh for each operation, as deletes consume them), so updates, deletes, rosters and imports
reach the database instead of stopping at a 404; fuzzed CSV bodies then get a valid header, so
the fuzzed rows reach the import itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from class_management_service.bootstrap import build_app
from class_management_service.settings import Settings

pytestmark = pytest.mark.postgres

TEACHER = "fuzz-teacher"
EXAMPLES_PER_MODE = 40
MIN_TOTAL_CASES = 1_000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# /healthz answers 503 by design here: the test app has no Redis or Kafka.
SKIPPED = {"GET /healthz"}
CSV_HEADER = "first_name,last_name,legal_full_name,email\n"


@pytest.fixture
def fuzzed_app(make_settings: Callable[..., Settings]) -> Iterator[Any]:
    app = build_app(make_settings())
    yield app
    # Schemathesis runs the app (and its lifespan) on its own event-loop thread; shutting the
    # lifespan down there disposes the engine before the test database is dropped.
    asgi.shutdown_lifespans()


def _seed(app: Any, headers: dict[str, str]) -> dict[str, str]:
    """A class and a student of the fuzzing teacher, for path ids that exist."""
    with asgi.get_client(app) as client:
        school_class = client.post(
            "/v1/classes/", json={"name": "Fuzz", "course_codes": ["ENG5"]}, headers=headers
        )
        student = client.post(
            "/v1/classes/students",
            json={
                "person_name": {"first_name": "Fuzz", "last_name": "Student"},
                "class_ids": [school_class.json()["id"]],
            },
            headers=headers,
        )
    assert school_class.status_code == student.status_code == 201
    return {"class_id": school_class.json()["id"], "student_id": student.json()["id"]}


def _fuzz(
    operation: Any, mode: GenerationMode, headers: dict[str, str], existing_ids: dict[str, str]
) -> int:
    """Run up to EXAMPLES_PER_MODE generated cases of ``operation``; returns how many ran."""
    calls = 0

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), use_existing=st.booleans())
    def call(case: Any, use_existing: bool) -> None:
        nonlocal calls
        if use_existing and mode is GenerationMode.POSITIVE:
            for name in set(case.path_parameters or {}) & set(existing_ids):
                case.path_parameters[name] = existing_ids[name]
            if case.media_type == "text/csv" and isinstance(case.body, str):
                case.body = CSV_HEADER + case.body
        calls += 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        call()
    except hypothesis.errors.Unsatisfiable:
        # Nothing to negate (e.g. no parameters and no body): positive cases only.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return calls


def _operations(schema: Any) -> list[Any]:
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


def test_no_operation_answers_5xx_or_off_schema(
    fuzzed_app: Any, internal_headers: dict[str, str]
) -> None:
    headers = {"X-User-ID": TEACHER, **internal_headers}
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    calls: Counter[str] = Counter()

    operations = _operations(schema)
    for operation in operations:
        if operation.label in SKIPPED:
            continue
        existing_ids = _seed(fuzzed_app, headers)
        for mode in GenerationMode:
            calls[operation.label] += _fuzz(operation, mode, headers, existing_ids)

    assert sum(calls.values()) >= MIN_TOTAL_CASES, calls
    # Every operation was exercised, not just some.
    exercised = {label for label, count in calls.items() if count > 0}
    assert exercised == {operation.label for operation in operations} - SKIPPED


def test_the_schema_documents_every_class_student_and_internal_route(fuzzed_app: Any) -> None:
    with asgi.get_client(fuzzed_app) as client:
        document = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert docs.status_code == 200
    error_body = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, methods in document["paths"].items():
        if not path.startswith(("/v1/classes", "/internal/")):
            continue
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            assert operation["summary"], where
            assert operation["description"], where
            for status in ("401", "404", "422", "500"):
                response = operation["responses"][status]
                assert response["content"]["application/json"]["schema"] == error_body, where
