"""The AsyncAPI 3.0 document of the service's Kafka side, built from :mod:`.catalog`.

Payload and header schemas are pydantic's JSON Schemas of the models the code uses (published
events as they serialize, the consumed event as it validates), all under
``components/schemas``; topic names and the consumer group come from the settings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from class_management_service.asyncapi.catalog import (
    Channel,
    DeadLetterHeaders,
    EventHeaders,
    EventType,
    check_complete,
    consumed_event,
    published_channels,
)
from class_management_service.settings import Settings

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
SCHEMAS = "#/components/schemas/"
SERVER = "kafka"
DEAD_LETTER = "DeadLetter"


def _schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"{SCHEMAS}{model.__name__}"}


def _message(event: EventType, headers: type[BaseModel] | None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": event.name,
        "title": event.name,
        "summary": event.summary,
        "contentType": "application/json",
        "payload": _schema_ref(event.envelope),
        "correlationId": {"location": "$message.payload#/correlation_id"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": event.key},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }
    if headers is not None:
        message["headers"] = _schema_ref(headers)
    return message


def _channel(address: str, description: str, messages: list[str]) -> dict[str, Any]:
    return {
        "address": address,
        "description": description,
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        "bindings": {"kafka": {"topic": address, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _operation(
    action: str, channel: str, messages: list[str], summary: str, **extra: Any
) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in messages],
        **extra,
    }


def _schemas(published: list[EventType], consumed: EventType) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((event.envelope, "serialization") for event in published),
        (consumed.envelope, "validation"),
        (EventHeaders, "serialization"),
        (DeadLetterHeaders, "validation"),
    ]
    _, top = models_json_schema(models, ref_template=SCHEMAS + "{model}")
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def build_document(settings: Settings, *, title: str, version: str) -> dict[str, Any]:
    check_complete()
    channels: tuple[Channel, ...] = published_channels()
    published = [event for channel in channels for event in channel.messages]
    consumed = consumed_event()
    consumer = settings.author_match_consumer

    messages = {event.name: _message(event, EventHeaders) for event in published}
    messages[consumed.name] = _message(consumed, None)
    messages[consumed.name]["description"] = (
        "Kafka headers are not read: the trace context comes from the envelope's metadata. "
        "event_type may be the topic name or the short name older producers send."
    )
    messages[DEAD_LETTER] = {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A consumed record the service set aside, unchanged, with the reason",
        "description": (
            "The value, key and headers of the consumed record exactly as received (usually a "
            "BatchAuthorMatchesSuggestedV1 envelope, but possibly not JSON at all: that can be "
            "why it was set aside), plus the dlq_* headers. A letter too large for this topic "
            "goes to the dead_letters table instead."
        ),
        "payload": {"description": "the original record's value, unchanged"},
        "headers": _schema_ref(DeadLetterHeaders),
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "the original record's key"},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }

    document_channels = {
        channel.name: _channel(
            channel.address, channel.description, [m.name for m in channel.messages]
        )
        for channel in channels
    }
    document_channels[consumed.name] = _channel(
        consumer.topic,
        "Suggested authors of a batch's essays, from the NLP service.",
        [consumed.name],
    )
    document_channels[DEAD_LETTER] = _channel(
        consumer.dead_letter_topic,
        "Records of the consumed topic the service could not process.",
        [DEAD_LETTER],
    )

    operations = {
        f"send{channel.name.replace('.', '')}": _operation(
            "send",
            channel.name,
            [m.name for m in channel.messages],
            f"The outbox relay publishes {channel.address} (at least once, per-aggregate order)",
        )
        for channel in channels
    }
    operations[f"receive{consumed.name}"] = _operation(
        "receive",
        consumed.name,
        [consumed.name],
        "The author-match consumer stores suggestions and sets poison aside",
        bindings={
            "kafka": {
                "groupId": {"type": "string", "enum": [consumer.group_id]},
                "clientId": {"type": "string", "enum": [consumer.client_id]},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    )
    operations["replayDeadLetters"] = _operation(
        "send",
        consumed.name,
        [consumed.name],
        "Operators replay dead letters unchanged (key, value, headers) to the consumed topic",
    )
    operations[f"send{DEAD_LETTER}"] = _operation(
        "send",
        DEAD_LETTER,
        [DEAD_LETTER],
        "The consumer sets poison records aside on the dead-letter topic",
    )

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Events the service publishes through its transactional outbox and the event "
                "it consumes. Every event is the platform's envelope with the payload in data."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            SERVER: {
                "host": settings.kafka_bootstrap_servers.split(",")[0],
                "protocol": "kafka",
                "description": "The platform's broker",
            }
        },
        "channels": document_channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _schemas(published, consumed)},
    }
