"""Every event type the service publishes or consumes, as the pydantic models the code builds or
decodes them with: the input of :mod:`.document`.

A topic constant in :mod:`..messaging.topics` without an entry here makes building the document
fail (:func:`check_complete`), and ``tests/unit/test_asyncapi_document.py`` finds every topic the
code enqueues events for, so a new event type cannot go undocumented.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from class_management_service.associations.events import (
    ACCEPTED_EVENT_TYPES,
    BatchAuthorMatchesSuggestedV1,
)
from class_management_service.associations.schemas import StudentAssociationsConfirmedV1
from class_management_service.classes.schemas import ClassCreatedV1, ClassUpdatedV1
from class_management_service.messaging import topics
from class_management_service.messaging.envelope import EventEnvelope
from class_management_service.notifications import payloads
from class_management_service.notifications.schemas import TeacherNotificationRequestedV1
from class_management_service.students.schemas import StudentCreatedV1, StudentUpdatedV1


@dataclass(frozen=True, slots=True)
class EventType:
    """One message: its name in the document, the envelope model (``data`` typed) and what the
    Kafka key holds."""

    name: str
    envelope: type[EventEnvelope]
    key: str
    summary: str


@dataclass(frozen=True, slots=True)
class Channel:
    """One topic and the event types on it (several for the teacher notifications)."""

    name: str
    address: str
    messages: tuple[EventType, ...]
    description: str


def enveloped(data: type[BaseModel], event_types: frozenset[str], name: str) -> type[EventEnvelope]:
    """The platform's envelope (:class:`EventEnvelope`) with ``data`` as ``data`` and
    ``event_type`` one of ``event_types``: the model the document's payload schema comes from."""
    one_of: Any = Literal[tuple(sorted(event_types))]
    model: type[EventEnvelope] = create_model(
        name, __base__=EventEnvelope, event_type=(one_of, ...), data=(data, ...)
    )
    return model


def _notification(
    notification_type: str, payload: type[BaseModel] | Any, name: str
) -> type[TeacherNotificationRequestedV1]:
    """A teacher notification of one ``notification_type``, its ``payload`` typed (the builders
    in :mod:`..notifications.payloads` dump these models into the untyped field)."""
    kind: Any = Literal[notification_type]
    model: type[TeacherNotificationRequestedV1] = create_model(
        name,
        __base__=TeacherNotificationRequestedV1,
        notification_type=(kind, ...),
        payload=(payload, ...),
    )
    return model


# The payload model of each notification type the builders in notifications/payloads.py send.
NOTIFICATIONS: dict[str, type[BaseModel] | Any] = {
    payloads.CLASS_CREATED: payloads.ClassCreatedPayload,
    # One student added, or a whole roster import (no single student, a count instead).
    payloads.STUDENT_ADDED_TO_CLASS: (
        payloads.StudentAddedPayload | payloads.StudentsImportedPayload
    ),
    payloads.STUDENT_ASSOCIATIONS_CONFIRMED: payloads.AssociationsConfirmedPayload,
    payloads.VALIDATION_TIMEOUT_PROCESSED: payloads.TimeoutProcessedPayload,
}


def _published(topic: str, data: type[BaseModel], key: str, summary: str) -> EventType:
    name = data.__name__
    return EventType(name, enveloped(data, frozenset({topic}), f"{name}Envelope"), key, summary)


def _teacher_notifications() -> tuple[EventType, ...]:
    topic = topics.TEACHER_NOTIFICATION_REQUESTED
    messages = []
    for kind, payload in NOTIFICATIONS.items():
        title = "".join(part.title() for part in kind.split("_"))
        data = _notification(kind, payload, f"{title}Notification")
        messages.append(
            EventType(
                f"TeacherNotificationRequestedV1.{kind}",
                enveloped(data, frozenset({topic}), f"{title}NotificationEnvelope"),
                "the teacher's id (the class's owner): one teacher's notifications stay in order",
                f"Teacher notification `{kind}`",
            )
        )
    return tuple(messages)


