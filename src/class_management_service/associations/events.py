"""Wire models of the consumed ``BatchAuthorMatchesSuggestedV1`` event and its decoder.

Decoding is strict where the service needs a value to store a row (batch, class, essay and
student ids must be UUIDs, a confidence must lie in 0..1) and tolerant everywhere else: unknown
extra fields are ignored, ``course_code`` may be missing (older producers), and the base-event
fields are optional. A message that fails is *poison* (:mod:`..messaging.decoder` says why), and
the consumer dead-letters it instead of retrying it forever.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from class_management_service.courses.domain import CourseCode
from class_management_service.messaging import topics
from class_management_service.messaging.decoder import DecodedEvent, EventDecoder

ACCEPTED_EVENT_TYPES = frozenset(
    {topics.BATCH_AUTHOR_MATCHES_SUGGESTED, topics.BATCH_AUTHOR_MATCHES_SUGGESTED_SHORT}
)


class _Tolerant(BaseModel):
    # Newer producers may add fields; they are ignored, never rejected.
    model_config = ConfigDict(extra="ignore", frozen=True)


# Fields this service stores or decides on are typed strictly. Purely informational ones of the
# event (names, metadata, summaries) are carried as the producer sent them (``Any``): a malformed
# informational field must not send a whole batch of essays to the dead-letter topic. Those of
# each essay and suggestion (the student's name and e-mail, ``text_storage_id``,
# ``no_match_reason``, ``extraction_metadata``) are not declared at all: nothing here reads them,
# and leaving them to ``extra="ignore"`` spares building tens of Python objects per essay on the
# hot path (they are still parsed, so the JSON stays checked).


@with_config(ConfigDict(extra="ignore"))
class StudentMatchSuggestion(TypedDict):
    # A typed dict rather than a model: an event carries ~90 of them, and pydantic builds a
    # dict several times faster than a model (its ``__dict__`` and fields-set), and frees it
    # faster (measured: a third of decoding and freeing an event). Read ``match_reasons``
    # through :func:`match_reasons`, which supplies its default. (A comment, not a docstring:
    # a docstring would become the schema's description in the AsyncAPI document.)

    student_id: uuid.UUID
    confidence_score: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    # A tuple: the ranking keeps it as it is, and the collector stops tracking a tuple of strs.
    match_reasons: NotRequired[tuple[str, ...]]


def match_reasons(suggestion: StudentMatchSuggestion) -> tuple[str, ...]:
    """Why the producer suggested this student (nothing, when it did not say)."""
    return suggestion.get("match_reasons", ())


class EssayMatchResult(_Tolerant):
    essay_id: uuid.UUID
    filename: str | None = None
    # "Ordered by confidence" according to the producer; the selection never relies on it.
    suggestions: list[StudentMatchSuggestion] = Field(default_factory=list)


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

# Decodes one Kafka message value; raises PoisonMessage.
decode_author_match_event = EventDecoder(
    BatchAuthorMatchesSuggestedV1,
    ACCEPTED_EVENT_TYPES,
    # A failure on one of these is a "malformed id", which tells an operator more than a generic
    # schema error (e.g. batch_id="single-essay-batch").
    id_fields=frozenset({"batch_id", "class_id", "essay_id", "student_id"}),
)
