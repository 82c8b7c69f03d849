"""Wiring one consumer worker: its handler plus the plumbing every consumer shares."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from class_management_service.messaging.batch import BatchHandler, P, T
from class_management_service.messaging.consumer import KafkaBatchConsumer
from class_management_service.messaging.consumer_metrics import ConsumerMetrics
from class_management_service.messaging.dead_letter import DeadLetterPublisher
from class_management_service.messaging.dead_letter_store import DeadLetterStore
from class_management_service.messaging.producer import SharedProducer
from class_management_service.settings import ConsumerSettings


def build_consumer(
    settings: ConsumerSettings,
    handler: BatchHandler[T, P],
    *,
    producer: SharedProducer,
    session_factory: async_sessionmaker[AsyncSession],
    metrics: ConsumerMetrics,
    service_name: str,
) -> KafkaBatchConsumer[T, P]:
    """A consumer of ``settings.topic`` with its dead-letter topic (and table) and metrics."""
    return KafkaBatchConsumer(
        settings,
        handler,
        dead_letters=DeadLetterPublisher(
            producer,
            settings.dead_letter_topic,
            service_name=service_name,
            store=DeadLetterStore(session_factory),
        ),
        metrics=metrics,
    )
