"""Two-step decoding of a consumed event: the platform's envelope, then the payload model.

A message that fails either step is *poison* (:class:`PoisonMessage`) with a reason an operator
can act on: ``empty_message``, ``invalid_json``, ``invalid_envelope``,
``unexpected_event_type``, ``malformed_id`` (a field named in ``id_fields`` is not a UUID) or
``schema_invalid``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from class_management_service.messaging.batch import PoisonMessage
from class_management_service.messaging.envelope import EventEnvelope
from class_management_service.observability.context import trace_carrier

PayloadT = TypeVar("PayloadT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class DecodedEvent(Generic[PayloadT]):
    """A fully decoded event: the envelope's identity plus the typed payload."""

    event_id: uuid.UUID
    correlation_id: uuid.UUID
    payload: PayloadT
    #: The W3C trace context of the envelope's ``metadata`` (traceparent/tracestate), if any.
    trace_context: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventDecoder(Generic[PayloadT]):
    payload_model: type[PayloadT]
    event_types: Collection[str]
    #: Payload fields whose failure to parse as a UUID is reported as ``malformed_id``.
    id_fields: Collection[str] = ()

    def __call__(self, value: bytes | None) -> DecodedEvent[PayloadT]:
        """Decode one Kafka message value; raises :class:`PoisonMessage`."""
        if value is None or not value.strip():
            raise PoisonMessage("empty_message", "the message has no value")
        try:
            envelope = EventEnvelope.model_validate_json(value)
        except ValidationError as exc:
            if any(error["type"] == "json_invalid" for error in exc.errors()):
                raise PoisonMessage("invalid_json", str(exc.errors()[0]["msg"])) from exc
            _, text = self._describe(exc)
            raise PoisonMessage("invalid_envelope", text) from exc
        if envelope.event_type not in self.event_types:
            raise PoisonMessage(
                "unexpected_event_type", f"event_type {envelope.event_type!r} is not handled here"
            )
        try:
            payload = self.payload_model.model_validate(envelope.data)
        except ValidationError as exc:
            raise PoisonMessage(*self._describe(exc)) from exc
        return DecodedEvent(
            event_id=envelope.event_id,
            correlation_id=envelope.correlation_id,
            payload=payload,
            trace_context=trace_carrier(envelope.metadata),
        )

    def _describe(self, exc: ValidationError) -> tuple[str, str]:
        """(reason, short human text) for a validation failure."""
        errors = exc.errors(include_url=False, include_input=False)
        malformed_id = any(
            error["loc"]
            and str(error["loc"][-1]) in self.id_fields
            and error["type"].startswith("uuid")
            for error in errors
        )
        text = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
            for error in errors[:5]
        )
        if len(errors) > 5:
            text += f"; ... ({len(errors)} errors)"
        return ("malformed_id" if malformed_id else "schema_invalid"), text
