"""The association's states and how they were decided: values shared by the ORM model, the
decisions, the API schemas and the events, so none of those imports another for them."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple


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


class RankedSuggestion(NamedTuple):
    """One valid suggestion of an essay's author as stored (``suggestions`` column), ranked by
    confidence (highest first), ties by the lowest student id. A named tuple: immutable, and
    read back for every alternative a listing shows at a fraction of a frozen dataclass's
    cost (whose ``__init__`` sets each field through ``object.__setattr__``). Stored as
    ``[{student_id, confidence_score, match_reasons}, ...]`` (written at ingestion by
    :mod:`.selection`)."""

    student_id: uuid.UUID
    confidence_score: float
    match_reasons: tuple[str, ...]

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
