"""The correlation id and trace context of the work in progress, for logs and published events.

One convention: whoever starts a unit of work sets both for its duration, and everything below
reads them from here (logs, error bodies, envelopes built meanwhile). An HTTP request: the
middleware, from the caller's headers. Work caused by a stored event (the timeout monitor
finalizing a batch): :func:`continued_trace`, with the correlation id and trace context the
event arrived with.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_correlation_id: ContextVar[uuid.UUID | None] = ContextVar("correlation_id", default=None)


def current_correlation_id() -> uuid.UUID:
    """The id of the request/event being handled; a fresh one outside any (never None)."""
    value = _correlation_id.get()
    if value is None:
        value = uuid.uuid4()
        _correlation_id.set(value)
    return value


def peek_correlation_id() -> uuid.UUID | None:
    return _correlation_id.get()


def set_correlation_id(value: uuid.UUID) -> None:
    _correlation_id.set(value)


def parse_correlation_id(raw: str | None) -> uuid.UUID:
    """Use the caller's id when it is a UUID; otherwise start a new one (never fail a request)."""
    if raw:
        try:
            return uuid.UUID(raw)
        except ValueError:
            pass
    return uuid.uuid4()


# ---- W3C trace context ----------------------------------------------------------------------
# OpenTelemetry's context (a contextvar) carries the caller's trace: the middleware attaches what
# an HTTP request brought, a worker what a stored event brought; every envelope built meanwhile
# carries it on (messaging.envelope.new_envelope). Only the API is used: without an SDK no spans
# are recorded, the incoming trace context is continued as it arrived.

_PROPAGATOR = TraceContextTextMapPropagator()
TRACE_FIELDS = frozenset(_PROPAGATOR.fields)  # {"traceparent", "tracestate"}


def trace_carrier(values: Mapping[str, object] | None) -> dict[str, str]:
    """The trace-context entries of a carrier (HTTP headers, an envelope's ``metadata``)."""
    if not values:
        return {}
    return {
        key: value
        for key, value in values.items()
        if key in TRACE_FIELDS and isinstance(value, str)
    }


def current_trace_carrier() -> dict[str, str]:
    """``traceparent``/``tracestate`` of the trace in progress ({} when there is none)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def attach_trace_context(carrier: Mapping[str, str]) -> Token[otel_context.Context]:
    """Make the carrier's trace the current one; returns the token for :func:`detach_trace_context`.

    A malformed ``traceparent`` is ignored by the propagator (no trace), never an error.
    """
    return otel_context.attach(_PROPAGATOR.extract(dict(carrier)))


def detach_trace_context(token: Token[otel_context.Context]) -> None:
    otel_context.detach(token)


@contextmanager
def continued_trace(
    carrier: Mapping[str, str] | None, *, correlation_id: uuid.UUID | None = None
) -> Iterator[None]:
    """Run a block in the trace the carrier names (e.g. the event that caused the work), and
    with its correlation id when given."""
    token = attach_trace_context(carrier or {})
    correlation_token = _correlation_id.set(correlation_id) if correlation_id else None
    try:
        yield
    finally:
        if correlation_token is not None:
            _correlation_id.reset(correlation_token)
        detach_trace_context(token)
