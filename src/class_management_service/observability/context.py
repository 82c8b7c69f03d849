"""The correlation id of the work in progress, for logs and published events."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

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
