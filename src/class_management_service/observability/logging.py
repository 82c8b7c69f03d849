"""Structured JSON logs, one object per line, carrying the correlation id and trace id."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from class_management_service.observability.context import current_trace_id, peek_correlation_id

# LogRecord attributes that are plumbing, not information worth a JSON field.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": self._service,
        }
        correlation_id = peek_correlation_id()
        if correlation_id is not None:
            entry["correlation_id"] = str(correlation_id)
        trace_id = current_trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        # Anything passed with `extra=` becomes a field of its own.
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RepeatSuppressor(logging.Filter):
    """Lets one record per (logger, message template) through per window, then counts the rest.

    During a broker outage aiokafka logs the same connection error ~100 times a second; one line
    per window says the same thing, and the next line that passes says how many were dropped.
    """

    def __init__(self, window_seconds: float = 10.0) -> None:
        super().__init__()
        self._window = window_seconds
        self._last_emitted: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self._last_emitted.get(key, float("-inf")) < self._window:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last_emitted[key] = now
        dropped = self._suppressed.pop(key, 0)
        if dropped:
            record.suppressed_repeats = dropped
        return True


class _AiokafkaOnly(logging.Filter):
    def __init__(self, inner: logging.Filter) -> None:
        super().__init__()
        self._inner = inner

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("aiokafka") or bool(self._inner.filter(record))


def configure_logging(level: str, service: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka is chatty at INFO about every (re)connection; warnings are what matter.
    aiokafka = logging.getLogger("aiokafka")
    aiokafka.setLevel(logging.WARNING)
    # Filters on a logger do not apply to its children's records: filter at the handler.
    handler.addFilter(_AiokafkaOnly(RepeatSuppressor()))
    # Access logs come from our own middleware, with route templates and correlation ids.
    logging.getLogger("uvicorn.access").disabled = True
