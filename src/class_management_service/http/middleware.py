"""One pure-ASGI middleware for every request: correlation id, trace context, metrics, access
log, body limit.

Pure ASGI (not BaseHTTPMiddleware) because it sits on the hot path of every request. The access
log line goes out at INFO only with the ``access_log`` setting (else DEBUG; 5xx always at
WARNING): formatting and writing it cost more than the rest of this middleware together.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from class_management_service.http.errors import error_response
from class_management_service.observability.context import (
    TRACE_FIELDS,
    attach_trace_context,
    detach_trace_context,
    parse_correlation_id,
    set_correlation_id,
)
from class_management_service.observability.metrics import HttpMetrics

logger = logging.getLogger("class_management_service.access")

CORRELATION_HEADER = b"x-correlation-id"
_TRACE_HEADERS = tuple(name.encode() for name in sorted(TRACE_FIELDS))
_TRACEPARENT = b"traceparent"


class RequestTooLarge(Exception):
    pass


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        max_body_bytes: int,
        access_log: bool = False,
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._access_level = logging.INFO if access_log else logging.DEBUG

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        correlation_id = parse_correlation_id(
            headers.get(CORRELATION_HEADER, b"").decode("latin-1") or None
        )
        set_correlation_id(correlation_id)
        correlation_header = (CORRELATION_HEADER, str(correlation_id).encode())
        status = 500
        response_started = False

        declared_length = headers.get(b"content-length")
        if (
            declared_length is not None
            and declared_length.isdigit()
            and (int(declared_length) > self._max_body_bytes)
        ):
            await self._reject_too_large(send, correlation_header)
            self._observe(scope, 413, started)
            return

        # The caller's W3C trace context (traceparent/tracestate) is the current trace while
        # the request is served: logs and the events it causes carry it. (Only looked at when
        # a traceparent came: most requests have none, and this is the hot path.)
        trace_token = (
            attach_trace_context(
                {
                    name.decode(): headers[name].decode("latin-1")
                    for name in _TRACE_HEADERS
                    if name in headers
                }
            )
            if _TRACEPARENT in headers
            else None
        )
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_body_bytes:
                    too_large = True
                    raise RequestTooLarge
            return message

        async def send_with_context(message: Message) -> None:
            nonlocal status, response_started
            if too_large:
                # Reliability fix (tests/reliability/test_abuse_process.py): FastAPI turns any
                # error while reading a JSON body, RequestTooLarge included, into its own 400
                # "error parsing the body"; a chunked body over the limit must be a 413.
                if message["type"] == "http.response.start" and not response_started:
                    response_started, status = True, 413
                    await self._reject_too_large(send, correlation_header)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), correlation_header]
            await send(message)

        try:
            await self._app(scope, limited_receive, send_with_context)
        except RequestTooLarge:
            if not response_started:
                await self._reject_too_large(send, correlation_header)
            status = 413
        except Exception:
            # Last line of defence: log the trace for us, send the contract body to the client.
            logger.exception("unhandled error while serving %s", scope.get("path"))
            if not response_started:
                response = error_response(500, "INTERNAL_ERROR", "An unexpected error occurred.")
                response.headers.append("x-correlation-id", str(correlation_id))
                await response(scope, receive, send)
            status = 500
        finally:
            self._observe(scope, status, started)
            if trace_token is not None:
                detach_trace_context(trace_token)

    async def _reject_too_large(self, send: Send, correlation_header: tuple[bytes, bytes]) -> None:
        response = error_response(413, "PAYLOAD_TOO_LARGE", "The request body is too large.")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [*response.raw_headers, correlation_header],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        # Unmatched paths share one label so random URLs cannot blow up metric cardinality.
        # path_format: the template without parameter convertors ("{class_id}", as in OpenAPI).
        template = getattr(route, "path_format", None) or "unmatched"
        method = scope["method"]
        self._metrics.observe(method, template, status, elapsed)
        level = logging.WARNING if status >= 500 else self._access_level
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "%s %s %s",
                method,
                template,
                status,
                extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
            )
