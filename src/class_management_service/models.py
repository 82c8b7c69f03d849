"""Imports every ORM model so ``Base.metadata`` is complete (for Alembic and the drift test)."""

from class_management_service.associations.models import (
    AssociationHistory,
    BatchConfirmation,
    EssayStudentAssociation,
)
from class_management_service.classes.models import ClassMembership, SchoolClass
from class_management_service.courses.models import Course
from class_management_service.db import Base
from class_management_service.messaging.dead_letter_store import (
    DeadLetterDisposition,
    StoredDeadLetter,
)
from class_management_service.messaging.ledger import ProcessedEvent
from class_management_service.outbox.models import OutboxAggregateSequence, OutboxEvent
from class_management_service.students.models import Student

__all__ = [
    "AssociationHistory",
    "Base",
    "BatchConfirmation",
    "ClassMembership",
    "Course",
    "DeadLetterDisposition",
    "EssayStudentAssociation",
    "OutboxAggregateSequence",
    "OutboxEvent",
    "ProcessedEvent",
    "SchoolClass",
    "StoredDeadLetter",
    "Student",
]
