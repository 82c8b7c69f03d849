"""The platform's event envelope.

Consumers decode the envelope and its payload in one pass, :class:`TypedEnvelope` parametrized
by the payload model (see :mod:`.decoder`). Publishers build an :class:`EventEnvelope`, whose
``data`` is untyped, with :func:`new_envelope`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from class_management_service.observability.context import current_trace_carrier

SOURCE_SERVICE = "class_management_service"
CONTENT_TYPE = "application/json"


DataT = TypeVar("DataT")


class TypedEnvelope(BaseModel, Generic[DataT]):
    """The envelope with ``data`` validated as ``DataT`` (a consumer's payload model)."""

    # Unknown extra fields from newer producers are tolerated, not rejected.
    model_config = ConfigDict(extra="ignore")

    event_id: uuid.UUID
    event_type: str
    event_timestamp: datetime
    source_service: str
    schema_version: int = 1
    correlation_id: uuid.UUID
    data_schema_uri: str | None = None
    data: DataT
    metadata: dict[str, Any] | None = None


class EventEnvelope(TypedEnvelope[dict[str, Any]]):
    """The envelope with ``data`` as a plain JSON object: what publishers build."""


def new_envelope(
    *,
    event_type: str,
    data: dict[str, Any],
    correlation_id: uuid.UUID,
    partition_key: str,
    event_id: uuid.UUID | None = None,
    timestamp: datetime | None = None,
) -> EventEnvelope:
    """An envelope for ``data``; its ``metadata`` carries the current W3C trace context
    (``traceparent``/``tracestate``, as the platform's propagator writes them) so the trace of
    the request or event that caused it continues with it."""
    return EventEnvelope(
        event_id=event_id or uuid.uuid4(),
        event_type=event_type,
        event_timestamp=timestamp or datetime.now(UTC),
        source_service=SOURCE_SERVICE,
        correlation_id=correlation_id,
        data=data,
        metadata={"partition_key": partition_key, **current_trace_carrier()},
    )


def kafka_headers(envelope: EventEnvelope) -> dict[str, str]:
    """The headers the platform expects on every published event."""
    headers = {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "correlation_id": str(envelope.correlation_id),
        "source_service": envelope.source_service,
        "schema_version": str(envelope.schema_version),
        "content_type": CONTENT_TYPE,
    }
    trace = (envelope.metadata or {}).get("traceparent")
    if isinstance(trace, str):
        headers["traceparent"] = trace
    return headers
