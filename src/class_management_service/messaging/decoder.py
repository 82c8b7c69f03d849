"""Decoding of a consumed event: the platform's envelope and the payload model in one pass.

A valid message is parsed and validated once, straight from its bytes (pydantic's
``model_validate_json`` of the envelope typed with the payload model): no intermediate Python
dict of the payload is built and validated a second time. A message that fails is *poison*
(:class:`PoisonMessage`) with a reason an operator can act on: ``empty_message``,
``invalid_json``, ``invalid_envelope``, ``unexpected_event_type``, ``malformed_id`` (a field
named in ``id_fields`` is not a UUID) or ``schema_invalid``. Which one is decided by decoding the
rejected message again in two steps (the envelope with ``data`` untyped, then ``data``), so a
broken envelope is reported as such even when its payload is broken too, and an event type
this consumer does not handle is reported whatever its payload; only poison pays for that.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from class_management_service.messaging.batch import PoisonMessage
from class_management_service.messaging.envelope import EventEnvelope, TypedEnvelope
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
    _envelope: type[TypedEnvelope[Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The parametrized model is built (and its validator compiled) once per decoder.
        envelope = TypedEnvelope[self.payload_model]  # type: ignore[name-defined]
        object.__setattr__(self, "_envelope", envelope)

    def __call__(self, value: bytes | None) -> DecodedEvent[PayloadT]:
        """Decode one Kafka message value; raises :class:`PoisonMessage`."""
        # isspace() is False for b"": together they mean "nothing but whitespace".
        if not value or value.isspace():
            raise PoisonMessage("empty_message", "the message has no value")
        try:
            envelope: TypedEnvelope[PayloadT] = self._envelope.model_validate_json(value)
        except ValidationError:
            return self._two_step(value)
        if envelope.event_type not in self.event_types:
            raise self._unexpected(envelope.event_type)
        return DecodedEvent(
            event_id=envelope.event_id,
            correlation_id=envelope.correlation_id,
            payload=envelope.data,
            trace_context=trace_carrier(envelope.metadata),
        )

    def _two_step(self, value: bytes) -> DecodedEvent[PayloadT]:
        """The envelope, then its ``data``: says why a message the one pass refused is poison."""
        try:
            envelope = EventEnvelope.model_validate_json(value)
        except ValidationError as exc:
            if any(error["type"] == "json_invalid" for error in exc.errors()):
                raise PoisonMessage("invalid_json", str(exc.errors()[0]["msg"])) from exc
            _, text = self._describe(exc)
            raise PoisonMessage("invalid_envelope", text) from exc
        if envelope.event_type not in self.event_types:
            raise self._unexpected(envelope.event_type)
        try:
            payload = self.payload_model.model_validate(envelope.data)
        except ValidationError as exc:
            raise PoisonMessage(*self._describe(exc)) from exc
        # Validating the JSON text and the parsed object should agree; if they ever do not,
        # the message is decoded as before rather than dead-lettered.
        return DecodedEvent(
            event_id=envelope.event_id,
            correlation_id=envelope.correlation_id,
            payload=payload,
            trace_context=trace_carrier(envelope.metadata),
        )

    @staticmethod
    def _unexpected(event_type: str) -> PoisonMessage:
        return PoisonMessage(
            "unexpected_event_type", f"event_type {event_type!r} is not handled here"
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
