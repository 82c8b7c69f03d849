"""Fixtures of the API-document tests: the AsyncAPI JSON Schema and the headless browser, both
installed by local-infra (``local-infra install asyncapi-specs chromium``) on first use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local_infra.session import SessionInfra
from local_infra.tools import ensure_asyncapi_specs, ensure_chromium


@pytest.fixture(scope="session")
def asyncapi_3_schema(local_infra_session: SessionInfra) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 JSON Schema as ``@asyncapi/specs`` ships it."""
    schemas = ensure_asyncapi_specs(local_infra_session.root / "cache", local_infra_session.log)
    schema: dict[str, Any] = json.loads((schemas / "3.0.0.json").read_text())
    return schema


@pytest.fixture(scope="session")
def chromium(local_infra_session: SessionInfra) -> Path:
    return ensure_chromium(local_infra_session.log)
