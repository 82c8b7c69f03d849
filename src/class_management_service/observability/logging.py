"""Structured JSON logs, one object per line, carrying the correlation id."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from class_management_service.observability.context import peek_correlation_id

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
        # Anything passed with `extra=` becomes a field of its own.
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, service: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka is chatty at INFO about every (re)connection; warnings are what matter.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # Access logs come from our own middleware, with route templates and correlation ids.
    logging.getLogger("uvicorn.access").disabled = True
