"""One pure-ASGI middleware for every request: correlation id, trace context, metrics, access
log, body limit and body deadline.

The body deadline ends the slowloris of the body: uvicorn waits for a declared body as long as
its bytes trickle in (the head has its own deadline, ``http/server.py``). A body not received
whole ``body_timeout_seconds`` after the route started reading it is answered 408 and the
connection closed.

Pure ASGI (not BaseHTTPMiddleware) because it sits on the hot path of every request. The access
log line goes out at INFO only with the ``access_log`` setting (else DEBUG; 5xx always at
WARNING): formatting and writing it cost more than the rest of this middleware together.
"""

from __future__ import annotations

import asyncio
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


class _Refused(Exception):
    """The request is answered with this error instead of whatever the app would answer."""

    status: int
    code: str
    message: str
    closes_connection: bool = False


class RequestTooLarge(_Refused):
    status, code, message = 413, "PAYLOAD_TOO_LARGE", "The request body is too large."


class BodyTimedOut(_Refused):
    # The rest of the body may never come, so the connection cannot carry another request.
    status, code, closes_connection = 408, "REQUEST_TIMEOUT", True

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.message = f"The request body did not arrive within {seconds:g} s."


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        max_body_bytes: int,
        body_timeout_seconds: float,
        access_log: bool = False,
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._body_timeout_seconds = body_timeout_seconds
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
            await self._refuse(send, RequestTooLarge(), correlation_header)
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
        refused: _Refused | None = None
        # Armed by the first read, which a route that takes no body (every GET) never makes;
        # reads after the body's last part (waiting for a disconnect) have no deadline.
        body_deadline: float | None = None
        body_complete = False

        async def limited_receive() -> Message:
            nonlocal received, refused, body_deadline, body_complete
            if body_complete:
                return await receive()
            if body_deadline is None:
                body_deadline = asyncio.get_running_loop().time() + self._body_timeout_seconds
            try:
                async with asyncio.timeout_at(body_deadline):
                    message = await receive()
            except TimeoutError:
                refused = BodyTimedOut(self._body_timeout_seconds)
                raise refused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_body_bytes:
                    refused = RequestTooLarge()
                    raise refused
                body_complete = not message.get("more_body", False)
            return message

        async def send_with_context(message: Message) -> None:
            nonlocal status, response_started
            if refused is not None:
                # Reliability fix (tests/reliability/test_abuse_process.py): FastAPI turns any
                # error while reading a body, these included, into its own 400 "error parsing
                # the body"; a chunked body over the limit must be a 413, a late one a 408.
                if message["type"] == "http.response.start" and not response_started:
                    response_started, status = True, refused.status
                    await self._refuse(send, refused, correlation_header)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), correlation_header]
            await send(message)

        try:
            await self._app(scope, limited_receive, send_with_context)
        except _Refused as refusal:
            if not response_started:
                await self._refuse(send, refusal, correlation_header)
            status = refusal.status
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

    @staticmethod
    async def _refuse(
        send: Send, refusal: _Refused, correlation_header: tuple[bytes, bytes]
    ) -> None:
        response = error_response(refusal.status, refusal.code, refusal.message)
        headers = [*response.raw_headers, correlation_header]
        if refusal.closes_connection:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
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
