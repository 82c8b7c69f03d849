"""The association's states and how they were decided: values shared by the ORM model, the
decisions, the API schemas and the events, so none of those imports another for them."""

from __future__ import annotations

import enum


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
