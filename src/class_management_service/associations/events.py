"""Wire models of the consumed ``BatchAuthorMatchesSuggestedV1`` event and its decoder.

Decoding is strict where the service needs a value to store a row (batch, class, essay and
student ids must be UUIDs, a confidence must lie in 0..1) and tolerant everywhere else: unknown
extra fields are ignored, ``course_code`` may be missing (older producers), and the base-event
fields are optional. A message that fails is *poison* (:mod:`..messaging.decoder` says why), and
the consumer dead-letters it instead of retrying it forever.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from class_management_service.courses.domain import CourseCode
from class_management_service.messaging import topics
from class_management_service.messaging.decoder import DecodedEvent, EventDecoder

ACCEPTED_EVENT_TYPES = frozenset(
    {topics.BATCH_AUTHOR_MATCHES_SUGGESTED, topics.BATCH_AUTHOR_MATCHES_SUGGESTED_SHORT}
)


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


AuthorMatchEvent = DecodedEvent[BatchAuthorMatchesSuggestedV1]

# Two-step decode of one Kafka message value; raises PoisonMessage.
decode_author_match_event = EventDecoder(
    BatchAuthorMatchesSuggestedV1,
    ACCEPTED_EVENT_TYPES,
    # A failure on one of these is a "malformed id", which tells an operator more than a generic
    # schema error (e.g. batch_id="single-essay-batch").
    id_fields=frozenset({"batch_id", "class_id", "essay_id", "student_id"}),
)