@cache
def published_channels() -> tuple[Channel, ...]:
    """The topics the relay publishes outbox rows to (the topic is the envelope's event_type)."""

    def one(topic: str, message: EventType, description: str) -> Channel:
        return Channel(message.name, topic, (message,), description)

    return (
        one(
            topics.CLASS_CREATED,
            _published(topics.CLASS_CREATED, ClassCreatedV1, "the class id", "Class created"),
            "A teacher created a class.",
        ),
        one(
            topics.CLASS_UPDATED,
            _published(topics.CLASS_UPDATED, ClassUpdatedV1, "the class id", "Class updated"),
            "A class's name or course changed (null fields did not change).",
        ),
        one(
            topics.STUDENT_CREATED,
            _published(
                topics.STUDENT_CREATED, StudentCreatedV1, "the student id", "Student created"
            ),
            "A student was created, by the API or a roster import.",
        ),
        one(
            topics.STUDENT_UPDATED,
            _published(
                topics.STUDENT_UPDATED, StudentUpdatedV1, "the student id", "Student updated"
            ),
            "A student changed or joined classes (null fields did not change).",
        ),
        one(
            topics.STUDENT_ASSOCIATIONS_CONFIRMED,
            _published(
                topics.STUDENT_ASSOCIATIONS_CONFIRMED,
                StudentAssociationsConfirmedV1,
                "the batch id",
                "A batch's essay-to-student associations are final",
            ),
            "Sent once per batch, when the teacher decided every essay or the validation "
            "timeout decided the rest.",
        ),
        Channel(
            "TeacherNotificationRequestedV1",
            topics.TEACHER_NOTIFICATION_REQUESTED,
            _teacher_notifications(),
            "Notifications for the teacher's websocket, one message per notification_type.",
        ),
    )


@cache
def consumed_event() -> EventType:
    """``BatchAuthorMatchesSuggestedV1``, decoded by the author-match consumer."""
    return EventType(
        "BatchAuthorMatchesSuggestedV1",
        enveloped(
            BatchAuthorMatchesSuggestedV1,
            ACCEPTED_EVENT_TYPES,
            "BatchAuthorMatchesSuggestedV1Envelope",
        ),
        "the batch id (any key is accepted)",
        "The NLP service's suggested authors of a batch's essays",
    )


class EventHeaders(BaseModel):
    """The Kafka headers of every published event (``messaging.envelope.kafka_headers``)."""

    model_config = ConfigDict(title="EventHeaders")

    event_id: uuid.UUID
    event_type: str
    correlation_id: uuid.UUID
    source_service: str
    schema_version: str
    content_type: Literal["application/json"]
    traceparent: str | None = None  # only when the causing request or event had one


class DeadLetterHeaders(BaseModel):
    """The headers ``messaging.dead_letter.DeadLetterPublisher`` adds to the original record's
    own headers (which it keeps)."""

    model_config = ConfigDict(title="DeadLetterHeaders", extra="allow")

    dlq_reason: str
    dlq_error: str
    dlq_original_topic: str
    dlq_original_partition: str
    dlq_original_offset: str
    dlq_original_timestamp: str
    dlq_consumer_group: str
    dlq_service: str
    dlq_failed_at: str


def documented_topic_constants() -> set[str]:
    """The topic names of :mod:`..messaging.topics` the channels above describe (the consumed
    topic's address comes from settings; its event types are the constants)."""
    names = {channel.address for channel in published_channels()}
    return names | set(ACCEPTED_EVENT_TYPES)


def check_complete() -> None:
    """Raise if :mod:`..messaging.topics` names a topic no channel describes."""
    declared = {
        value for name, value in vars(topics).items() if name.isupper() and isinstance(value, str)
    }
    missing = declared - documented_topic_constants()
    if missing:
        raise LookupError(f"topics without an AsyncAPI channel: {sorted(missing)}")
