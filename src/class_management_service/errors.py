"""Service errors and the one handler that turns every failure into the contract's error body.

Body: ``{"error": {"code", "message", "correlation_id", "service", "timestamp", "details"}}``.
Clients never see a stack trace; unexpected failures are logged with theirs and answered 500.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from class_management_service.db import sqlstate
from class_management_service.messaging.envelope import SOURCE_SERVICE
from class_management_service.observability.context import current_correlation_id

logger = logging.getLogger(__name__)


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


def error_response(
    status_code: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    body = ErrorResponse(
        error=ErrorDetail(
            code=code,
            message=message,
            correlation_id=str(current_correlation_id()),
            service=SOURCE_SERVICE,
            timestamp=datetime.now(UTC),
            details=details or {},
        )
    )
    return JSONResponse(status_code=status_code, content=body.model_dump(mode="json"))


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


def _is_retryable(exc: Exception, code: str | None) -> bool:
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


def _readable_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: echoing the input back could reflect huge or hostile data.
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in exc.errors()
    ]


# The methods a 405's Allow header can name (FastAPI routes serve exactly their own; HEAD only
# where a plain Starlette route adds it to GET, e.g. /docs).
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's own ``Allow`` names only the
    first route matching the path, and here each method of a path is a route of its own; the
    router is asked for each method instead, through the public ``matches``."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return error_response(exc.status_code, exc.code, exc.message, exc.details)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Every required header is an identity header (http/identity.py): without it, 401.
        missing_headers = [
            str(error["loc"][-1])
            for error in exc.errors()
            if error.get("type") == "missing" and error.get("loc", ())[:1] == ("header",)
        ]
        if missing_headers:
            return error_response(
                401,
                Unauthorized.code,
                "Identity headers are missing.",
                {"missing_headers": missing_headers},
            )
        errors = _readable_validation_errors(exc)
        if any(error["loc"][:1] == ["path"] for error in errors):
            # A path that names no resource is a malformed request, on every route (the
            # platform's clients expect 400 for an id that is not a UUID, not 404 or 422).
            return error_response(
                400,
                MalformedRequest.code,
                "The path is malformed (e.g. an id that is not a UUID).",
                {"errors": [error for error in errors if error["loc"][:1] == ["path"]]},
            )
        return error_response(
            422, ValidationFailed.code, "The request failed validation.", {"errors": errors}
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: NotFound.code, 405: "METHOD_NOT_ALLOWED", 401: Unauthorized.code}
        response = error_response(
            exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"), str(exc.detail)
        )
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed_methods(request)
        return response

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        code = sqlstate(exc)
        if code is not None and code.startswith(_INTEGRITY_CLASS):
            # A race lost against a concurrent change (e.g. the student named in a confirm was
            # deleted meanwhile): the data conflicts, the service is fine.
            return error_response(
                409,
                Conflict.code,
                "The request conflicts with a concurrent change; reload and try again.",
                {"sqlstate": code},
            )
        if _is_retryable(exc, code):
            logger.warning(
                "database unavailable for a request",
                extra={"sqlstate": code, "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
            response = error_response(
                503,
                DependencyUnavailable.code,
                "The database is busy or unavailable; retry shortly.",
                {"dependency": "database", "retryable": True},
            )
            response.headers["Retry-After"] = "1"
            return response
        return await on_unexpected(request, exc)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(500, ServiceError.code, "An unexpected error occurred.")

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(sqlalchemy.exc.SQLAlchemyError, on_database_error)
    app.add_exception_handler(asyncpg.PostgresError, on_database_error)
    app.add_exception_handler(asyncpg.InterfaceError, on_database_error)
    app.add_exception_handler(ConnectionError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
