"""The served AsyncAPI document (``/asyncapi.json``) is valid AsyncAPI 3.0, by the JSON Schema
the AsyncAPI initiative publishes (npm ``@asyncapi/specs``). Its completeness:
tests/unit/test_asyncapi_document.py; against the events actually published: tests/kafka/docs/."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import jsonschema_rs


def _errors(validator: jsonschema_rs.Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.instance_path)}: {e.message[:300]}" for e in validator.iter_errors(document)]


async def test_the_document_is_valid_asyncapi_3(
    api_client: httpx.AsyncClient, asyncapi_3_schema: dict[str, Any]
) -> None:
    response = await api_client.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["asyncapi"] == "3.0.0"
    validator = jsonschema_rs.validator_for(asyncapi_3_schema)  # compiled once: ~0.1 s
    assert _errors(validator, document) == []
    # The schema is not vacuous: an AsyncAPI 2 verb and an unknown binding field are refused.
    broken = copy.deepcopy(document)
    operation = next(iter(broken["operations"].values()))
    operation["action"] = "publish"
    assert _errors(validator, broken)
