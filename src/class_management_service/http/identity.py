"""Who is calling: a teacher (via the gateway) or an internal platform service."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from class_management_service.errors import Unauthorized

# Declared required in OpenAPI; a missing one is answered 401, not 422 (errors.py: a missing
# required header is always a missing identity). A value with no visible character is none.
_VISIBLE = {"pattern": r"\S"}


# Dependencies are `async def` although they never await: FastAPI runs a plain `def` dependency
# in the thread pool, a thread hand-off per request that cost ~30 % of GET throughput.
async def _teacher_id(
    x_user_id: Annotated[
        str,
        Header(
            description="The authenticated teacher, set by the API gateway (401 without).",
            max_length=255,
            json_schema_extra=_VISIBLE,
        ),
    ],
) -> str:
    if not x_user_id.strip():
        raise Unauthorized("The X-User-ID header is required.")
    return x_user_id.strip()


TeacherId = Annotated[str, Depends(_teacher_id)]


async def _internal_service(
    request: Request,
    x_internal_api_key: Annotated[
        str, Header(description="Shared secret of internal platform callers (401 if wrong).")
    ],
    x_service_id: Annotated[
        str,
        Header(
            description="Name of the calling service.", max_length=255, json_schema_extra=_VISIBLE
        ),
    ],
) -> str:
    expected: bytes = request.app.state.internal_api_key
    # Constant-time comparison: response timing must not reveal how much of the key matched.
    key_ok = hmac.compare_digest(x_internal_api_key.encode(), expected)
    if not key_ok or not x_service_id.strip():
        # Never echo or log the presented key.
        raise Unauthorized("Valid X-Internal-API-Key and X-Service-ID headers are required.")
    return x_service_id


InternalService = Annotated[str, Depends(_internal_service)]
