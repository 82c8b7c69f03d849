"""The error taxonomy: what can go wrong, as the service's own terms.

- :class:`ServiceError` subclasses: a use case refusing a request (each maps to one HTTP status
  and contract code; ``http/errors.py`` turns them into the contract's error body).
- Database failures, wherever they surface: :func:`is_conflict` (a constraint lost a race: the
  data conflicts, the service is fine), :func:`is_unavailable` (the database is down, restarting
  or busy beyond the bounded waits: retry later) and :data:`DATABASE_UNAVAILABLE`, what a
  worker waits out around each pass instead of crashing.

Broker failures are classified where the broker is used (``outbox/sending.py``,
``messaging/``), as aiokafka's ``retriable`` flag says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy.exc
from pydantic import BaseModel

from class_management_service.db import sqlstate


class ServiceError(Exception):
    status_code = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationFailed(ServiceError):
    status_code = 422
    code = "VALIDATION_ERROR"


class MalformedRequest(ServiceError):
    status_code = 400
    code = "BAD_REQUEST"


class Unauthorized(ServiceError):
    status_code = 401
    code = "UNAUTHORIZED"


class NotFound(ServiceError):
    """Also answers for another teacher's resources: existence must not leak across teachers."""

    status_code = 404
    code = "NOT_FOUND"


class Conflict(ServiceError):
    status_code = 409
    code = "CONFLICT"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class DependencyUnavailable(ServiceError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"


class ErrorDetail(BaseModel):
    code: str
    message: str
    correlation_id: str
    service: str
    timestamp: datetime
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    """The error body every non-2xx response carries (documented in OpenAPI)."""

    error: ErrorDetail


# OpenAPI: the error responses each route may give, with the contract's body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Malformed request (e.g. an id that is not a UUID)"),
        (401, "Missing identity headers"),
        (404, "Not found, or owned by another teacher"),
        (409, "Conflicts with existing data"),
        (413, "Request body too large"),
        (422, "Request failed validation"),
        (431, "Request line and headers too large (the server's limit, 256 KiB by default)"),
        (500, "Unexpected failure (no details are leaked)"),
        (503, "A dependency is unavailable"),
    )
}


_INTEGRITY_CLASS = "23"
# SQLSTATEs (or their classes) of waits that ran out and of a database that is going away or
# overloaded: a retry may well succeed, so 503 rather than 500.
_RETRYABLE_SQLSTATES = ("55P03", "57014", "40001", "40P01", "57P01", "57P02", "57P03")
_RETRYABLE_CLASSES = ("08", "53")


def describe(exc: BaseException, limit: int | None = None) -> str:
    """An exception as logs, health details and stored errors show it (never a traceback)."""
    return f"{type(exc).__name__}: {exc}"[:limit]


def is_conflict(exc: BaseException) -> bool:
    code = sqlstate(exc)
    return code is not None and code.startswith(_INTEGRITY_CLASS)


def is_unavailable(exc: BaseException) -> bool:
    """A failure a retry may well get past (503 to a request), not a bug (500)."""
    code = sqlstate(exc)
    if code is not None:
        return code in _RETRYABLE_SQLSTATES or code[:2] in _RETRYABLE_CLASSES
    # No SQLSTATE: a pool wait that ran out, or a connection that failed or was lost.
    return isinstance(
        exc,
        sqlalchemy.exc.TimeoutError
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | asyncpg.InterfaceError
        | ConnectionError,
    )


# What a pass of a worker raises when the database is down, restarting, or busy beyond the
# bounded waits (lock_timeout, statement_timeout, pool timeout): worth waiting out, not a bug.
# Wider than :func:`is_unavailable` on purpose: a worker has no caller to answer, so it waits
# out any database error rather than crash-looping through the supervisor.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
