"""The one place every failure becomes the contract's error body.

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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from class_management_service.db import sqlstate
from class_management_service.errors import (
    Conflict,
    DependencyUnavailable,
    ErrorDetail,
    ErrorResponse,
    MalformedRequest,
    NotFound,
    ServiceError,
    Unauthorized,
    ValidationFailed,
    describe,
    is_conflict,
    is_unavailable,
)
from class_management_service.messaging.envelope import SOURCE_SERVICE
from class_management_service.observability.context import current_correlation_id

logger = logging.getLogger(__name__)


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
        # Every required header is an identity header (http/deps.py): without it, 401.
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
        if is_conflict(exc):
            # A race lost against a concurrent change (e.g. the student named in a confirm was
            # deleted meanwhile): the data conflicts, the service is fine.
            return error_response(
                409,
                Conflict.code,
                "The request conflicts with a concurrent change; reload and try again.",
                {"sqlstate": code},
            )
        if is_unavailable(exc):
            logger.warning(
                "database unavailable for a request",
                extra={"sqlstate": code, "error": describe(exc, 500)},
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
