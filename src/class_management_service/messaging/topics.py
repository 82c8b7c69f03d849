"""Topic names from the platform contract; published events use the topic as event_type."""

from __future__ import annotations

BATCH_AUTHOR_MATCHES_SUGGESTED = "huleedu.batch.author.matches.suggested.v1"
# Older producers put the short name in event_type; both spellings mean the same event.
BATCH_AUTHOR_MATCHES_SUGGESTED_SHORT = "batch.author.matches.suggested"
STUDENT_ASSOCIATIONS_CONFIRMED = "huleedu.class.student.associations.confirmed.v1"
CLASS_CREATED = "huleedu.class.created.v1"
CLASS_UPDATED = "huleedu.class.updated.v1"
STUDENT_CREATED = "huleedu.class.student.created.v1"
STUDENT_UPDATED = "huleedu.class.student.updated.v1"
# Consumed by the platform's websocket service.
TEACHER_NOTIFICATION_REQUESTED = "huleedu.notification.teacher.requested.v1"

# Every topic the outbox relay publishes to (what `check` expects the broker to have).
PUBLISHED = (
    STUDENT_ASSOCIATIONS_CONFIRMED,
    CLASS_CREATED,
    CLASS_UPDATED,
    STUDENT_CREATED,
    STUDENT_UPDATED,
    TEACHER_NOTIFICATION_REQUESTED,
)
