"""The association's states and how they were decided: values shared by the ORM model, the
decisions, the API schemas and the events, so none of those imports another for them."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple, Protocol


class AssociationStatus(enum.StrEnum):
    PENDING_VALIDATION = "pending_validation"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    TIMEOUT_CONFIRMED = "timeout_confirmed"
    NO_MATCH = "no_match"


class ValidationMethod(enum.StrEnum):
    HUMAN = "human"
    TIMEOUT = "timeout"
    AUTO = "auto"


# Statuses in which an essay has no student: nothing suggested, or the suggestion was refused.
STUDENTLESS_STATUSES = (AssociationStatus.NO_MATCH, AssociationStatus.REJECTED)


class HistoryMethod(enum.StrEnum):
    """What changed an association (``association_history.method``)."""

    INGESTED = "ingested"
    AUTO = "auto"
    TEACHER_CONFIRM = "teacher_confirm"
    TEACHER_REJECT = "teacher_reject"
    TEACHER_REASSIGN = "teacher_reassign"
    TIMEOUT = "timeout"
    ERASURE = "erasure"


#: The actor recorded for changes no person made (ingestion, the auto-confirm policy, timeout).
SYSTEM_ACTOR = "system"


class Suggestion(Protocol):
    """What the stored ranking says of each suggestion: a :class:`RankedSuggestion`, or the
    consumed event's suggestion model it is ranked from."""

    @property
    def student_id(self) -> uuid.UUID: ...
    @property
    def confidence_score(self) -> float: ...
    @property
    def match_reasons(self) -> Sequence[str]: ...


class RankedSuggestion(NamedTuple):
    """One valid suggestion of an essay's author as stored (``suggestions`` column), ranked by
    confidence (highest first), ties by the lowest student id. A named tuple: immutable, and
    built for every suggestion of every ingested essay at a fraction of a frozen dataclass's
    cost (whose ``__init__`` sets each field through ``object.__setattr__``)."""

    student_id: uuid.UUID
    confidence_score: float
    match_reasons: tuple[str, ...]

    @staticmethod
    def all_to_json(suggestions: Sequence[Suggestion]) -> str:
        """The stored form (the ``suggestions`` jsonb column): ``[{student_id,
        confidence_score, match_reasons}, ...]``. Written out directly: it runs for every
        ingested essay, and ``json.dumps`` of the equivalent dicts cost ten times as much."""
        if not suggestions:
            return "[]"
        return (
            "["
            + ",".join(
                f'{{"student_id":"{_id_text(s.student_id.int)}",'
                f'"confidence_score":{s.confidence_score!r},'
                f'"match_reasons":{_reasons_json(tuple(s.match_reasons))}}}'
                for s in suggestions
            )
            + "]"
        )

    @classmethod
    def all_from_json(cls, items: Iterable[Mapping[str, Any]]) -> tuple[RankedSuggestion, ...]:
        return tuple(
            cls(
                uuid.UUID(item["student_id"]),
                float(item["confidence_score"]),
                tuple(item["match_reasons"]),
            )
            for item in items
        )


@lru_cache(maxsize=65536)
def _id_text(value: int) -> str:
    # The same students recur across a class's essays, and str(UUID) costs ~1 us; keyed by the
    # integer, whose hash is native (UUID.__hash__ is Python code).
    return str(uuid.UUID(int=value))


@lru_cache(maxsize=4096)
def _reasons_json(reasons: tuple[str, ...]) -> str:
    # Few distinct reason lists recur across essays: encode each once.
    return json.dumps(list(reasons))
