"""The AsyncAPI document is complete: every topic the code enqueues events for, the consumed
event and the dead letters, topic names from the settings, and the headers the code sends."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import class_management_service
from class_management_service.associations.events import ACCEPTED_EVENT_TYPES
from class_management_service.asyncapi.catalog import DeadLetterHeaders, EventHeaders
from class_management_service.asyncapi.document import build_document
from class_management_service.messaging import topics
from class_management_service.messaging.dead_letter import DeadLetter, DeadLetterPublisher
from class_management_service.messaging.envelope import kafka_headers, new_envelope
from class_management_service.settings import Settings
from tests.kafka.topics import TRACEPARENT

SOURCE = Path(class_management_service.__file__).parent
WRITER = "class_management_service.outbox.writer"


def _enqueued_topics() -> set[str]:
    """Every topic named in a module that enqueues events (imports the outbox writer)."""
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        text = path.read_text()
        if WRITER not in text:  # cannot import it: not worth parsing
            continue
        tree = ast.parse(text, str(path))
        nodes = list(ast.walk(tree))
        if not any(isinstance(n, ast.ImportFrom) and n.module == WRITER for n in nodes):
            continue
        found.update(
            getattr(topics, n.attr)
            for n in nodes
            if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.value.id == "topics"
        )
    return found


def _document(settings: Settings) -> dict[str, Any]:
    return build_document(settings, title="t", version="1")


def _payload(document: dict[str, Any], message: str) -> dict[str, Any]:
    ref: str = document["components"]["messages"][message]["payload"]["$ref"]
    schema: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def test_every_event_type_the_code_publishes_or_consumes_is_described() -> None:
    settings = Settings()
    document = _document(settings)
    channels = document["channels"]
    consumer = settings.author_match_consumer
    published = {
        channel["address"]
        for channel in channels.values()
        if channel["address"] not in {consumer.topic, consumer.dead_letter_topic}
    }
    enqueued = _enqueued_topics()
    assert topics.STUDENT_ASSOCIATIONS_CONFIRMED in enqueued  # the scan finds call sites
    assert published == enqueued
    # The list `check` holds the broker to is the same set.
    assert set(topics.PUBLISHED) == enqueued
    # Every topic the code names (published, and the consumed event's two spellings).
    declared = {v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)}
    consumed_type = _payload(document, "BatchAuthorMatchesSuggestedV1")["properties"]["event_type"]
    assert set(consumed_type["enum"]) == set(ACCEPTED_EVENT_TYPES)
    assert declared <= published | set(consumed_type["enum"])
    # Each published envelope names its topic as event_type, as the outbox writer sets it.
    for name, channel in channels.items():
        if channel["address"] in published:
            for message in channel["messages"]:
                event_type = _payload(document, message)["properties"]["event_type"]
                assert event_type["const"] == channel["address"], name
    # One teacher-notification message per notification type.
    notifications = channels["TeacherNotificationRequestedV1"]["messages"]
    assert {m.rsplit(".", 1)[1] for m in notifications} == {
        "class_created",
        "student_added_to_class",
        "student_associations_confirmed",
        "validation_timeout_processed",
    }
    actions = {(op["action"], op["channel"]["$ref"]) for op in document["operations"].values()}
    assert ("receive", "#/channels/BatchAuthorMatchesSuggestedV1") in actions
    assert {("send", f"#/channels/{name}") for name in channels} <= actions


def test_topic_names_and_consumer_group_come_from_the_settings() -> None:
    settings = Settings(
        author_matches_topic="site.matches",
        dead_letter_topic="site.matches.dlq",
        consumer_group_id="site-group",
        kafka_bootstrap_servers="broker-1:9092,broker-2:9092",
    )
    document = _document(settings)
    assert document["channels"]["BatchAuthorMatchesSuggestedV1"]["address"] == "site.matches"
    assert document["channels"]["DeadLetter"]["address"] == "site.matches.dlq"
    receive = document["operations"]["receiveBatchAuthorMatchesSuggestedV1"]
    assert receive["bindings"]["kafka"]["groupId"]["enum"] == ["site-group"]
    assert document["servers"]["kafka"]["host"] == "broker-1:9092"


def test_the_header_models_name_the_headers_the_code_sends() -> None:
    envelope = new_envelope(
        event_type=topics.CLASS_CREATED, data={}, correlation_id=uuid.uuid4(), partition_key="k"
    )
    assert envelope.metadata is not None
    envelope.metadata["traceparent"] = TRACEPARENT
    assert set(kafka_headers(envelope)) == set(EventHeaders.model_fields)

    record = SimpleNamespace(topic="t", partition=0, offset=1, timestamp=0, headers=[("a", b"b")])
    publisher = DeadLetterPublisher(
        cast(Any, None), "dlq", service_name="cms", store=cast(Any, None)
    )
    headers = publisher.headers_for(DeadLetter(record, "invalid_json", "bad"), group_id="g")
    assert [name for name, _ in headers] == ["a", *DeadLetterHeaders.model_fields]
