"""Wire models of the consumed ``BatchAuthorMatchesSuggestedV1`` event and its two-step decoding.

Decoding is strict where the service needs a value to store a row (batch, class, essay and
student ids must be UUIDs, a confidence must lie in 0..1) and tolerant everywhere else: unknown
extra fields are ignored, ``course_code`` may be missing (older producers), and the base-event
fields are optional. A message that fails is *poison*: :class:`PoisonMessage` says why, and the
consumer dead-letters it instead of retrying it forever.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from class_management_service.courses.domain import CourseCode
from class_management_service.messaging import topics
from class_management_service.messaging.consumer import PoisonMessage
from class_management_service.messaging.envelope import EventEnvelope
from class_management_service.observability.context import trace_carrier

ACCEPTED_EVENT_TYPES = frozenset(
    {topics.BATCH_AUTHOR_MATCHES_SUGGESTED, topics.BATCH_AUTHOR_MATCHES_SUGGESTED_SHORT}
)

# Fields whose values must be UUIDs: a failure on one of them is a "malformed id", which tells
# an operator more than a generic schema error (e.g. batch_id="single-essay-batch").
_ID_FIELDS = frozenset({"batch_id", "class_id", "essay_id", "student_id"})


class _Tolerant(BaseModel):
    # Newer producers may add fields; they are ignored, never rejected.
    model_config = ConfigDict(extra="ignore", frozen=True)


# Fields this service stores or decides on are typed strictly. Purely informational ones
# (names, metadata, summaries) are carried as the producer sent them (``Any``): a malformed
# informational field must not send a whole batch of essays to the dead-letter topic, and not
# re-validating the metadata objects keeps decoding cheap on the hot path.


class StudentMatchSuggestion(_Tolerant):
    student_id: uuid.UUID
    student_name: Any = None
    student_email: Any = None
    confidence_score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    match_reasons: list[str] = Field(default_factory=list)
    extraction_metadata: Any = None


class EssayMatchResult(_Tolerant):
    essay_id: uuid.UUID
    text_storage_id: Any = None
    filename: str | None = None
    # "Ordered by confidence" according to the producer; the selection never relies on it.
    suggestions: list[StudentMatchSuggestion] = Field(default_factory=list)
    no_match_reason: Any = None
    extraction_metadata: Any = None


class BatchAuthorMatchesSuggestedV1(_Tolerant):
    event_name: Any = topics.BATCH_AUTHOR_MATCHES_SUGGESTED_SHORT
    entity_id: Any = None
    entity_type: Any = None
    parent_id: Any = None
    timestamp: Any = None

    batch_id: uuid.UUID
    class_id: uuid.UUID
    course_code: CourseCode | None = None
    match_results: list[EssayMatchResult] = Field(default_factory=list)
    processing_summary: Any = None
    processing_metadata: Any = None


class AuthorMatchEvent(BaseModel):
    """A fully decoded event: the envelope's identity plus the typed payload."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID
    correlation_id: uuid.UUID
    payload: BatchAuthorMatchesSuggestedV1
    #: The W3C trace context of the envelope's ``metadata`` (traceparent/tracestate), if any.
    trace_context: dict[str, str] = Field(default_factory=dict)


def _describe(exc: ValidationError) -> tuple[str, str]:
    """(reason, short human text) for a validation failure."""
    errors = exc.errors(include_url=False, include_input=False)
    malformed_id = any(
        error["loc"] and str(error["loc"][-1]) in _ID_FIELDS and error["type"].startswith("uuid")
        for error in errors
    )
    text = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        for error in errors[:5]
    )
    if len(errors) > 5:
        text += f"; ... ({len(errors)} errors)"
    return ("malformed_id" if malformed_id else "schema_invalid"), text


def decode_author_match_event(value: bytes | None) -> AuthorMatchEvent:
    """Two-step decode of one Kafka message value; raises :class:`PoisonMessage`."""
    if value is None or not value.strip():
        raise PoisonMessage("empty_message", "the message has no value")
    try:
        envelope = EventEnvelope.model_validate_json(value)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise PoisonMessage("invalid_json", str(exc.errors()[0]["msg"])) from exc
        _, text = _describe(exc)
        raise PoisonMessage("invalid_envelope", text) from exc
    if envelope.event_type not in ACCEPTED_EVENT_TYPES:
        raise PoisonMessage(
            "unexpected_event_type", f"event_type {envelope.event_type!r} is not handled here"
        )
    try:
        payload = BatchAuthorMatchesSuggestedV1.model_validate(envelope.data)
    except ValidationError as exc:
        reason, text = _describe(exc)
        raise PoisonMessage(reason, text) from exc
    return AuthorMatchEvent(
        event_id=envelope.event_id,
        correlation_id=envelope.correlation_id,
        payload=payload,
        trace_context=trace_carrier(envelope.metadata),
    )
